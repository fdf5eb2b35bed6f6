"""SBC plots: rank histograms and ECDF-difference plots with simultaneous 95 % bands.

* :func:`plot_rank_histogram`: counts of binned ranks with the band a uniform
  histogram stays in with 99 % probability per bin (Talts et al. 2018).
* :func:`plot_ecdf_difference`: ECDF of the fractional ranks minus the uniform CDF,
  inside the simultaneous 95 % band of Säilynoja, Bürkner & Vehtari (2022). A
  calibrated sampler stays inside the band; a ∪ shape (ECDF below the line, then
  above) means the posterior is too wide, ∩ too narrow, a one-sided excursion a bias.
* :func:`plot_sbc`: both, one column per parameter.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .plots import _pretty, save_figure
from ..checks.calibration import PARAMS, default_bins, ecdf_band, uniformity

if TYPE_CHECKING:  # pragma: no cover
    from ..workflows.sbc import SBCResult

_BAND_COLOR = "#c9d6ea"
_HIST_BAND_COLOR = "#dedede"
_LINE_COLOR = "#1f4e96"
_BAD_COLOR = "#b3261e"


def plot_rank_histogram(ranks: Sequence[int] | np.ndarray, n_ranks: int, bins: int | None = None,
                        ax: Axes | None = None, title: str | None = None) -> Axes:
    """Histogram of ranks 0..L with the 99 % per-bin band of a uniform histogram.

    Parameters
    ----------
    ranks : array-like of int
        Ranks of one parameter, one per simulation.
    n_ranks : int
        L (ranks lie in 0..L).
    bins : int, optional
        Default :func:`hierlin_stan.sbc.default_bins`.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    from scipy import stats

    r = np.asarray(ranks, dtype=int)
    ax = ax if ax is not None else _new_axes()
    k = r.size
    b = bins or default_bins(max(k, 1), n_ranks)
    width = np.bincount(np.arange(n_ranks + 1) * b // (n_ranks + 1), minlength=b)
    edges = np.concatenate([[0], np.cumsum(width)]) / (n_ranks + 1)
    counts = np.bincount(r * b // (n_ranks + 1), minlength=b) if k else np.zeros(b)
    p = width / (n_ranks + 1)
    lo, hi = stats.binom.ppf(0.005, k, p), stats.binom.ppf(0.995, k, p)
    outside = (counts < lo) | (counts > hi)
    ax.fill_between(np.repeat(edges, 2)[1:-1], np.repeat(lo, 2), np.repeat(hi, 2), color=_HIST_BAND_COLOR,
                    lw=0, label="99% band per bin (uniform)")
    ax.plot([], [], color="#333333", lw=1, ls="--", label="expected (uniform)")
    colors = np.where(outside, _BAD_COLOR, _LINE_COLOR)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colors, alpha=0.8, edgecolor="white", lw=0.6,
           zorder=2)
    ax.stairs(k * p, edges, color="#333333", lw=1, ls="--", zorder=3)
    for bound in (lo, hi):  # the band's edges stay visible over the bars
        ax.stairs(bound, edges, baseline=None, color="#9a9a9a", lw=0.8, zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(float(np.max(hi)), float(counts.max()) if k else 1.0) * 1.12)
    ax.set_xlabel("fractional rank of the truth")
    ax.set_ylabel("simulations")
    if title:
        ax.set_title(title)
    return ax


def plot_ecdf_difference(ranks: Sequence[int] | np.ndarray, n_ranks: int, prob: float = 0.95,
                         ax: Axes | None = None, title: str | None = None) -> Axes:
    """ECDF of the fractional ranks minus the uniform CDF, with the simultaneous band.

    Parameters
    ----------
    ranks : array-like of int
        Ranks of one parameter (0..L), one per simulation.
    n_ranks : int
        L.
    prob : float
        Simultaneous coverage of the band (default 0.95).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    r = np.sort(np.asarray(ranks, dtype=int))
    ax = ax if ax is not None else _new_axes()
    k = r.size
    if k == 0:
        ax.text(0.5, 0.5, "no finished simulations", ha="center", va="center", transform=ax.transAxes)
        return ax
    z, lower, upper = ecdf_band(k, n_ranks, prob)
    ecdf = np.searchsorted(r, np.arange(n_ranks), side="right") / k
    diff = ecdf - z
    zz = np.concatenate([[0.0], z, [1.0]])
    pad = lambda v: np.concatenate([[0.0], v, [0.0]])  # noqa: E731  (the ECDF difference is 0 at both ends)
    ax.fill_between(zz, pad(lower - z), pad(upper - z), step="post", color=_BAND_COLOR, lw=0,
                    label=f"{prob:.0%} simultaneous band")
    ax.axhline(0, color="#555555", lw=0.8, ls="--")
    out = (ecdf < lower - 1e-12) | (ecdf > upper + 1e-12)
    color = _BAD_COLOR if out.any() else _LINE_COLOR
    ax.step(zz, pad(diff), where="post", color=color, lw=1.6, label="ECDF - uniform")
    if out.any():
        ax.plot(z[out], diff[out], "o", ms=3, color=_BAD_COLOR, label="outside the band")
    span = max(float(np.max(upper - z)), float(np.max(np.abs(diff))))
    ax.set_ylim(-1.2 * span, 1.2 * span)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fractional rank of the truth")
    ax.set_ylabel("ECDF difference")
    if title:
        ax.set_title(title)
    return ax


def plot_sbc(ranks: pd.DataFrame, n_ranks: int, kind: str = "both", prob: float = 0.95,
             path: str | os.PathLike[str] | None = None, title: str | None = None,
             axes: np.ndarray | None = None) -> np.ndarray:
    """Rank histograms (top row) and ECDF-difference plots (bottom row), one column per parameter.

    Parameters
    ----------
    ranks : pandas.DataFrame
        One column per parameter (as :attr:`SBCResult.ranks`).
    n_ranks : int
        L.
    kind : {"both", "hist", "ecdf"}
    prob : float
        Coverage of the ECDF band.
    path : path, optional
        Save the figure there (atomically).
    title : str, optional
        Figure title.
    axes : array of Axes, optional
        Rows x parameters axes to draw into.

    Returns
    -------
    numpy.ndarray of Axes
    """
    import matplotlib.pyplot as plt

    if kind not in ("both", "hist", "ecdf"):
        raise ValueError(f"kind={kind!r} is unknown; use 'both', 'hist' or 'ecdf'")
    params = [p for p in PARAMS if p in ranks.columns] or list(ranks.columns)
    rows = ["hist", "ecdf"] if kind == "both" else [kind]
    if axes is None:
        fig, axes = plt.subplots(len(rows), len(params), figsize=(3.4 * len(params), 2.9 * len(rows)),
                                 squeeze=False, constrained_layout=True)
    else:
        axes = np.asarray(axes).reshape(len(rows), len(params))
        fig = axes.flat[0].figure
    tests = uniformity(ranks[params], n_ranks, prob=prob) if len(ranks) else None
    for j, param in enumerate(params):
        label = _pretty(param)
        if tests is not None and param in tests.index:
            t = tests.loc[param]
            pv = t["p_value"]
            label += f"   (χ² p = {pv:.2f}" if pv >= 0.01 else f"   (χ² p = {pv:.0e}"
            label += ")" if t["ecdf_in_band"] else ", out of band)"
        for i, row in enumerate(rows):
            ax = axes[i, j]
            if row == "hist":
                plot_rank_histogram(ranks[param], n_ranks, ax=ax, title=label)
            else:
                plot_ecdf_difference(ranks[param], n_ranks, prob=prob, ax=ax, title=label if i == 0 else None)
            if j > 0:
                ax.set_ylabel("")
            if i < len(rows) - 1:
                ax.set_xlabel("")
    handles = {}
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=len(handles), frameon=False,
               fontsize="small")
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return axes


def _new_axes() -> Axes:
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(4.5, 3.2), constrained_layout=True)[1]


def plot_sbc_result(result: "SBCResult", path: str | os.PathLike[str] | None = None, kind: str = "both") -> Any:
    """Rank histograms and/or ECDF-difference plots of an SBC run (:func:`plot_sbc` on its ranks)."""
    return plot_sbc(result.ranks, result.n_ranks, kind=kind, path=path, title=result.title())
