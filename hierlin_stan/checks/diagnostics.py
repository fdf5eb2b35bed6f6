"""Diagnostics shared by every sampler: summary, fit statistics, recovery, verdict.

Every function takes the :class:`arviz.InferenceData` that the package's samplers
produce (posterior ``a``, ``mu_b``, ``sigma_b``, ``eps``, ``b`` for the notebook's model,
``beta``, ``tau``, ``sigma``, ``Omega``, ``u``, ``coef`` for a formula; NUTS or Metropolis
``sample_stats``; ``observed_data`` / ``constant_data``; timings and, for simulated
data, the true values in ``idata.attrs``) and works the same whichever sampler, engine
or parameterization made it.  Statistics a sampler does not record (divergences and
E-BFMI for Metropolis) are reported as ``None``, never invented.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..model.dataset import TRUTH_KEYS
from ..model.params import is_general, key_variables, scalar_names
from ..utils.display import RichDisplay

with warnings.catch_warnings():
    # arviz 0.23 announces its 1.0 refactor with a FutureWarning on import.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

__all__ = [
    "HYPER",
    "RHAT_MAX",
    "ESS_MIN",
    "EBFMI_MIN",
    "MAX_TREE_DEPTH",
    "fit_attrs",
    "resolve_truth",
    "summary",
    "sampler_stats",
    "recovery",
    "verdict",
    "Verdict",
    "advice",
    "Advice",
    "ess_per_second",
    "general_truth",
]

#: The hyperparameters every sampler writes, in display order.
HYPER: tuple[str, ...] = TRUTH_KEYS

#: R-hat above this means the chains have not converged (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Bulk/tail ESS below this (over all chains) is too few for reliable estimates.
ESS_MIN = 400
#: E-BFMI below this means the sampler explores the energy distribution poorly.
EBFMI_MIN = 0.3
#: Stan's default ``max_depth``; draws at or beyond it hit the tree-depth limit.
MAX_TREE_DEPTH = 10

_TRUTH_KEYS = HYPER


# --------------------------------------------------------------------------- helpers


def fit_attrs(idata: az.InferenceData) -> dict[str, Any]:
    """Return the fit's attributes (sampler, engine, timings, truth, ...).

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit produced by one of the package's samplers.

    Returns
    -------
    dict
        ``idata.posterior.attrs`` updated with ``idata.attrs`` (the latter wins); empty
        when neither holds anything.
    """
    merged: dict[str, Any] = {}
    if "posterior" in idata.groups():
        merged.update(dict(idata.posterior.attrs))
    merged.update(dict(getattr(idata, "attrs", {}) or {}))
    return merged


def _float_attr(attrs: Mapping[str, Any], key: str) -> float | None:
    """``attrs[key]`` as a finite float, or None when missing or not a number."""
    value = attrs.get(key)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _str_attr(attrs: Mapping[str, Any], key: str) -> str | None:
    value = attrs.get(key)
    return None if value is None else str(value)


def _check_vars(idata: az.InferenceData, var_names: Sequence[str]) -> list[str]:
    """Return ``var_names`` as a list, raising if one is not in the posterior."""
    if isinstance(var_names, str):
        var_names = [var_names]
    names = list(var_names)
    if "posterior" not in idata.groups():
        raise ValueError("idata has no posterior group; pass the result of a fit")
    missing = [v for v in names if v not in idata.posterior.data_vars]
    if missing:
        raise ValueError(
            f"variable(s) {missing} not in the posterior; "
            f"available: {sorted(idata.posterior.data_vars)}"
        )
    if not names:
        raise ValueError("var_names is empty; give at least one posterior variable")
    return names


def _draws(idata: az.InferenceData, name: str) -> np.ndarray:
    """All draws of a scalar posterior variable, chains concatenated (1-D)."""
    return np.asarray(idata.posterior[name].values, dtype=float).reshape(-1)


def _sample_stat(idata: az.InferenceData, name: str) -> np.ndarray | None:
    """``sample_stats[name]`` as a (chain, draw) array, or None when absent."""
    if "sample_stats" not in idata.groups() or name not in idata.sample_stats:
        return None
    return np.asarray(idata.sample_stats[name].transpose("chain", "draw", ...).values)


def resolve_truth(idata: az.InferenceData, truth: Any = None) -> dict[str, float]:
    """Find the true hyperparameter values for a fit.

    Parameters
    ----------
    idata : arviz.InferenceData
        The fit; its ``attrs`` ``true_a``, ``true_mu_b``, ``true_sigma_b`` and
        ``true_eps`` are used when ``truth`` is None.
    truth : Mapping[str, float], object with a ``.truth`` mapping, or None
        True values keyed ``a``, ``mu_b``, ``sigma_b``, ``eps`` (``true_a`` etc. are
        accepted too); the package's ``Dataset`` can be passed as is.

    Returns
    -------
    dict[str, float]
        The known true values among :data:`HYPER` (non-finite values dropped).

    Raises
    ------
    ValueError
        When no true value is known, or ``truth`` is not a mapping.
    """
    truth = getattr(truth, "truth", truth)
    source: Mapping[str, Any]
    if truth is None:
        attrs = fit_attrs(idata)
        source = {k: attrs[f"true_{k}"] for k in _TRUTH_KEYS if f"true_{k}" in attrs}
        where = "idata.attrs has no true_a/true_mu_b/true_sigma_b/true_eps"
    elif isinstance(truth, Mapping):
        source = truth
        where = f"truth has none of {list(_TRUTH_KEYS)} (got keys {sorted(map(str, truth))})"
    else:
        raise ValueError(
            f"truth must be a mapping such as {{'a': 2.0, 'mu_b': 2.0, 'sigma_b': 1.0, "
            f"'eps': 0.0}}, an object with a .truth mapping, or None; got {type(truth).__name__}"
        )
    found: dict[str, float] = {}
    for key in _TRUTH_KEYS:
        for alias in (key, f"true_{key}"):
            if alias in source:
                number = _float_attr(source, alias)
                if number is not None:
                    found[key] = number
                break
    if not found:
        raise ValueError(
            f"no true values known: {where}. Pass them, e.g. "
            "truth={'a': 2.0, 'mu_b': 2.0, 'sigma_b': 1.0, 'eps': 0.0} "
            "(or the simulated Dataset itself)."
        )
    return found


def _ess_rhat(idata: az.InferenceData, names: list[str]) -> pd.DataFrame:
    """Per-variable worst bulk-ESS, tail-ESS and R-hat (vector variables reduced)."""
    post = idata.posterior[names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant entries (Omega's diagonal)
        bulk = az.ess(post, method="bulk")
        tail = az.ess(post, method="tail")
        rhat = az.rhat(post)
    rows = {}
    for v in names:
        rows[v] = {
            "ess_bulk": float(np.nanmin(np.asarray(bulk[v].values, dtype=float))),
            "ess_tail": float(np.nanmin(np.asarray(tail[v].values, dtype=float))),
            "r_hat": float(np.nanmax(np.asarray(rhat[v].values, dtype=float))),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


# ----------------------------------------------------------------------------- API


def summary(
    idata: az.InferenceData,
    var_names: Sequence[str] | None = None,
    hdi_prob: float = 0.9,
) -> pd.DataFrame:
    """ArviZ summary plus bulk-ESS per second of sampling.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit produced by one of the package's samplers.
    var_names : sequence of str, optional
        Posterior variables to summarise (vector variables give one row per element);
        default the population-level ones (:func:`hierlin_stan.model.params.key_variables`).
    hdi_prob : float, default 0.9
        Probability mass of the highest-density interval.

    Returns
    -------
    pandas.DataFrame
        One row per (element of a) variable, columns ``mean, sd, hdi_<lo>%, hdi_<hi>%,
        mcse_mean, mcse_sd, ess_bulk, ess_tail, r_hat`` (unrounded) and
        ``ess_bulk_per_s`` = ``ess_bulk`` / :func:`sampling_work_seconds` (NaN when the
        sampling time is unknown). Compile and warm-up time are not counted.
    """
    names = _check_vars(idata, key_variables(idata) if var_names is None else var_names)
    if not 0.0 < hdi_prob < 1.0:
        raise ValueError(f"hdi_prob must be in (0, 1); got {hdi_prob}")
    with warnings.catch_warnings():
        # the constant diagonal of Omega has no variance: arviz divides by zero for it
        warnings.simplefilter("ignore", RuntimeWarning)
        table = az.summary(idata, var_names=names, hdi_prob=hdi_prob, round_to="none")
    if "Omega" in names:
        keep = {n for n, _, _ in scalar_names(idata, ["Omega"])}
        table = table[[not i.startswith("Omega[") or i in keep for i in table.index]]
    seconds = sampling_work_seconds(fit_attrs(idata))
    if seconds is None or seconds <= 0:
        table["ess_bulk_per_s"] = np.nan
    else:
        table["ess_bulk_per_s"] = table["ess_bulk"] / seconds
    return table


def sampling_work_seconds(attrs: Mapping[str, Any]) -> float | None:
    """Seconds of sampling work that ESS per second divides by: summed over chains.

    Every sampler records ``sampling_chain_seconds``: each chain's sampling phase
    (warm-up and compile excluded), summed over chains, i.e. the time one core
    would take to run every chain in turn. This makes ESS per second comparable
    across samplers that run chains in parallel processes (Stan, PyMC), threads
    (nutpie) or one vectorised loop (the numpy Metropolis), and across machines
    with other core counts. Results without it fall back to ``sampling_seconds``.
    """
    seconds = _float_attr(attrs, "sampling_chain_seconds")
    return seconds if seconds is not None else _float_attr(attrs, "sampling_seconds")


def ess_per_second(idata: az.InferenceData, var_names: Sequence[str] | None = None) -> float:
    """Smallest bulk-ESS among ``var_names`` per second of sampling work.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit with ``attrs['sampling_chain_seconds']`` (see :func:`sampling_work_seconds`).
    var_names : sequence of str, optional
        Posterior variables considered; default the population-level ones.

    Returns
    -------
    float
        ``min ess_bulk / sampling_chain_seconds``; NaN when the sampling time is unknown or
        not positive.
    """
    names = _check_vars(idata, key_variables(idata) if var_names is None else var_names)
    seconds = sampling_work_seconds(fit_attrs(idata))
    if seconds is None or seconds <= 0:
        return float("nan")
    return float(_ess_rhat(idata, names)["ess_bulk"].min() / seconds)


def sampler_stats(idata: az.InferenceData, var_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit-level numbers: divergences, E-BFMI, tree depth, R-hat, ESS, timings.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit produced by one of the package's samplers (NUTS or Metropolis).
    var_names : sequence of str, optional
        Posterior variables over which R-hat and ESS are taken (worst value); default
        the population-level ones.

    Returns
    -------
    dict
        ``divergences`` (int; None when the sampler records no ``diverging``),
        ``divergence_rate`` (fraction of draws; None likewise), ``ebfmi`` (list, one
        float per chain; None without ``energy``), ``min_ebfmi``,
        ``tree_depth_max_hits`` (draws that reached ``max_treedepth``, the fit's
        ``attrs["max_treedepth"]`` or Stan's default 10; None when absent),
        ``max_rhat`` and ``max_rhat_var``, ``min_ess_bulk`` and ``min_ess_bulk_var``,
        ``min_ess_tail``, ``sampling_seconds`` (slowest chain) / ``sampling_chain_seconds``
        (summed over chains, see :func:`sampling_work_seconds`) / ``compile_seconds`` /
        ``warmup_seconds`` (None when unknown), ``min_ess_bulk_per_s`` (NaN when the
        sampling time is unknown), ``n_chains``, ``n_draws`` (per chain) and
        ``sampler``, ``engine``, ``parameterization`` from the attributes (None when
        missing).
    """
    names = _check_vars(idata, key_variables(idata) if var_names is None else var_names)
    attrs = fit_attrs(idata)
    n_chains = int(idata.posterior.sizes["chain"])
    n_draws = int(idata.posterior.sizes["draw"])

    diverging = _sample_stat(idata, "diverging")
    divergences: int | None = None
    divergence_rate: float | None = None
    if diverging is not None:
        divergences = int(np.count_nonzero(diverging.astype(bool)))
        divergence_rate = divergences / diverging.size if diverging.size else float("nan")

    ebfmi: list[float] | None = None
    min_ebfmi: float | None = None
    energy = _sample_stat(idata, "energy")
    if energy is not None:
        ebfmi = [float(v) for v in np.atleast_1d(az.bfmi(np.asarray(energy, dtype=float)))]
        min_ebfmi = float(np.nanmin(ebfmi)) if ebfmi else None

    depth = _sample_stat(idata, "tree_depth")
    max_depth = _float_attr(attrs, "max_treedepth")
    max_depth = int(max_depth) if max_depth is not None else MAX_TREE_DEPTH
    depth_hits = None if depth is None else int(np.count_nonzero(depth >= max_depth))

    conv = _ess_rhat(idata, names)
    seconds = sampling_work_seconds(attrs)
    min_bulk = float(conv["ess_bulk"].min())
    per_s = min_bulk / seconds if seconds is not None and seconds > 0 else float("nan")
    return {
        "sampler": _str_attr(attrs, "sampler"),
        "engine": _str_attr(attrs, "engine"),
        "parameterization": _str_attr(attrs, "parameterization"),
        "n_chains": n_chains,
        "n_draws": n_draws,
        "divergences": divergences,
        "divergence_rate": divergence_rate,
        "ebfmi": ebfmi,
        "min_ebfmi": min_ebfmi,
        "tree_depth_max_hits": depth_hits,
        "max_treedepth": max_depth,
        "max_rhat": float(conv["r_hat"].max()),
        "max_rhat_var": str(conv["r_hat"].idxmax()) if conv["r_hat"].notna().any() else None,
        "min_ess_bulk": min_bulk,
        "min_ess_bulk_var": str(conv["ess_bulk"].idxmin()) if conv["ess_bulk"].notna().any() else None,
        "min_ess_tail": float(conv["ess_tail"].min()),
        "sampling_seconds": _float_attr(attrs, "sampling_seconds"),
        "sampling_chain_seconds": seconds,
        "compile_seconds": _float_attr(attrs, "compile_seconds"),
        "warmup_seconds": _float_attr(attrs, "warmup_seconds"),
        "min_ess_bulk_per_s": per_s,
    }


