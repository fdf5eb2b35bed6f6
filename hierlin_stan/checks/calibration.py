"""Calibration statistics: ranks of true values among posterior draws, and tests of their uniformity.

Pure functions on InferenceData and rank tables, shared by SBC (:mod:`hierlin_stan.workflows.sbc`)
and its plots and report.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..model.dataset import TRUTH_KEYS
from ..model.params import scalar_names

__all__ = ["PARAMS", "rank_record", "default_bins", "ecdf_band", "uniformity", "flat_truth", "scalar_values"]

#: The hyperparameters whose calibration is checked (the notebook's model).
PARAMS: tuple[str, ...] = TRUTH_KEYS


def flat_truth(truth: Mapping[str, Any], term_names: Sequence[str], group_term_names: Sequence[str],
               correlated: bool) -> dict[str, float]:
    """A formula's true values by scalar name: ``beta[x]``, ``tau[x]``, ``sigma``, ``Omega[x, Intercept]``.

    ``truth`` is ``DataFrame.attrs["hierlin_truth"]`` of a simulated dataset (beta and tau by
    term, sigma, Omega as a matrix); correlations are named as
    :func:`hierlin_stan.model.params.scalar_names` names them (row after column, lower triangle).
    """
    out = {f"beta[{t}]": float(truth["beta"][t]) for t in term_names}
    out.update({f"tau[{t}]": float(truth["tau"][t]) for t in group_term_names})
    out["sigma"] = float(truth["sigma"])
    if correlated and len(group_term_names) > 1:
        omega = np.asarray(truth["Omega"], dtype=float)
        for i, row in enumerate(group_term_names):
            for c, col in enumerate(group_term_names[:i]):
                out[f"Omega[{row}, {col}]"] = float(omega[i, c])
    return out


def scalar_values(idata: Any, name: str) -> np.ndarray:
    """Draws (chain, draw) of one scalar of the posterior by name: ``a``, ``beta[x]``, ``Omega[x, Intercept]``."""
    post = idata.posterior
    if name in post.data_vars and not [d for d in post[name].dims if d not in ("chain", "draw")]:
        return np.asarray(post[name].transpose("chain", "draw").values, dtype=float)
    base = name.split("[", 1)[0]
    for display, var, sel in scalar_names(idata, [base] if base in post.data_vars else []):
        if display == name:
            return np.asarray(post[var].sel(**sel).transpose("chain", "draw").values, dtype=float)
    raise ValueError(f"{name!r} is not a scalar of this fit's posterior (variables: {sorted(post.data_vars)})")


def rank_record(idata: Any, truth: Mapping[str, float], n_ranks: int = 99,
                params: Sequence[str] | None = None) -> dict[str, Any]:
    """Ranks of the true values among ``n_ranks`` thinned posterior draws, and summaries.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit with the ranked scalars in its posterior (chain, draw).
    truth : mapping
        True values by scalar name.
    n_ranks : int
        L: the number of draws the truth is ranked among (ranks are 0..L).
    params : sequence of str, optional
        The scalars to rank: default :data:`PARAMS` (a, mu_b, sigma_b, eps); for a formula
        e.g. ``beta[Intercept]``, ``tau[x]``, ``sigma``, ``Omega[x, Intercept]``
        (:func:`flat_truth`).

    Returns
    -------
    dict
        ``ranks`` (int per parameter), ``thin``, ``ess_limited``, ``min_ess_bulk``,
        ``max_rhat``, ``divergences``, ``post_mean``, ``post_sd``, ``z`` (posterior
        z-score of the truth).

    Notes
    -----
    Thinning: ``t = ceil(S / ESS_min)`` per chain (S total draws, ESS_min the smallest
    bulk-ESS over the ranked scalars); L evenly spaced draws are kept from the
    thinned draws of all chains. If fewer than L remain, ``t`` is lowered until L
    remain and ``ess_limited`` is True.
    """
    from ..utils.az import az

    params = list(PARAMS if params is None else params)
    post = idata.posterior
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    total = chains * draws
    if total < n_ranks:
        raise ValueError(f"the fit has {total} draws in all but n_ranks={n_ranks}; "
                         "give the sampler more draws or lower n_ranks")
    values_of = {p: scalar_values(idata, p) for p in params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = {p: float(az.ess(values_of[p], method="bulk")) for p in params}
        rhat = {p: float(az.rhat(values_of[p])) for p in params}
    ess_values = [ess[p] for p in params]
    min_ess = min(ess_values) if all(math.isfinite(v) for v in ess_values) else float("nan")
    thin = max(1, math.ceil(total / min_ess)) if math.isfinite(min_ess) and min_ess > 0 else total
    limited = False
    while chains * math.ceil(draws / thin) < n_ranks:
        thin -= 1
        limited = True
    kept = chains * math.ceil(draws / thin)
    index = np.round(np.linspace(0, kept - 1, n_ranks)).astype(int)
    ranks, mean, sd, z = {}, {}, {}, {}
    for p in params:
        values = values_of[p]
        sample = values[:, ::thin].reshape(-1)[index]
        ranks[p] = int(np.sum(sample < truth[p]))
        mean[p] = float(values.mean())
        sd[p] = float(values.std(ddof=1))
        z[p] = float((mean[p] - truth[p]) / sd[p]) if sd[p] > 0 else float("nan")
    divergences = None
    if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
        divergences = int(np.asarray(idata.sample_stats["diverging"].values).sum())
    rhats = [rhat[p] for p in params]
    return {
        "ranks": ranks,
        "thin": int(thin),
        "ess_limited": bool(limited),
        "min_ess_bulk": _finite_or_none(min_ess),
        "max_rhat": _finite_or_none(max(rhats) if all(math.isfinite(r) for r in rhats) else float("nan")),
        "divergences": divergences,
        "post_mean": mean,
        "post_sd": sd,
        "z": z,
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def default_bins(n_sims: int, n_ranks: int) -> int:
    """Bins for the chi-square test: a divisor of L + 1, at most 20, >= 5 expected per bin."""
    cap = max(2, min(20, n_sims // 5))
    divisors = [b for b in range(2, cap + 1) if (n_ranks + 1) % b == 0]
    return max(divisors) if divisors else cap


def ecdf_band(n_sims: int, n_ranks: int, prob: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simultaneous ``prob`` band for the ECDF of ``n_sims`` uniform ranks on 0..L.

    Returns ``(z, lower, upper)``: fractional ranks z = (r + 1) / (L + 1) for
    r = 0..L-1 and the band of the ECDF there (Säilynoja, Bürkner & Vehtari 2022,
    the optimised method of :func:`arviz.stats.ecdf_utils.ecdf_confidence_band`;
    deterministic).
    """
    return _ecdf_band_cached(int(n_sims), int(n_ranks), float(prob))


