"""Plots of benchmark results."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import NullFormatter

from .plots import plt

__all__ = ["plot_scaling", "plot_programs"]


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


def plot_programs(frame: pd.DataFrame, ax: Sequence[Axes] | None = None) -> Sequence[Axes]:
    """ESS per chain-second and ms per gradient of each program variant, one panel row per dataset.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`bench_programs` output (columns data, variant, ess_per_chain_second and
        ms_per_gradient or ms_per_density); rows with an error are left out.
    ax : sequence of Axes, optional
        Two per dataset (ESS per chain-second, ms per gradient), in dataset order.

    Returns
    -------
    list of matplotlib Axes
    """
    needed = ["data", "variant", "ess_per_chain_second"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing}; give the output of bench_programs()")
    ok = frame[pd.to_numeric(frame["ess_per_chain_second"], errors="coerce") > 0]
    if ok.empty:
        raise ValueError("no program variant has a positive ESS per chain-second to plot")
    keys = list(dict.fromkeys(ok["data"]))
    if ax is None:
        _, grid = plt.subplots(len(keys), 2, figsize=(11, 0.45 * len(ok) + 1.2 * len(keys)), squeeze=False,
                               layout="constrained", gridspec_kw={"width_ratios": [3, 2]})
        ax = [a for row in grid for a in row]
    palette = {"fused": "#55a868", "pure": "#4c72b0", "pystan": "#8172b2", "nutpie": "#dd8452",
               "metropolis": "#937860"}
    for k, key in enumerate(keys):
        rows = ok[ok["data"] == key].iloc[::-1]
        labels = list(rows["variant"])
        colors = [next((c for tag, c in palette.items() if tag in v), "#999999") for v in labels]
        ess, speed = ax[2 * k], ax[2 * k + 1]
        values = rows["ess_per_chain_second"].astype(float)
        ess.barh(labels, values, color=colors)
        ess.set_xscale("log")
        for y, v in enumerate(values):
            ess.annotate(f"{v:,.0f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        n, j = rows["N"].iloc[0], rows["J"].iloc[0]
        ess.set_title(f"{key}: N = {n:,}, J = {j:,} - min bulk-ESS per chain-second (log)", fontsize=10, loc="left")
        cost = rows.get("ms_per_gradient", pd.Series(index=rows.index, dtype=float)).astype(float)
        if "ms_per_density" in rows:
            cost = cost.fillna(rows["ms_per_density"].astype(float))
        speed.barh(labels, cost, color=colors)
        speed.set_xscale("log")
        speed.set_yticklabels([])
        speed.set_title("ms per gradient (Metropolis: per density)", fontsize=10, loc="left")
        for y, v in enumerate(cost):
            if np.isfinite(v):
                speed.annotate(f"{v:.3g}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        for a, vals in ((ess, values), (speed, cost)):
            finite = vals[np.isfinite(vals) & (vals > 0)]
            if len(finite):  # bars grow from a round decade below the smallest, with room for the labels
                a.set_xlim(10 ** np.floor(np.log10(finite.min())), 10 ** (np.log10(finite.max()) + 0.35))
            a.xaxis.set_minor_formatter(NullFormatter())
            a.grid(axis="x", which="major", alpha=0.3)
            a.spines[["top", "right"]].set_visible(False)
    return ax