def recovery(idata: az.InferenceData, truth: Any = None, prob: float = 0.9) -> pd.DataFrame:
    """Compare the posterior of a, mu_b, sigma_b (and eps) with the true values.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit of simulated data.
    truth : Mapping[str, float], object with a ``.truth`` mapping, or None
        True values; None reads ``true_*`` from ``idata.attrs``.
    prob : float, default 0.9
        Mass of the central (equal-tailed) posterior interval.

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter: ``a``, ``mu_b``, ``sigma_b`` when their truth is known,
        and ``eps`` only when its true value is > 0 (a truth on the boundary, such as
        the default eps = 0, cannot be covered by an interval inside (0, inf)).
        Columns ``truth, mean, sd, z, lower, upper, covered`` with
        ``z = (mean - truth) / sd`` and ``covered = lower <= truth <= upper``.

    Raises
    ------
    ValueError
        When no true value is known (pass ``truth={'a': ..., ...}``) or ``prob`` is
        not in (0, 1).
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be in (0, 1); got {prob}")
    if is_general(idata.posterior.data_vars):
        return _recovery_general(idata, truth, prob)
    known = resolve_truth(idata, truth)
    params = [p for p in ("a", "mu_b", "sigma_b") if p in known]
    if known.get("eps", 0.0) > 0:
        params.append("eps")
    if not params:
        raise ValueError(
            f"the only true value known is eps = {known.get('eps')}, which is on the "
            "boundary and not checked; pass truth={'a': ..., 'mu_b': ..., 'sigma_b': ...}"
        )
    _check_vars(idata, params)
    tail = (1.0 - prob) / 2.0
    rows = []
    for p in params:
        draws = _draws(idata, p)
        mean = float(np.mean(draws))
        sd = float(np.std(draws, ddof=1)) if draws.size > 1 else float("nan")
        lower, upper = (float(q) for q in np.quantile(draws, [tail, 1.0 - tail]))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = float(np.divide(mean - known[p], sd))
        rows.append(
            {
                "parameter": p,
                "truth": known[p],
                "mean": mean,
                "sd": sd,
                "z": z,
                "lower": lower,
                "upper": upper,
                "covered": bool(lower <= known[p] <= upper),
            }
        )
    table = pd.DataFrame(rows).set_index("parameter")
    table.index.name = None
    table.attrs["prob"] = prob
    return table


def general_truth(idata: az.InferenceData, truth: Any = None) -> dict[str, float]:
    """True values of a formula fit by display name (``beta[x]``, ``tau[x]``, ``sigma``, ``Omega[x, Intercept]``).

    Parameters
    ----------
    truth : mapping, DataFrame from :func:`hierlin_stan.simulate`, or None
        ``{"beta": {term: value}, "tau": {...}, "sigma": s, "Omega": [[...]]}`` (what
        ``simulate(formula=...)`` stores in ``attrs["hierlin_truth"]``), or flat
        ``{"beta[x]": value, ...}``; None reads ``true_*`` from ``idata.constant_data``.

    Raises
    ------
    ValueError
        When no true value is known.
    """
    if truth is not None and hasattr(truth, "attrs") and isinstance(getattr(truth, "attrs"), dict):
        truth = truth.attrs.get("hierlin_truth", truth)
    found: dict[str, float] = {}
    names = scalar_names(idata)
    if truth is None:
        cd = idata.constant_data if "constant_data" in idata.groups() else None
        for display, var, sel in names:
            key = f"true_{var}"
            if cd is not None and key in cd:
                da = cd[key]
                found[display] = float(da.sel(**{(k if k in da.dims else k): v for k, v in sel.items()}).values)
        if not found:
            raise ValueError("no true values known: this fit has no true_beta/true_tau/true_sigma; pass "
                             "truth= (e.g. the DataFrame from hs.simulate(formula=...))")
        return found
    if not isinstance(truth, Mapping):
        raise ValueError(f"truth must be a mapping or the simulated DataFrame; got {type(truth).__name__}")
    for display, var, sel in names:
        if display in truth:
            found[display] = float(truth[display])
            continue
        if var not in truth:
            continue
        value = truth[var]
        if not sel:
            found[display] = float(value)
        elif var == "Omega":
            terms = list(np.asarray(idata.posterior["Omega"][idata.posterior["Omega"].dims[2]].values))
            (d1, r), (d2, c) = sel.items()
            found[display] = float(np.asarray(value, float)[terms.index(r), terms.index(c)])
        else:
            (_, label), = sel.items()
            if isinstance(value, Mapping) and label in value:
                found[display] = float(value[label])
    if not found:
        raise ValueError(f"truth names none of this fit's parameters ({', '.join(n for n, _, _ in names)})")
    return found


def _recovery_general(idata: az.InferenceData, truth: Any, prob: float) -> pd.DataFrame:
    known = general_truth(idata, truth)
    tail = (1.0 - prob) / 2.0
    rows = []
    boundary = []
    for display, var, sel in scalar_names(idata):
        if display not in known:
            continue
        if var in ("sigma", "tau") and known[display] <= 0:
            boundary.append(display)
            continue
        draws = np.asarray(idata.posterior[var].sel(**sel).values, dtype=float).reshape(-1)
        mean = float(np.mean(draws))
        sd = float(np.std(draws, ddof=1)) if draws.size > 1 else float("nan")
        lower, upper = (float(q) for q in np.quantile(draws, [tail, 1.0 - tail]))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = float(np.divide(mean - known[display], sd))
        rows.append({"parameter": display, "truth": known[display], "mean": mean, "sd": sd, "z": z,
                     "lower": lower, "upper": upper, "covered": bool(lower <= known[display] <= upper)})
    if not rows:
        raise ValueError("no parameter with a known true value off the boundary to check")
    table = pd.DataFrame(rows).set_index("parameter")
    table.index.name = None
    table.attrs["prob"] = prob
    table.attrs["boundary"] = tuple(boundary)
    return table


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# ------------------------------------------------------------------------------ advice

#: Command-line flag of each fit option the advice may name.
CLI_FLAGS = {"adapt_delta": "--adapt-delta", "max_treedepth": "--max-treedepth", "metric": "--metric",
             "draws": "--draws", "warmup": "--warmup"}
#: Stan's defaults, for fits whose attrs do not record the controls.
_STAN_DEFAULTS = {"adapt_delta": 0.8, "max_treedepth": MAX_TREE_DEPTH, "draws": 1000, "warmup": 1000}
_STAN_PARAMETERIZATIONS = ("marginal", "collapsed", "centered", "noncentered")


@dataclasses.dataclass(frozen=True)
class Advice:
    """One remedy the verdict proposes, as a call that exists.

    Attributes
    ----------
    problem : str
        What it addresses: ``divergences``, ``rhat``, ``ess``, ``ebfmi``, ``tree_depth``.
    function : {"fit", "metropolis"}
        ``hs.fit`` (Stan NUTS) or ``hs.metropolis`` (the numpy Metropolis).
    parameterization : str
        ``hs.fit``'s parameterization, or ``hs.metropolis``'s target.
    options : dict
        Keyword arguments of that function, e.g. ``{"adapt_delta": 0.95}``.
    """

    problem: str
    function: str
    parameterization: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    formula: str | None = None

    def python(self) -> str:
        """The Python call, e.g. ``hs.fit(data, "marginal", adapt_delta=0.95)``."""
        head = (f'hs.fit(data, "{self.parameterization}"' if self.function == "fit"
                else f'hs.metropolis(data, target="{self.parameterization}"')
        if self.formula is not None:
            head += f", formula={self.formula!r}"
        return head + "".join(f", {k}={v!r}" for k, v in self.options.items()) + ")"

    def cli(self) -> str | None:
        """The command line, e.g. ``hierlin fit DATA --adapt-delta 0.95`` (None for hs.metropolis)."""
        if self.function != "fit":
            return None
        parts = ["hierlin fit DATA"] + ([f"--formula '{self.formula}'"] if self.formula is not None else [])
        parts.append(f"--parameterization {self.parameterization}")
        parts += [f"{CLI_FLAGS[k]} {v}" for k, v in self.options.items()]
        return " ".join(parts)

    def text(self) -> str:
        """Both calls, for a verdict line."""
        cli = self.cli()
        return self.python() + (f" / {cli}" if cli else "")


def _next_adapt_delta(current: float) -> float:
    for step in (0.95, 0.99, 0.999):
        if step > current + 1e-12:
            return step
    return round(1 - (1 - current) / 2, 6)


def _round_up(value: float, to: int = 100) -> int:
    return int(math.ceil(value / to) * to)


def advice(idata: az.InferenceData, stats: Mapping[str, Any] | None = None) -> list[Advice]:
    """Remedies for the problems of a fit, each a call that exists (see :class:`Advice`).

    Stan fits get ``hs.fit`` calls with the same parameterization and a stronger
    setting (adapt_delta one step higher, max_treedepth + 2, more draws, or the
    marginal parameterization when the centered or non-centered one is in use); numpy
    Metropolis fits get ``hs.metropolis`` with more draws; other samplers (PyMC,
    nutpie) get Stan's marginal NUTS.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit produced by one of the package's samplers.
    stats : mapping, optional
        :func:`sampler_stats` of ``idata`` when already computed.
    """
    st = dict(stats) if stats is not None else sampler_stats(idata)
    attrs = fit_attrs(idata)
    sampler = st.get("sampler") or ""
    param = st.get("parameterization") or "marginal"
    current = {k: _float_attr(attrs, k) or v for k, v in _STAN_DEFAULTS.items()}
    if sampler == "metropolis":
        function, where = "metropolis", param if param in ("full", "marginal") else "full"
    elif sampler == "nuts" and param in _STAN_PARAMETERIZATIONS:
        function, where = "fit", param
    else:
        function, where = "fit", "marginal"  # PyMC, nutpie: the package's Stan fit
    # centered / non-centered (Stan or PyMC): the remedy is the marginal parameterization
    reparameterize = function == "fit" and param not in ("marginal", "collapsed")
    formula = _str_attr(attrs, "formula")
    out: list[Advice] = []

    def add(problem: str, **options: Any) -> None:
        if reparameterize:
            out.append(Advice(problem, "fit", "marginal", {}, formula))
        else:
            out.append(Advice(problem, function, where, options, formula))

    if st.get("divergences"):
        if function == "fit":
            add("divergences", adapt_delta=_next_adapt_delta(current["adapt_delta"]))
    rhat, bulk, tail = st.get("max_rhat"), st.get("min_ess_bulk"), st.get("min_ess_tail")
    draws, warmup = int(current["draws"]), int(current["warmup"])
    if rhat is not None and math.isfinite(rhat) and rhat > RHAT_MAX:
        add("rhat", warmup=max(2 * warmup, 1000), draws=max(2 * draws, 1000))
    if bulk is not None and tail is not None and math.isfinite(bulk) and math.isfinite(tail) \
            and min(bulk, tail) < ESS_MIN:
        factor = 1.2 * ESS_MIN / max(min(bulk, tail), 1.0)
        add("ess", draws=_round_up(max(2 * draws, draws * factor)))
    if st.get("min_ebfmi") is not None and st["min_ebfmi"] < EBFMI_MIN and function == "fit":
        add("ebfmi", warmup=max(2 * warmup, 2000))
    if st.get("tree_depth_max_hits") and function == "fit":
        add("tree_depth", max_treedepth=min(int(current["max_treedepth"]) + 2, 30))
        if not reparameterize and st.get("engine") == "cmdstan":  # httpstan has no dense metric
            out.append(Advice("tree_depth", "fit", where, {"metric": "dense"}, formula))
    return out


def _remedy(items: list[Advice], problem: str) -> str:
    """The advice of ``problem`` as a sentence ending a verdict line ('' when none)."""
    found = [a for a in items if a.problem == problem]
    if not found:
        return ""
    return " Try " + "; or ".join(a.text() for a in found) + "."


class Verdict(RichDisplay, str):
    """The text of :func:`verdict` (a ``str``: print it, split it, compare it), and its counts.

    In Jupyter it displays as coloured lines ([OK] green, [WARNING] amber, [PROBLEM]
    red); its plain text is unchanged.

    Attributes
    ----------
    problems : int
        Checks that failed: do not trust the estimates.
    warnings : int
        Checks worth reading that do not invalidate the estimates.
    """

    problems: int
    warnings: int

    def __new__(cls, text: str = "", problems: int = 0, warnings: int = 0) -> "Verdict":
        self = super().__new__(cls, text)
        self.problems = int(problems)
        self.warnings = int(warnings)
        return self

    def __getnewargs__(self) -> tuple[str, int, int]:  # pickling keeps the counts
        return (str(self), self.problems, self.warnings)

    @property
    def ok(self) -> bool:
        """True when no check found a problem (warnings allowed)."""
        return self.problems == 0

    @property
    def headline(self) -> str:
        """The first line: who sampled, and the overall judgement."""
        return self.split("\n", 1)[0]

    def lines(self) -> list[tuple[str, str]]:
        """The checks as (tag, text) pairs, tag one of ``OK``, ``WARNING``, ``PROBLEM``, ``n/a``."""
        out = []
        for line in self.splitlines()[1:]:
            tag, sep, text = line.partition("] ")
            if line.startswith("[") and sep:
                out.append((tag[1:], text))
            elif line.strip():
                out.append(("", line))
        return out

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's plain text: the lines, not a quoted str
        printer.text(str(self))


def verdict(idata: az.InferenceData, truth: Any = None) -> Verdict:
    """A short plain-English verdict on a fit: can its estimates be trusted?

    Checks, one line each, tagged ``[OK]``, ``[WARNING]``, ``[PROBLEM]`` or ``[n/a]``:
    divergent transitions, max R-hat (vs 1.01), min bulk- and tail-ESS (vs 400),
    E-BFMI (vs 0.3), tree-depth saturation, and recovery of a, mu_b, sigma_b (and eps
    when its truth is > 0) by the 90 % central interval. Nothing is hidden: every
    problem found gets its own line and is counted in the first line.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit produced by one of the package's samplers.
    truth : Mapping[str, float], object with a ``.truth`` mapping, or None
        True values; None reads ``true_*`` from ``idata.attrs``. When no truth is
        known at all, the recovery line says so instead of raising (a verdict on real
        data is still useful).

    Returns
    -------
    Verdict
        A ``str`` of several lines, the first an overall verdict, with the counts
        ``problems`` and ``warnings``; rich (coloured) display in Jupyter.
    """
    stats = sampler_stats(idata)
    general = is_general(idata.posterior.data_vars)
    remedies = advice(idata, stats)
    lines: list[str] = []
    problems = 0
    warns = 0

    # Divergences.
    if stats["divergences"] is None:
        lines.append(
            f"[n/a] divergences: not recorded by sampler {stats['sampler'] or '(unknown)'!s}."
        )
    elif stats["divergences"] > 0:
        problems += 1
        if stats["parameterization"] in ("marginal", "collapsed"):
            fix = (
                f"The {stats['parameterization']} parameterization is already in use: raise adapt_delta "
                "(smaller steps) and check the data and priors."
            )
        elif general:
            fix = (
                "In a hierarchical model that is usually the funnel between the group effects u and "
                "their scales tau (or sigma); use parameterization='marginal', which integrates u out "
                "and removes it."
            )
        else:
            fix = (
                "In this model that is the funnel between the slopes b and eps as eps -> 0; "
                "use parameterization='marginal', which integrates b out and removes it."
            )
        fix += _remedy(remedies, "divergences")
        lines.append(
            f"[PROBLEM] {stats['divergences']} divergent transitions "
            f"({100 * stats['divergence_rate']:.2g}% of draws): the posterior geometry is too "
            f"hard for the sampler, so the draws may be biased. {fix}"
        )
    else:
        lines.append("[OK] no divergent transitions.")

    # R-hat.
    rhat = stats["max_rhat"]
    if not math.isfinite(rhat):
        problems += 1
        lines.append("[PROBLEM] R-hat could not be computed (constant or non-finite draws).")
    elif rhat > RHAT_MAX:
        problems += 1
        lines.append(
            f"[PROBLEM] max R-hat {rhat:.3f} ({stats['max_rhat_var']}) > {RHAT_MAX}: the chains "
            "disagree, they have not converged to the same distribution."
            + _remedy(remedies, "rhat")
        )
    else:
        lines.append(f"[OK] max R-hat {rhat:.3f} <= {RHAT_MAX}.")

    # ESS.
    bulk, tail_ess = stats["min_ess_bulk"], stats["min_ess_tail"]
    if not (math.isfinite(bulk) and math.isfinite(tail_ess)):
        problems += 1
        lines.append("[PROBLEM] ESS could not be computed (constant or non-finite draws).")
    elif bulk < ESS_MIN or tail_ess < ESS_MIN:
        problems += 1
        lines.append(
            f"[PROBLEM] min bulk-ESS {bulk:.0f} ({stats['min_ess_bulk_var']}), min tail-ESS "
            f"{tail_ess:.0f}; at least {ESS_MIN} are needed for reliable means and intervals."
            + (_remedy(remedies, "ess") or " Draw more.")
        )
    else:
        lines.append(f"[OK] min bulk-ESS {bulk:.0f}, min tail-ESS {tail_ess:.0f} (>= {ESS_MIN}).")

    # E-BFMI.
    if stats["ebfmi"] is None:
        lines.append("[n/a] E-BFMI: no energy recorded (only HMC samplers record it).")
    else:
        low = [i for i, v in enumerate(stats["ebfmi"]) if v < EBFMI_MIN]
        if low:
            warns += 1
            lines.append(
                f"[WARNING] E-BFMI < {EBFMI_MIN} in chain(s) {', '.join(map(str, low))} "
                f"(min {stats['min_ebfmi']:.2f}): momentum resampling explores the energy "
                "distribution poorly, a sign of heavy tails or a funnel."
                + _remedy(remedies, "ebfmi")
            )
        else:
            lines.append(f"[OK] E-BFMI >= {EBFMI_MIN} in every chain (min {stats['min_ebfmi']:.2f}).")

    # Tree depth (only worth a line when it bites).
    if stats["tree_depth_max_hits"]:
        warns += 1
        lines.append(
            f"[WARNING] {stats['tree_depth_max_hits']} draws reached the maximum tree depth "
            f"{stats['max_treedepth']}: trajectories were cut short (an efficiency problem)."
            + _remedy(remedies, "tree_depth")
        )

    # Recovery.
    try:
        rec = recovery(idata, truth, prob=0.9)
    except ValueError as err:
        lines.append(f"[n/a] recovery not checked: {err}")
    else:
        missed = rec[~rec["covered"]]
        inside = [p for p in rec.index if rec.loc[p, "covered"]]
        parts = [
            f"{p} (truth {_fmt(r['truth'])}, mean {_fmt(r['mean'])}, z = {r['z']:+.1f})"
            for p, r in missed.iterrows()
        ]
        if len(missed):
            far = bool((missed["z"].abs() > 4).any())
            if far:
                problems += 1
            else:
                warns += 1
            tag = "[PROBLEM]" if far else "[WARNING]"
            lines.append(
                f"{tag} recovery: outside the 90% interval: {'; '.join(parts)}"
                + (f"; inside: {', '.join(inside)}." if inside else ".")
                + ("" if far else " (about 1 in 10 misses is expected by chance.)")
            )
        else:
            lines.append(f"[OK] recovery: {', '.join(inside)} inside their 90% intervals.")
        known = {} if general else resolve_truth(idata, truth)
        if "sigma" in rec.attrs.get("boundary", ()):
            lines.append("[n/a] sigma not checked: its true value 0 is on the boundary.")
        if "eps" in known and known["eps"] <= 0:
            lines.append(
                f"[n/a] eps not checked: its true value {_fmt(known['eps'])} is on the boundary."
            )

    who = ", ".join(
        str(stats[k]) for k in ("sampler", "engine", "parameterization") if stats[k] is not None
    )
    head = f"Fit ({who or 'unknown sampler'}; {stats['n_chains']} chains x {stats['n_draws']} draws): "
    if problems:
        head += f"{problems} problem(s), {warns} warning(s) -- do not trust these estimates yet."
    elif warns:
        head += f"no problems, {warns} warning(s) -- usable, but read the warnings."
    else:
        head += "all checks passed."
    return Verdict("\n".join([head, *lines]), problems, warns)
