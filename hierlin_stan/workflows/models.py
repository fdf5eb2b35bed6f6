"""Which model? Fit several formulas to the same data and compare them by PSIS-LOO.

:func:`compare_models` fits every formula (same rows, same sampler settings, data-scaled
default priors unless given), writes each fit's log likelihoods (per observation ``y``,
per group ``y_group``; :mod:`hierlin_stan.samplers.log_likelihood`), runs PSIS-LOO through
ArviZ on both where they exist, and ranks the models with ``arviz.compare`` (elpd, its SE,
differences to the best and their SE, stacking weights, p_loo) next to each LOO's
Pareto-k diagnostics and each fit's own diagnostics. ``by`` chooses the ranking shown
first: ``"obs"`` (leave one observation out) or ``"group"`` (leave one group out).

The result is a :class:`ModelComparison`; :func:`hierlin_stan.write_report` writes its
folder (tables, ArviZ's compare plot, a Pareto-k plot, an HTML page).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..checks.diagnostics import sampler_stats
from ..checks.loo import (BY, DSE_RATIO, ELPD_SMALL, UNITS, ParetoK, compare_loo, difference_verdict, loo,
                          pareto_advice, pareto_k_diagnostics)
from ..model.design import DataError
from ..model.formula import Formula, parse_formula
from ..model.glm import Design, design
from ..model.glm_loglik import Grouping, model_grouping
from ..model.tables import read_columns
from ..samplers.log_likelihood import MAX_LOGLIK_VALUES, add_log_likelihood
from ..samplers.stan_glm import fit_formula, glm_priors
from ..utils.checks import positive_int
from ..utils.display import RichDisplay
from ..utils.seeds import resolve_seed

if TYPE_CHECKING:  # pragma: no cover
    from ..utils.az import az

__all__ = ["ModelComparison", "compare_models", "MAX_COMPARE_VALUES"]

#: Refuse a leave-one-observation-out comparison whose log likelihood would hold more
#: numbers than this per model (draws x N; 400 MB): leave-one-group-out needs draws x J.
MAX_COMPARE_VALUES = 50_000_000


@dataclasses.dataclass
class ModelComparison(RichDisplay):
    """Several formulas fitted to the same data, compared by PSIS-LOO.

    Attributes
    ----------
    formulas : dict
        Model name -> formula text.
    by : str
        The LOO of :attr:`table`: ``"obs"`` (log likelihood ``y``) or ``"group"`` (``y_group``).
    fits : dict
        Model name -> InferenceData (with its ``log_likelihood`` group).
    loos : dict
        ``"obs"`` / ``"group"`` -> model name -> ``arviz.ELPDData`` (pointwise), for each
        LOO that could be computed for every model.
    pareto : dict
        ``"obs"`` / ``"group"`` -> model name -> :class:`~hierlin_stan.checks.loo.ParetoK`.
    failures : dict
        Model name -> why its fit failed (the others are still compared).
    group_factor : str or None
        The grouping column of leave-one-group-out.
    n_obs, n_groups : int
        Observations and groups (0 without a grouping).
    seed : int
    settings : dict
        Parameterization, engine, chains, draws, warmup, NUTS controls.
    priors : dict
        Model name -> the priors used (one line each).
    seconds : float
        Wall time of the whole comparison.
    """

    formulas: dict[str, str]
    by: str
    fits: dict[str, "az.InferenceData"]
    loos: dict[str, dict[str, Any]]
    pareto: dict[str, dict[str, ParetoK]]
    failures: dict[str, str]
    group_factor: str | None
    n_obs: int
    n_groups: int
    seed: int
    settings: dict[str, Any]
    priors: dict[str, str]
    seconds: float = float("nan")
    _rankings: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def var_name(self) -> str:
        """The log-likelihood variable of :attr:`table` (``y`` or ``y_group``)."""
        return BY[self.by]

    @property
    def likelihood(self) -> str:
        """What :attr:`table`'s LOO leaves out, in words."""
        return likelihood_text(self.by, self.group_factor)

    @property
    def table(self) -> pd.DataFrame:
        """The ranking by :attr:`by` (see :meth:`ranking`)."""
        return self.ranking(self.by)

    @property
    def best(self) -> str:
        """The model ranked first by :attr:`by` (highest elpd_loo)."""
        return str(self.table.index[0])

    @property
    def recommended(self) -> str:
        """The simplest model (fewest parameters) that is not clearly worse than :attr:`best`.

        Nested models whose extra terms the data do not need differ from the best by well
        under one SE, in either direction: LOO cannot rank them, so parsimony decides.
        """
        table = self.table
        return str(table.index[table["recommended"]][0])

    def arviz_table(self, by: str | None = None) -> pd.DataFrame:
        """``arviz.compare`` of one LOO, as ArviZ returns it (what ``arviz.plot_compare`` draws)."""
        by = self.by if by is None else by
        if by not in self.loos:
            raise ValueError(f"no LOO by={by!r} in this comparison (have {sorted(self.loos)})")
        key = f"arviz:{by}"
        if key not in self._rankings:
            self._rankings[key] = compare_loo(self.loos[by], seed=self.seed)
        return self._rankings[key].copy()

    def ranking(self, by: str | None = None) -> pd.DataFrame:
        """One row per model, best first: ArviZ's compare columns, Pareto k, fit diagnostics.

        Columns: ``rank``, ``formula``, ``elpd_loo``, ``se``, ``elpd_diff`` (to the best,
        >= 0), ``dse`` (SE of the difference), ``diff/dse``, ``verdict`` (best,
        indistinguishable, clearly worse: difference > 4 and > 2 dse), ``n_params``
        (population-level parameters), ``recommended`` (the simplest model that is not
        clearly worse than the best; ties by rank), ``weight``
        (stacking), ``p_loo``, ``likelihood`` (the log-likelihood variable), ``n_units``,
        ``pareto_k_bad`` (k > good_k), ``pareto_k_max``, ``pareto_k_ok``, ``divergences``,
        ``max_rhat``, ``min_ess_bulk``, ``fit_ok`` (no divergences, R-hat <= 1.01,
        ESS >= 400), ``reliable`` (pareto_k_ok and fit_ok).

        Raises
        ------
        ValueError
            For a LOO that was not computed (e.g. ``obs`` when the rows were not kept).
        """
        by = self.by if by is None else by
        if by in self._rankings:
            return self._rankings[by].copy()
        if by not in self.loos:
            raise ValueError(f"no LOO by={by!r} in this comparison (have {sorted(self.loos)}); "
                             f"{'keep the rows (smaller data) or ' if by == 'obs' else ''}rerun compare_models(by={by!r})")
        table = self.arviz_table(by)
        out = pd.DataFrame(index=table.index)
        out["rank"] = table["rank"].astype(int)
        out["formula"] = [self.formulas[n] for n in table.index]
        for col in ("elpd_loo", "se", "elpd_diff", "dse"):
            out[col] = table[col].astype(float)
        out["diff/dse"] = [d / s if s > 0 else (0.0 if d == 0 else math.inf)
                           for d, s in zip(out["elpd_diff"], out["dse"])]
        out["verdict"] = ["best" if r == 0 else difference_verdict(d, s)
                          for r, d, s in zip(out["rank"], out["elpd_diff"], out["dse"])]
        out["n_params"] = [_n_params(self.fits[n]) for n in table.index]
        candidates = out[out["verdict"] != "clearly worse"]
        choice = candidates.sort_values(["n_params", "rank"]).index[0]
        out["recommended"] = [n == choice for n in out.index]
        out["weight"] = table["weight"].astype(float)
        out["p_loo"] = table["p_loo"].astype(float)
        out["likelihood"] = BY[by]
        ks = self.pareto[by]
        out["n_units"] = [ks[n].n for n in table.index]
        out["pareto_k_bad"] = [ks[n].high for n in table.index]
        out["pareto_k_max"] = [ks[n].max_k for n in table.index]
        out["pareto_k_ok"] = [ks[n].ok for n in table.index]
        stats = {n: sampler_stats(self.fits[n]) for n in table.index}
        out["divergences"] = [stats[n].get("divergences") for n in table.index]
        out["max_rhat"] = [stats[n].get("max_rhat") for n in table.index]
        out["min_ess_bulk"] = [stats[n].get("min_ess_bulk") for n in table.index]
        out["fit_ok"] = [_fit_ok(stats[n]) for n in table.index]
        out["reliable"] = out["pareto_k_ok"] & out["fit_ok"]
        out.index.name = "model"
        out.attrs["by"] = by
        out.attrs["likelihood"] = likelihood_text(by, self.group_factor)
        self._rankings[by] = out
        return out.copy()

    def pareto_k(self, by: str | None = None) -> pd.DataFrame:
        """Every unit's Pareto k (rows: observations or groups; columns: models)."""
        by = self.by if by is None else by
        cols = {}
        for name, elpd in self.loos[by].items():
            k = elpd.pareto_k
            cols[name] = pd.Series(np.asarray(k.values, float), index=[str(v) for v in k[k.dims[0]].values])
        frame = pd.DataFrame(cols)
        frame.index.name = "observation" if by == "obs" else (self.group_factor or "group")
        return frame

    def headline(self) -> list[tuple[str, bool | None]]:
        """The verdict in a few sentences, each flagged True (good), False (a problem) or None."""
        return headline(self)

    def __repr__(self) -> str:
        return (f"ModelComparison({len(self.fits)} models, by={self.by!r}, best={self.best!r})" if self.fits
                else f"ModelComparison(no fits; failures={self.failures})")