_BANDS: dict[tuple[int, int, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _ecdf_band_cached(n_sims: int, n_ranks: int, prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key = (n_sims, n_ranks, prob)
    if key not in _BANDS:
        from arviz.stats.ecdf_utils import ecdf_confidence_band

        r = np.arange(n_ranks)
        z = (r + 1) / (n_ranks + 1)
        lower, upper = ecdf_confidence_band(n_sims, r, z, prob=prob, method="optimized")
        _BANDS[key] = (z, np.asarray(lower, float), np.asarray(upper, float))
    return _BANDS[key]


def uniformity(
    ranks: pd.DataFrame, n_ranks: int, bins: int | None = None, prob: float = 0.95, alpha: float = 0.05
) -> pd.DataFrame:
    """Test each column of ``ranks`` (integers 0..L) for uniformity.

    Parameters
    ----------
    ranks : pandas.DataFrame
        One column per parameter.
    n_ranks : int
        L: ranks lie in 0..L.
    bins : int, optional
        Chi-square bins, 2..L+1 (default: about K / 10, dividing L + 1 evenly where possible).
    prob : float
        Probability of the simultaneous ECDF band shown in the plots (``ecdf_in_band``).
    alpha : float
        Family-wise false-alarm rate of the ``calibrated`` verdict over all parameters:
        with m parameters each runs two tests at level alpha / (2 m) (Bonferroni), so a
        calibrated sampler is called miscalibrated with probability at most ``alpha``.

    Returns
    -------
    pandas.DataFrame
        Per parameter: ``n_sims``, ``bins``, ``chi2``, ``df``, ``p_value`` (chi-square on
        binned ranks), ``ecdf_in_band`` (the ECDF stays inside the simultaneous
        ``prob`` band), ``max_ecdf_diff`` and ``calibrated`` (p >= alpha / (2 m) and the
        ECDF inside the 1 - alpha / (2 m) band). ``attrs`` hold ``alpha`` and ``level``.
    """
    from scipy import stats

    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must lie in (0, 1), e.g. 0.05")
    if bins is not None and not 2 <= bins <= n_ranks + 1:
        raise ValueError(f"bins={bins!r} must lie in 2..L+1 = {n_ranks + 1} (ranks take L + 1 = {n_ranks + 1} values)")
    m = sum(1 for param in ranks.columns if ranks[param].notna().any())
    level = alpha / (2 * max(m, 1))
    rows = {}
    for param in ranks.columns:
        r = ranks[param].dropna().to_numpy(dtype=int)
        k = r.size
        if k == 0:
            continue
        if r.min() < 0 or r.max() > n_ranks:
            raise ValueError(f"ranks of {param} must lie in 0..{n_ranks}")
        b = bins or default_bins(k, n_ranks)
        which = r * b // (n_ranks + 1)
        width = np.bincount(np.arange(n_ranks + 1) * b // (n_ranks + 1), minlength=b)
        observed = np.bincount(which, minlength=b)
        expected = k * width / (n_ranks + 1)
        chi2, p_value = stats.chisquare(observed, expected)
        ecdf = np.searchsorted(np.sort(r), np.arange(n_ranks), side="right") / k

        def inside(band_prob: float) -> bool:
            _, lower, upper = ecdf_band(k, n_ranks, band_prob)
            return bool(np.all((ecdf >= lower - 1e-12) & (ecdf <= upper + 1e-12)))

        z = ecdf_band(k, n_ranks, prob)[0]
        rows[param] = {"n_sims": k, "bins": b, "chi2": float(chi2), "df": b - 1, "p_value": float(p_value),
                       "ecdf_in_band": inside(prob), "max_ecdf_diff": float(np.max(np.abs(ecdf - z))),
                       "calibrated": bool(p_value >= level and inside(1 - level))}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "parameter"
    frame.attrs.update(alpha=alpha, level=level)
    return frame


