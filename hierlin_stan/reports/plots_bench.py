"""Plots of benchmark results."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from matplotlib.axes import Axes

from .plots import plt

__all__ = ["plot_scaling"]


def plot_scaling(frame: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Sequence[Axes]:
    """Log-log plots of fit seconds and of ESS per second against N, one line per design.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`bench_scaling` output (columns design, N, fit_seconds, min_ess_bulk_per_s).
    ax : pair of Axes, optional
        Where to draw (seconds, ESS/s); a new figure with two panels when None.

    Returns
    -------
    pair of matplotlib Axes
    """
    needed = ["design", "N", "fit_seconds", "min_ess_bulk_per_s"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing}; give the output of bench_scaling()")
    if frame.empty:
        raise ValueError("frame has no rows; run bench_scaling() with at least one size")
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    ax_t, ax_e = ax
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for k, (design, rows) in enumerate(frame.groupby("design", sort=False)):
        rows = rows.sort_values("N")
        style = dict(marker="o", color=colors[k % len(colors)], label=design, lw=2)
        ax_t.plot(rows["N"], rows["fit_seconds"], **style)
        ax_e.plot(rows["N"], rows["min_ess_bulk_per_s"], **style)
        for n, t in zip(rows["N"], rows["fit_seconds"]):
            ax_t.annotate(f"{t:.3g} s", (n, t), xytext=(4, 4), textcoords="offset points", fontsize=8)
    for a, label in ((ax_t, "fit seconds after summarising (4 chains)"),
                     (ax_e, "min bulk-ESS per sampling second")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("N observations (log)")
        a.set_ylabel(label)
        a.grid(which="major", alpha=0.3)
        a.legend(fontsize=9, frameon=False)
    ax_t.set_title("Stan marginal NUTS: time vs N", fontsize=11)
    ax_e.set_title("Stan marginal NUTS: efficiency vs N", fontsize=11)
    return ax