def likelihood_text(by: str, group_factor: str | None) -> str:
    """E.g. ``leave-one-group-out (log likelihood 'y_group': per group of 'g', group effects integrated out)``."""
    if by == "group":
        return (f"leave-one-group-out (log likelihood 'y_group': per group of {group_factor!r}, the group effects "
                "integrated out)")
    return "leave-one-observation-out (log likelihood 'y': per observation, given the group effects)"


def _n_params(idata: "az.InferenceData") -> int:
    """Population-level parameters: p coefficients, q group sds, q(q-1)/2 correlations, sigma."""
    from ..checks.diagnostics import fit_attrs

    attrs = fit_attrs(idata)
    p, q = int(attrs["p"]), int(attrs["q"])
    return p + q + (q * (q - 1) // 2 if int(attrs.get("correlated", 0)) else 0) + 1


def _fit_ok(st: Mapping[str, Any]) -> bool:
    from ..checks.diagnostics import ESS_MIN, RHAT_MAX

    div = st.get("divergences") or 0
    rhat = st.get("max_rhat")
    ess = st.get("min_ess_bulk")
    return bool(div == 0 and rhat is not None and rhat <= RHAT_MAX and ess is not None and ess >= ESS_MIN)


def headline(result: ModelComparison) -> list[tuple[str, bool | None]]:
    """Best model, how sure, what the Pareto k say, and which fits to distrust."""
    if not result.fits:
        return [("No model could be fitted: " + "; ".join(f"{k}: {v}" for k, v in result.failures.items()), False)]
    table = result.table
    by = result.by
    lines: list[tuple[str, bool | None]] = [(f"Ranked by {result.likelihood}.", None)]
    best = table.index[0]
    close = [n for n in table.index[1:] if table.loc[n, "verdict"] == "indistinguishable"]
    worse = [n for n in table.index[1:] if table.loc[n, "verdict"] == "clearly worse"]
    pm = "\N{PLUS-MINUS SIGN}"
    text = (f"Highest elpd_loo: {best} ({result.formulas[best]}), {table.loc[best, 'elpd_loo']:.1f} {pm} "
            f"{table.loc[best, 'se']:.1f}, stacking weight {table.loc[best, 'weight']:.2f}.")
    lines.append((text, True))
    if worse:
        parts = [f"{n} (by {table.loc[n, 'elpd_diff']:.1f} {pm} {table.loc[n, 'dse']:.1f})" for n in worse]
        lines.append((f"Clearly worse than {best}: {', '.join(parts)}.", True))
    if close:
        parts = [f"{n} (by {table.loc[n, 'elpd_diff']:.1f} {pm} {table.loc[n, 'dse']:.1f})" for n in close]
        lines.append((f"Not clearly worse than {best}: {', '.join(parts)}. LOO cannot tell these apart (a difference "
                      f"below {ELPD_SMALL:g}, or below {DSE_RATIO:g} of its SE); when one model adds terms to "
                      "another, such a difference is noise in either direction.", None))
    choice = result.recommended
    if choice == best and not close:
        why = "no other model comes close"
    elif choice == best:
        why = "it is also the simplest of the models not clearly worse"
    else:
        why = (f"the simplest model ({int(table.loc[choice, 'n_params'])} population parameters) that is not "
               f"clearly worse than {best}")
    hedged = [n for n in close if table.loc[n, "weight"] >= 0.05]
    weights = ", ".join(f"{n} {table.loc[n, 'weight']:.2f}" for n in [best] + hedged)
    hedge = f" To hedge, average the predictions with the stacking weights ({weights})." if hedged else ""
    lines.append((f"Recommended: {choice} ({result.formulas[choice]}): {why}.{hedge}", True))
    high = [n for n in table.index if not result.pareto[by][n].ok]
    if high:
        parts = [f"{n} ({result.pareto[by][n].high} of {result.pareto[by][n].n} {UNITS[by]}, max "
                 f"{result.pareto[by][n].max_k:.2f}: {', '.join(u for u, _ in result.pareto[by][n].worst[:3])}"
                 f"{' ...' if result.pareto[by][n].high > 3 else ''})" for n in high]
        good_k = min(result.pareto[by][n].good_k for n in high)
        lines.append((f"Pareto k above {good_k:.3g} (PSIS-LOO unreliable for those {UNITS[by]}): {'; '.join(parts)}. "
                      + pareto_advice(by), False))
    else:
        lines.append((f"Pareto k: every {UNITS[by][:-1]} of every model is below "
                      f"{min(result.pareto[by][n].good_k for n in table.index):.3g}: the LOO estimates are reliable.",
                      True))
    for name in table.index:
        if not bool(table.loc[name, "fit_ok"]):
            st = table.loc[name]
            lines.append((f"{name}: the fit itself is doubtful (divergences {st['divergences']}, max R-hat "
                          f"{st['max_rhat']:.3f}, min bulk-ESS {st['min_ess_bulk']:.0f}); fix it before trusting "
                          "its LOO (e.g. adapt_delta=0.95, or parameterization='collapsed').", False))
    other = "group" if by == "obs" else "obs"
    if other in result.loos:
        alt = result.ranking(other)
        alt_choice = str(alt.index[alt["recommended"]][0])
        if alt_choice != choice:
            lines.append((f"By {likelihood_text(other, result.group_factor).split(' (')[0]} the recommended model is "
                          f"{alt_choice} instead: the two questions (a new observation of a known group, a new "
                          "group) have different answers here.", None))
    for name, err in result.failures.items():
        lines.append((f"{name} could not be fitted: {err}", False))
    return lines


# ------------------------------------------------------------------ compare_models
def _named(formulas: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(formulas, str):
        raise ValueError(f"formulas={formulas!r} is one formula; give several to compare, e.g. "
                         "{'pooled': 'y ~ x', 'varying intercept': 'y ~ x + (1 | g)'}")
    if isinstance(formulas, Mapping):
        named = {str(k): v for k, v in formulas.items()}
    else:
        named = {str(f): f for f in formulas}
        if len(named) < len(list(formulas)):
            raise ValueError("the same formula is given twice; give each model once")
    for name, text in named.items():
        if not isinstance(text, str):
            raise ValueError(f"model {name!r}: the formula must be text such as 'y ~ x + (1 | g)', got {text!r}")
    if len(named) < 2:
        raise ValueError(f"compare_models needs at least two formulas; got {len(named)}: {list(named.values())}")
    return named


def _priors_for(priors: Any, names: Sequence[str]) -> dict[str, Any]:
    """Per-model priors: a mapping keyed by model names gives each its own, anything else is shared."""
    if isinstance(priors, Mapping) and priors and all(k in names for k in priors):
        return {n: priors.get(n) for n in names}
    return {n: priors for n in names}


def _applicable(priors: Any, d: Design) -> Any:
    """A shared prior mapping restricted to the parameters the model has (tau only with group terms, ...)."""
    if not isinstance(priors, Mapping):
        return priors
    out = {}
    for key, value in priors.items():
        key_s = str(key)
        if key_s.startswith("tau") and d.q == 0:
            continue
        if key_s.startswith("tau[") and key_s[4:-1] not in d.group_term_names:
            continue
        if key_s.startswith("beta[") and key_s[5:-1] not in d.term_names:
            continue
        out[key] = value
    return out


def _frame(data: Any, forms: Mapping[str, Formula], group: str | None, dropna: bool) -> tuple[pd.DataFrame, int]:
    """Every column any model uses (and the grouping), read once, so that all models see the same rows."""
    columns: dict[str, None] = {}
    for form in forms.values():
        columns.update(dict.fromkeys(form.columns))
    if group is not None:
        columns[group] = None
    frame = read_columns(data, list(columns))
    missing = frame.isna()
    bad = int(missing.any(axis=1).sum())
    if bad and dropna:
        frame = frame.loc[~missing.any(axis=1)].reset_index(drop=True)
        warnings.warn(f"dropped {bad} row(s) with missing values in {', '.join(columns)} (dropna=True), the same rows "
                      f"for every model; {len(frame)} rows remain", stacklevel=3)
    elif bad:
        counts = ", ".join(f"{c}: {int(n)}" for c, n in missing.sum().items() if n)
        raise DataError(f"{bad} row(s) have missing values in the columns the models use ({counts}); every model "
                        "must see the same rows: pass dropna=True (--dropna) to drop them for all")
    if isinstance(data, pd.DataFrame) and "hierlin_truth" in data.attrs:
        frame.attrs["hierlin_truth"] = data.attrs["hierlin_truth"]
    return frame, bad if dropna else 0


def compare_models(
    data: Any,
    formulas: Mapping[str, str] | Sequence[str],
    by: str = "obs",
    group: str | None = None,
    parameterization: str = "marginal",
    priors: Any = None,
    engine: str = "auto",
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int | None = None,
    dropna: bool = False,
    show_progress: bool = True,
    **nuts: Any,
) -> ModelComparison:
    """Fit each formula to ``data`` and compare them by PSIS-LOO (ArviZ).

    Parameters
    ----------
    data : DataFrame or CSV/Parquet path
        Read once; every model sees the same rows.
    formulas : mapping or sequence of str
        ``{"pooled": "y ~ x", "varying intercept": "y ~ x + (1 | g)", ...}`` (names are
        the table's row labels) or a list of formulas (named by their text). Same
        response for all; the models with group terms must share one grouping factor.
    by : {"obs", "group"}
        The LOO of the main table: ``obs`` leaves one observation out (log likelihood
        ``y``: per observation given the group effects), ``group`` one group (``y_group``:
        per group, the group effects integrated out). The other one is computed too
        where it is small enough, and shown beside it.
    group : str, optional
        The grouping column of leave-one-group-out; default the models' own grouping
        factor. Needed only when no formula has group terms.
    parameterization : {"marginal", "collapsed", "centered", "noncentered"}
        Of every fit (default ``marginal``: the group effects integrated out in NUTS and
        drawn exactly afterwards).
    priors : mapping, optional
        Shared by every model (each takes the entries for parameters it has; what is not
        given gets the data-scaled defaults), or keyed by model name, one mapping each.
    engine, chains, draws, warmup, seed, show_progress
        As :func:`hierlin_stan.fit`; the same seed for every model.
    dropna : bool
        Drop rows with missing values in any model's columns (the same rows for all).
    **nuts
        Stan's NUTS controls (``adapt_delta``, ``max_treedepth``, ``metric``,
        ``step_size``, ``inits``) for every fit.

    Returns
    -------
    ModelComparison

    Raises
    ------
    ValueError
        For fewer than two formulas, different responses or grouping factors, a bad
        ``by``, a comparison by observation too large to hold, or bad data (naming it).
    """
    start = time.perf_counter()
    if by not in BY:
        raise ValueError(f"by={by!r} is not a LOO unit; use 'obs' (leave one observation out) or 'group' "
                         "(leave one group out)")
    named = _named(formulas)
    forms = {name: parse_formula(text) for name, text in named.items()}
    responses = {f.response.name for f in forms.values()}
    if len(responses) > 1:
        raise ValueError(f"the models have different responses ({', '.join(sorted(responses))}); LOO compares "
                         "predictions of the same data: give every formula the same left-hand side")
    factors = {f.group.factor for f in forms.values() if f.group is not None}
    if len(factors) > 1:
        raise ValueError(f"the models group by different factors ({', '.join(sorted(factors))}); compare models "
                         "of one grouping factor at a time")
    factor = next(iter(factors)) if factors else None
    if group is not None and factor is not None and group != factor:
        raise ValueError(f"group={group!r}, but the models group by {factor!r}: leave-one-group-out removes the "
                         f"groups the models have; give group={factor!r} or leave it out")
    factor = group if group is not None else factor
    if by == "group" and factor is None:
        raise ValueError("by='group' needs a grouping: no formula has group terms, so give group='<column>'")
    chains, draws = positive_int(chains, "chains"), positive_int(draws, "draws")
    n_samples = chains * draws
    seed = resolve_seed(seed)
    frame, dropped = _frame(data, forms, factor, dropna)
    designs = {name: design(frame, form) for name, form in forms.items()}  # every bad input fails before sampling
    n_obs = next(iter(designs.values())).N
    if by == "obs":
        values = n_samples * n_obs
        if values > MAX_COMPARE_VALUES:
            raise ValueError(f"by='obs' needs {n_samples} draws x {n_obs} observations = {values:.3g} log-likelihood "
                             f"values per model (above {MAX_COMPARE_VALUES:.0e}); use by='group' (draws x groups) or "
                             f"fewer draws (e.g. draws={max(1, MAX_COMPARE_VALUES // (chains * n_obs))})")
        no_rows = [n for n, d in designs.items() if d.rows is None and d.frame is None]
        if no_rows:
            raise ValueError(f"by='obs' needs the rows, which {no_rows} do not keep; use by='group'")
    grouping = _grouping(designs, frame, factor)
    per_model_priors = _priors_for(priors, list(named))
    fits: dict[str, Any] = {}
    failures: dict[str, str] = {}
    used_priors: dict[str, str] = {}
    for name, d in designs.items():
        prior = glm_priors(d, _applicable(per_model_priors[name], d))
        used_priors[name] = prior.describe(d.correlated).replace("\n", "; ")
        if show_progress:
            print(f"hierlin_stan: fitting {name}: {named[name]}", file=sys.stderr)
        try:
            idata = fit_formula(d, named[name], parameterization, engine=engine, chains=chains, draws=draws,
                                warmup=warmup, seed=seed, priors=prior, keep_u=True if by == "obs" else None,
                                show_progress=show_progress, log_likelihood=False, **nuts)
        except (KeyboardInterrupt, ValueError):
            raise
        except Exception as err:  # an engine failure: recorded, the other models are still compared
            failures[name] = f"{type(err).__name__}: {err}"
            continue
        wanted = []
        if by == "obs" or (n_samples * n_obs <= MAX_LOGLIK_VALUES and (d.q == 0 or "u" in idata.posterior)
                           and (d.rows is not None or d.frame is not None)):
            wanted.append("y")
        if grouping is not None and (by == "group" or n_samples * grouping.n_groups <= MAX_LOGLIK_VALUES):
            wanted.append("y_group")
        add_log_likelihood(idata, d, wanted, grouping=grouping)
        idata.attrs["model_name"] = name
        fits[name] = idata
    loos: dict[str, dict[str, Any]] = {}
    pareto: dict[str, dict[str, ParetoK]] = {}
    if fits:
        for unit, var in BY.items():
            if all("log_likelihood" in f.groups() and var in f.log_likelihood for f in fits.values()):
                loos[unit] = {n: loo(f, unit) for n, f in fits.items()}
                pareto[unit] = {n: pareto_k_diagnostics(e, unit) for n, e in loos[unit].items()}
    settings = {"parameterization": parameterization, "engine": engine, "chains": chains, "draws": draws,
                "warmup": warmup, "dropped_rows": dropped, **nuts}
    if fits:
        from ..checks.diagnostics import fit_attrs

        settings["engine_used"] = ", ".join(sorted({str(fit_attrs(f).get("engine")) for f in fits.values()}))
    return ModelComparison(named, by, fits, loos, pareto, failures, factor, n_obs,
                           grouping.n_groups if grouping is not None else 0, seed, settings, used_priors,
                           time.perf_counter() - start)


def _grouping(designs: Mapping[str, Design], frame: pd.DataFrame, factor: str | None) -> Grouping | None:
    """The groups of leave-one-group-out: a hierarchical model's own, else those a model of the factor would have."""
    if factor is None:
        return None
    for d in designs.values():
        if d.q:
            return model_grouping(d)
    response = next(iter(designs.values())).formula.response.column
    return model_grouping(design(frame, f"`{response}` ~ 1 + (1 | `{factor}`)"))
