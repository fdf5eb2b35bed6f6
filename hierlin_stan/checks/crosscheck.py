"""Cross-check two fits of the same posterior: are their means equal within Monte Carlo error?

Two correct samplers (Stan and PyMC, NUTS and Metropolis, two parameterizations)
targeting the same posterior give posterior means that differ only by Monte Carlo
error. For each parameter,

    z = (mean_a - mean_b) / sqrt(mcse_a^2 + mcse_b^2)

is then approximately standard normal, and ``|z| <= threshold`` (default 4) passes.
The MCSE come from ArviZ (unrounded ``az.summary``), so they account for
autocorrelation; they are only as trustworthy as the chains: a fit with R-hat far
above 1 or a handful of effective draws has meaningless MCSE, so look at
:func:`hierlin_stan.diagnostics.verdict` of both fits too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..model.params import key_variables, scalar_names
from ..utils.az import az

__all__ = ["cross_check", "cross_check_report"]

_LABEL_KEYS = ("sampler", "engine", "parameterization")


def cross_check(
    idata_a: "az.InferenceData",
    idata_b: "az.InferenceData",
    var_names: Sequence[str] | None = None,
    threshold: float = 4.0,
) -> pd.DataFrame:
    """Compare the posterior means of two fits in units of their combined MCSE.

    Parameters
    ----------
    idata_a, idata_b : arviz.InferenceData
        Two fits of the same model and data (e.g. :func:`hierlin_stan.fit` and
        :func:`hierlin_stan.pymc_backend.fit_pymc`).
    var_names : sequence of str, optional
        Posterior variables to compare; a vector variable (``b``, ``beta``) gives one
        row per element (``b[1]``, ``beta[x]``, ...). Default the population-level
        ones of ``idata_a``: a, mu_b, sigma_b, eps, or beta, tau, sigma, Omega.
    threshold : float, default 4.0
        Largest ``|z|`` that passes. Must be positive.

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter, columns ``mean_a, mean_b, mcse_a, mcse_b, z, passed``
        with ``z = (mean_a - mean_b) / sqrt(mcse_a**2 + mcse_b**2)`` and
        ``passed = |z| <= threshold``. A row whose z cannot be computed (NaN MCSE)
        does not pass; two identical constants give z = 0. ``table.attrs`` holds
        ``passed`` (all rows passed), ``threshold``, ``max_abs_z`` and ``label_a``,
        ``label_b`` (sampler, engine and parameterization of each fit).

    Raises
    ------
    ValueError
        When a variable is missing from either fit (the message lists what is
        there), the element labels of a vector variable differ, or the threshold
        is not a positive number.
    """
    if var_names is None:
        var_names = key_variables(idata_a)
    if isinstance(var_names, str):
        var_names = [var_names]
    names = list(var_names)
    if not names:
        raise ValueError("var_names is empty; give at least one posterior variable, e.g. ('a', 'mu_b')")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold={threshold!r} must be a positive number such as 4.0") from None
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold={threshold!r} must be a positive number such as 4.0")
    for label, idata in (("idata_a", idata_a), ("idata_b", idata_b)):
        if "posterior" not in idata.groups():
            raise ValueError(f"{label} has no posterior group; pass the result of a fit")
        missing = [v for v in names if v not in idata.posterior.data_vars]
        if missing:
            raise ValueError(
                f"variable(s) {missing} not in {label}'s posterior; available: {sorted(idata.posterior.data_vars)}"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant entries (Omega's diagonal)
        sum_a = az.summary(idata_a, var_names=names, kind="all", round_to="none")
        sum_b = az.summary(idata_b, var_names=names, kind="all", round_to="none")
    if "Omega" in names:  # its correlations once each, not the constant diagonal
        keep = {n for n, _, _ in scalar_names(idata_a, ["Omega"])}
        sum_a = sum_a[[not i.startswith("Omega[") or i in keep for i in sum_a.index]]
        sum_b = sum_b[[not i.startswith("Omega[") or i in keep for i in sum_b.index]]
    if list(sum_a.index) != list(sum_b.index):
        only_a = sorted(set(sum_a.index) - set(sum_b.index))
        only_b = sorted(set(sum_b.index) - set(sum_a.index))
        raise ValueError(
            f"the fits' parameters do not line up: only in idata_a {only_a[:5]}, only in idata_b {only_b[:5]}; "
            "compare fits of the same data (same number of groups)"
        )
    table = pd.DataFrame(
        {
            "mean_a": sum_a["mean"].astype(float),
            "mean_b": sum_b["mean"].astype(float),
            "mcse_a": sum_a["mcse_mean"].astype(float),
            "mcse_b": sum_b["mcse_mean"].astype(float),
        },
        index=sum_a.index,
    )
    diff = (table["mean_a"] - table["mean_b"]).to_numpy()
    scale = np.hypot(table["mcse_a"].to_numpy(), table["mcse_b"].to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(scale > 0, diff / scale, np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    z = np.where(np.isnan(scale), np.nan, z)
    table["z"] = z
    table["passed"] = np.abs(z) <= threshold  # NaN compares False: not passed
    table.index.name = None
    table.attrs["passed"] = bool(table["passed"].all())
    table.attrs["threshold"] = threshold
    finite = np.abs(z[~np.isnan(z)])
    table.attrs["max_abs_z"] = float(finite.max()) if finite.size else float("nan")
    table.attrs["label_a"] = _label(idata_a)
    table.attrs["label_b"] = _label(idata_b)
    return table


def cross_check_report(table: pd.DataFrame) -> str:
    """Render a :func:`cross_check` table as Markdown with a one-line verdict.

    Parameters
    ----------
    table : pandas.DataFrame
        The result of :func:`cross_check` (its ``attrs`` give the threshold and labels).

    Returns
    -------
    str
        A Markdown table (parameter, the two means, the two MCSE, z, pass/FAIL)
        followed by a verdict line that states the threshold.
    """
    needed = ["mean_a", "mean_b", "mcse_a", "mcse_b", "z", "passed"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; pass the DataFrame returned by cross_check()")
    threshold = float(table.attrs.get("threshold", float("nan")))
    label_a = table.attrs.get("label_a", "fit A")
    label_b = table.attrs.get("label_b", "fit B")
    lines = [
        f"| parameter | mean A | mean B | MCSE A | MCSE B | z | |z| <= {threshold:g} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, row in table.iterrows():
        lines.append(
            f"| {name} | {row['mean_a']:.4g} | {row['mean_b']:.4g} | {row['mcse_a']:.2g} | "
            f"{row['mcse_b']:.2g} | {row['z']:+.2f} | {'pass' if row['passed'] else 'FAIL'} |"
        )
    failed = [str(n) for n, ok in table["passed"].items() if not ok]
    head = f"A = {label_a}; B = {label_b}."
    if failed:
        verdict = (
            f"**FAILED**: {', '.join(failed)} {'differs' if len(failed) == 1 else 'differ'} by more than "
            f"{threshold:g} combined MCSE "
            "(|z| > threshold): the two fits do not agree on these posterior means."
        )
    else:
        verdict = (
            f"**PASSED**: all {len(table)} posterior means agree within {threshold:g} combined MCSE "
            f"(max |z| = {table.attrs.get('max_abs_z', float(np.nanmax(np.abs(table['z'])))):.2f})."
        )
    return "\n".join([head, "", *lines, "", verdict])


def _label(idata: "az.InferenceData") -> str:
    attrs = dict(getattr(idata, "attrs", {}) or {})
    if "posterior" in idata.groups():
        attrs = {**dict(idata.posterior.attrs), **attrs}
    parts = [str(attrs[k]) for k in _LABEL_KEYS if attrs.get(k) is not None]
    return " / ".join(parts) if parts else "unlabelled fit"
