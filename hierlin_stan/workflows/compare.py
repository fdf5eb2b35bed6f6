"""Run several samplers on one dataset and judge them by the same numbers.

Samplers are looked up by name in :mod:`hierlin_stan.samplers.registry`.

:func:`compare` returns a :class:`Comparison`: every fit, one table row per
sampler (compile and sampling seconds kept apart, min bulk/tail-ESS over the
population-level parameters -- a, mu_b, sigma_b, eps for the notebook's model; beta,
tau, sigma, Omega for a formula --, ESS per sampling second, max R-hat, divergences,
recovery), a cross-check of every posterior against the reference (Stan marginal NUTS),
and :func:`hierlin_stan.write_report` writes CSV, Markdown and a self-contained HTML report.

With ``formula=...`` every sampler runs that formula's model on the same data and the
same priors: the design (sums, rows) is built once and the priors resolved once (the
data-scaled defaults included), then handed to each sampler.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import pandas as pd

from ..model.dataset import Dataset, simulate
from ..model.glm import Design, design as make_design
from ..model.params import key_variables
from ..checks.diagnostics import recovery, sampler_stats
from ..model.priors import resolve_priors
from ..samplers.registry import (
    REFERENCE,
    SAMPLERS,
    SamplerSpec,
    available_samplers,
    check_samplers,
    check_settings,
    run_sampler,
)
from ..utils.display import RichDisplay
from ..utils.progress import say
from ..utils.seeds import resolve_seed

if TYPE_CHECKING:  # pragma: no cover
    from ..utils.az import az


# The notebook's run: Metropolis on the full posterior, 200,000 iterations with the
# first half discarded (here per chain, 4 chains so that R-hat can speak; kept draws
# thinned by 10 to bound memory), next to Stan's NUTS.
PRESETS: dict[str, dict[str, Any]] = {
    "notebook": {
        "samplers": ("stan-marginal", "stan-centered", "metropolis-full"),
        "overrides": {"metropolis-full": {"draws": 100_000, "warmup": 100_000, "thin": 10}},
    },
}


@dataclasses.dataclass(repr=False)
class Comparison(RichDisplay):
    """Fits of several samplers on one dataset, and their common yardsticks.

    In Jupyter it displays as the report's verdict, its table (green rows trustworthy,
    red not) and ESS/s bars (:mod:`hierlin_stan.reports.display`).

    Attributes
    ----------
    dataset : Dataset or None
        The notebook's data (None for a formula).
    fits, specs, failures : dict
        By sampler name: the fit, how it was run, or why it failed.
    seed : int
    priors : str
        The priors every sampler used, in words.
    design : Design or None
        For a formula: its design (terms, groups, sums, rows).
    formula : str or None
    """

    dataset: Dataset | None
    fits: dict[str, "az.InferenceData"]
    specs: dict[str, SamplerSpec]
    failures: dict[str, str]
    seed: int
    priors: str
    design: Design | None = None
    formula: str | None = None

    def __repr__(self) -> str:
        failed = f", {len(self.failures)} failed ({', '.join(self.failures)})" if self.failures else ""
        model = f" of {self.design.formula.canonical}" if self.design is not None else ""
        return (f"Comparison({len(self.fits)} sampler(s){model} on N = {self.n_obs}: "
                f"{', '.join(self.fits) or 'none'}{failed}; seed {self.seed})")

    @property
    def n_obs(self) -> int:
        """The number of observations compared on (the notebook's data or the formula's rows)."""
        return int(self.design.N) if self.design is not None else int(self.dataset.n)

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """One row per sampler: timings, ESS, ESS/s, R-hat, divergences, recovery (computed once)."""
        rows = []
        for name, idata in self.fits.items():
            st = sampler_stats(idata)
            try:
                rec = recovery(idata)
                covered = f"{int(rec['covered'].sum())}/{len(rec)}"
            except ValueError:
                covered = "n/a"
            rows.append({
                "sampler": name,
                "label": self.specs[name].label,
                "parameterization": self.specs[name].parameterization,
                "chains x draws": f"{st['n_chains']} x {st['n_draws']}",
                "compile_seconds": st.get("compile_seconds"),
                "sampling_chain_seconds": st.get("sampling_chain_seconds"),
                "min_ess_bulk": st.get("min_ess_bulk"),
                "min_ess_tail": st.get("min_ess_tail"),
                "min_ess_bulk_per_s": st.get("min_ess_bulk_per_s"),
                "max_rhat": st.get("max_rhat"),
                "divergences": st.get("divergences"),
                "recovered_90": covered,
            })
        for name, error in self.failures.items():
            rows.append({"sampler": name, "label": self.specs[name].label + " (FAILED)",
                         "parameterization": self.specs[name].parameterization, "error": error})
        return pd.DataFrame(rows).set_index("sampler")

    def speedup(self, fast: str = REFERENCE, slow: str = "metropolis-full") -> float:
        """ESS per second of ``fast`` over that of ``slow`` (NaN if either is missing)."""
        t = self.table
        if fast not in t.index or slow not in t.index:
            return float("nan")
        return float(t.loc[fast, "min_ess_bulk_per_s"] / t.loc[slow, "min_ess_bulk_per_s"])

    def cross_checks(self, reference: str = REFERENCE, threshold: float = 4.0) -> pd.DataFrame:
        """z of every sampler's means against the reference's (combined MCSE), per parameter."""
        from ..checks.crosscheck import cross_check

        if reference not in self.fits:
            return pd.DataFrame()
        rows = {}
        ref = self.fits[reference]
        for name, idata in self.fits.items():
            if name == reference:
                continue
            # bambi has no Omega (uncorrelated effects): compare what both fits have
            shared = [v for v in key_variables(ref) if v in idata.posterior.data_vars]
            table = cross_check(ref, idata, var_names=shared, threshold=threshold)
            row = {f"z_{p}": table.loc[p, "z"] for p in table.index}
            row["passed"] = bool(table.attrs["passed"])
            rows[name] = row
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = f"vs {reference}"
        frame.attrs["threshold"] = threshold
        return frame


def compare(
    dataset: Any = None,
    samplers: Sequence[str] | None = None,
    seed: int | None = 0,
    priors: Any = None,
    engine: str = "auto",
    preset: str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
    formula: str | None = None,
    dropna: bool = False,
) -> Comparison:
    """Run a set of samplers on one dataset.

    Parameters
    ----------
    dataset : Dataset, DataFrame, path or Design, optional
        Default: the notebook's data (:func:`hierlin_stan.simulate` with ``seed``). With
        ``formula``: the data of the formula (a DataFrame, a CSV/Parquet path, a Dataset
        or a :func:`hierlin_stan.design`), required.
    samplers : sequence of str, optional
        Names from :data:`SAMPLERS`; default :func:`available_samplers` (for a formula
        ``available_samplers(formula=True)``: every Stan parameterization including
        ``stan-collapsed``, the three Metropolis targets, PyMC, nutpie and bambi as installed).
    seed : int
        Seed of the data (when simulated) and of every sampler.
    priors : optional
        As for :func:`hierlin_stan.fit`; the same for every sampler. For a formula a
        mapping such as ``{"beta": "normal(0, 5)", "tau": "halfnormal(1)"}`` over the
        data-scaled defaults, resolved once.
    engine : {"auto", "cmdstan", "pystan"}
        Stan engine.
    preset : {"notebook"}, optional
        ``"notebook"``: the notebook's Metropolis run (full posterior, 200,000
        iterations, first half discarded) next to Stan NUTS.
    settings : mapping, optional
        Per-sampler overrides, e.g. ``{"metropolis-full": {"draws": 50_000}}`` or the
        NUTS controls of a Stan sampler, ``{"stan-marginal": {"adapt_delta": 0.95,
        "metric": "dense"}}`` (see :func:`hierlin_stan.fit`). Checked before anything
        runs: an unknown key or a bad value raises a ValueError.
    show_progress : bool
        Progress bars.
    log : callable, optional
        Receives one line per sampler as it starts (default: stderr when showing progress).
    formula : str, optional
        E.g. ``"y ~ x + (1 + x | g)"``: compare the samplers on this formula's model
        (names beta, tau, sigma, Omega, u) instead of the notebook's.
    dropna : bool
        (formula) drop rows with missing values in the used columns instead of failing.

    Returns
    -------
    Comparison
        A sampler that fails is recorded in ``failures`` with its error; the others still run.
    """
    overrides: dict[str, dict[str, Any]] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset={preset!r} is unknown; use one of {sorted(PRESETS)}")
        samplers = PRESETS[preset]["samplers"] if samplers is None else samplers
        overrides = {k: dict(v) for k, v in PRESETS[preset]["overrides"].items()}
    general = formula is not None or isinstance(dataset, Design)
    if general and preset is not None:
        raise ValueError(f"preset={preset!r} reruns the notebook's experiment; it does not take a formula")
    names = check_samplers(available_samplers(formula=general) if samplers is None else samplers, formula=general)
    for name, extra in (settings or {}).items():
        check_samplers([name], formula=general)
        if name not in names:
            raise ValueError(f"settings given for {name!r}, which is not among the samplers run {names}; "
                             "add it to samplers or drop its settings")
        overrides.setdefault(name, {}).update(check_settings(SAMPLERS[name], extra, formula=general))
    seed = resolve_seed(seed)
    d = None
    if general:
        from ..samplers.stan_glm import glm_priors

        if dataset is None:
            raise ValueError("compare(formula=...) needs the data: compare(df, formula='y ~ x + (1 + x | g)') "
                             "(e.g. df = hs.simulate(formula=..., groups=[20] * 30))")
        d = make_design(dataset, formula, dropna=dropna)
        formula = formula if formula is not None else d.formula.text
        prior = glm_priors(d, priors)
        described = prior.describe(d.correlated).replace("\n", "; ")
    else:
        prior = resolve_priors(priors)
        described = prior.describe()
        if dataset is None:
            dataset = simulate(seed=seed)
    if log is None:
        log = (lambda line: say(f"hierlin: {line}")) if show_progress else (lambda line: None)
    fits: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for name in names:
        spec = SAMPLERS[name]
        log(f"running {spec.label} ...")
        try:
            extra = {"formula": formula, "design": d} if general else {}
            fits[name] = run_sampler(spec, dataset, seed, prior, engine, show_progress, **extra,
                                     **overrides.get(name, {}))
        except Exception as err:  # noqa: BLE001 - one sampler failing must not lose the others' fits
            failures[name] = f"{type(err).__name__}: {err}"
            log(f"{name} failed: {failures[name]}")
    return Comparison(None if general else dataset, fits, {n: SAMPLERS[n] for n in names}, failures, seed,
                      described, design=d, formula=formula)
