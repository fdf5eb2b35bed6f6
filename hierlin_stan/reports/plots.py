"""Plots shared by every sampler: trace, posterior-predictive lines, recovery, efficiency.

Every function draws on axes it is given (``ax=`` or ``axes=``) or on a new figure,
returns the axes, and with ``path=`` also writes a PNG there atomically (see
:func:`save_figure`), so a crash or a parallel reader never sees half a file.

Without a display (a headless Linux host, CI) and without an explicit choice
(``MPLBACKEND``, or pyplot already imported), matplotlib's ``Agg`` backend is selected.
"""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd


def _select_backend() -> None:
    """Use Agg when there is no display and nobody chose a backend."""
    if "matplotlib.pyplot" in sys.modules or os.environ.get("MPLBACKEND"):
        return
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        matplotlib.use("Agg")


_select_backend()

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

from ..checks.diagnostics import HYPER, fit_attrs, general_truth, recovery, resolve_truth  # noqa: E402
from ..model.params import is_general, key_variables, pretty, scalar_draws, scalar_names  # noqa: E402

__all__ = ["save_figure", "plot_trace", "plot_ppc_lines", "plot_recovery", "plot_ess"]

PathLike = str | os.PathLike

#: Colour of the true values (red, as in the original notebook).
TRUTH_COLOR = "#d62728"
_COVERED_COLOR = "#1f77b4"
_MISSED_COLOR = "#d62728"



# --------------------------------------------------------------------------- helpers


def save_figure(fig: Figure, path: PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically.

    The figure is rendered to a uniquely named temporary file in the destination folder
    and moved into place with :func:`os.replace`, so readers see either the old file or
    the complete new one, and parallel writers never share a temporary file.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save.
    path : str or os.PathLike
        Destination. The format follows its suffix when matplotlib knows it, PNG
        otherwise. Missing parent folders are created.
    dpi : int, default 150
        Resolution of raster output.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix.lower().lstrip(".")
    fmt = suffix if suffix in fig.canvas.get_supported_filetypes() else "png"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _pretty(name: str) -> str:
    return pretty(name)


def _fit_title(idata: az.InferenceData, what: str) -> str:
    """``what`` followed by sampler, engine and parameterization when known."""
    attrs = fit_attrs(idata)
    sampler = attrs.get("sampler")
    engine = attrs.get("engine")
    param = attrs.get("parameterization")
    parts = []
    if sampler is not None:
        parts.append(str(sampler).upper() if str(sampler).lower() == "nuts" else str(sampler).capitalize())
    if engine is not None:
        parts.append(f"({engine})")
    who = " ".join(parts)
    if param is not None:
        who = f"{who}, {param} parameterization" if who else f"{param} parameterization"
    return f"{what} \N{EM DASH} {who}" if who else what


# tab10 without its red (kept for the truth) and grey.
_CHAIN_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def _chain_colors(n: int) -> list[Any]:
    return [_CHAIN_PALETTE[i % len(_CHAIN_PALETTE)] for i in range(n)]


def _scalar_rows(idata: az.InferenceData, var_names: Sequence[str]) -> list[tuple[str, str, int | None, np.ndarray]]:
    """(variable, label, element index or None, (chain, draw) values) per plotted row."""
    if isinstance(var_names, str):
        var_names = [var_names]
    post = idata.posterior
    missing = [v for v in var_names if v not in post.data_vars]
    if missing:
        raise ValueError(f"variable(s) {missing} not in the posterior; available: {sorted(post.data_vars)}")
    rows: list[tuple[str, str, int | None, np.ndarray]] = []
    for v in var_names:
        da = post[v]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            rows.append((v, _pretty(v), None, np.asarray(da.transpose("chain", "draw").values, dtype=float)))
            continue
        flat = da.stack(_element=extra).transpose("chain", "draw", "_element")
        labels = flat.indexes["_element"]
        for k in range(flat.sizes["_element"]):
            key = labels[k]
            key = ",".join(map(str, key)) if isinstance(key, tuple) else str(key)
            rows.append((v, f"{_pretty(v)}[{key}]", k, np.asarray(flat.values[:, :, k], dtype=float)))
    if not rows:
        raise ValueError("var_names is empty; give at least one posterior variable")
    return rows


def _row_truth(known: dict[str, float], truth_obj: Any, var: str, element: int | None) -> float | None:
    """True value for a plotted row (scalars from ``known``; vector elements if given)."""
    if element is None:
        return known.get(var)
    source = getattr(truth_obj, "truth", truth_obj)
    values = source.get(var) if isinstance(source, Mapping) else None
    if values is None:
        return None
    arr = np.atleast_1d(np.asarray(values, dtype=float)).reshape(-1)
    return float(arr[element]) if element < arr.size else None


def _density(ax: Axes, values: np.ndarray, color: Any) -> None:
    """Draw one chain's density (KDE; a spike when the draws are constant)."""
    finite = values[np.isfinite(values)]
    if finite.size < 2 or np.ptp(finite) == 0:
        if finite.size:
            ax.axvline(finite[0], color=color, lw=1.5)
        return
    grid, pdf = az.kde(finite)
    ax.plot(grid, pdf, color=color, lw=1.3)


# ----------------------------------------------------------------------------- plots


def plot_trace(
    idata: az.InferenceData,
    truth: Any = None,
    var_names: Sequence[str] | None = None,
    axes: np.ndarray | None = None,
    path: PathLike | None = None,
) -> np.ndarray:
    """Trace plot with the true values marked (the notebook's figure, done properly).

    One row per variable: on the left the posterior density of each chain, on the right
    each chain's trace (thin lines, one colour per chain). True values are red lines on
    both panels when known (eps too, even when it is 0); divergent draws are black ticks
    under the trace and under the density (at the values where they happened).

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit produced by one of the package's samplers.
    truth : Mapping[str, float], object with a ``.truth`` mapping, or None
        True values; None reads ``true_*`` from ``idata.attrs`` and draws no truth
        lines when there are none.
    var_names : sequence of str, optional
        Variables to plot; vector variables get one row per element (Omega: its
        correlations). Default the population-level ones: a, mu_b, sigma_b, eps, or
        for a formula beta, tau, sigma, Omega.
    axes : array of matplotlib Axes, shape (n_rows, 2), optional
        Where to draw; a new figure when None.
    path : str or os.PathLike, optional
        When given, the figure is also saved there (atomically, see :func:`save_figure`).

    Returns
    -------
    numpy.ndarray
        The axes, shape ``(n_rows, 2)``.
    """
    general = is_general(idata.posterior.data_vars)
    if var_names is None:
        var_names = key_variables(idata)
    if general:
        rows = [(display, _pretty(display), display,
                 np.asarray(idata.posterior[var].sel(**sel).transpose("chain", "draw").values, dtype=float))
                for display, var, sel in scalar_names(idata, var_names)]
        if not rows:
            raise ValueError("var_names is empty; give at least one posterior variable")
    else:
        rows = _scalar_rows(idata, var_names)
    truth_of = general_truth if general else resolve_truth
    if truth is None:
        try:
            known = truth_of(idata, None)
        except ValueError:
            known = {}
    else:
        known = truth_of(idata, truth)
    n = len(rows)
    own_figure = axes is None
    if own_figure:
        fig, axes = plt.subplots(
            n, 2, figsize=(11, 1.9 * n + 1.1), squeeze=False, layout="constrained",
            gridspec_kw={"width_ratios": [1, 2.2]},
        )
    else:
        axes = np.asarray(axes, dtype=object)
        if axes.shape != (n, 2):
            axes = axes.reshape(n, 2) if axes.size == 2 * n else axes
        if axes.shape != (n, 2):
            raise ValueError(
                f"axes must have shape ({n}, 2) for {n} plotted row(s); got {axes.shape}. "
                f"Create them with plt.subplots({n}, 2)."
            )
        fig = axes.flat[0].figure

    draw_coord = np.asarray(idata.posterior["draw"].values)
    n_chains = rows[0][3].shape[0]
    colors = _chain_colors(n_chains)
    diverging = None
    if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
        diverging = np.asarray(idata.sample_stats["diverging"].transpose("chain", "draw").values).astype(bool)
    n_div = int(diverging.sum()) if diverging is not None else 0

    for r, (var, label, element, values) in enumerate(rows):
        ax_d, ax_t = axes[r, 0], axes[r, 1]
        for c in range(values.shape[0]):
            _density(ax_d, values[c], colors[c])
            ax_t.plot(draw_coord, values[c], color=colors[c], lw=0.5, alpha=0.75)
        true_value = known.get(element) if general else _row_truth(known, truth, var, element)
        if true_value is not None:
            ax_d.axvline(true_value, color=TRUTH_COLOR, lw=1.8, zorder=5)
            ax_t.axhline(true_value, color=TRUTH_COLOR, lw=1.8, zorder=5)
        top = ax_d.get_ylim()[1]
        ax_d.set_ylim(0, top)
        if n_div:
            # A strip under the data holds the divergence ticks, clear of lines.
            lo, hi = ax_t.get_ylim()
            ax_t.set_ylim(lo - 0.1 * (hi - lo), hi)
            ax_d.set_ylim(-0.1 * top, top)
            chain_idx, draw_idx = np.nonzero(diverging)
            ax_t.plot(
                draw_coord[draw_idx], np.full(draw_idx.size, 0.045), "|", color="black",
                ms=6, mew=0.8, alpha=0.7, transform=ax_t.get_xaxis_transform(),
                label=f"divergent ({n_div})",
            )
            ax_d.plot(
                values[chain_idx, draw_idx], np.full(draw_idx.size, 0.045), "|", color="black",
                ms=6, mew=0.8, alpha=0.5, transform=ax_d.get_xaxis_transform(),
            )
        ax_d.set_yticks([])
        ax_d.set_ylabel("density", fontsize=10)
        ax_d.set_xlabel(label, fontsize=12)
        ax_t.set_ylabel(label, fontsize=12)
        ax_t.set_xlim(draw_coord[0], draw_coord[-1])
        ax_t.tick_params(labelsize=9)
        ax_d.tick_params(labelsize=9)
        if r < n - 1 and own_figure:
            ax_t.tick_params(labelbottom=False)
    axes[n - 1, 1].set_xlabel("draw (after warm-up)", fontsize=11)

    handles: list[Any] = [Line2D([], [], color=colors[c], lw=1.5, label=f"chain {c}") for c in range(n_chains)]
    if known:
        handles.append(Line2D([], [], color=TRUTH_COLOR, lw=1.8, label="true value"))
    if n_div:
        handles.append(Line2D([], [], color="black", marker="|", ls="none", ms=9, label=f"divergent draw ({n_div})"))
    if own_figure:
        for r in range(1, n):
            axes[r, 1].sharex(axes[0, 1])
        fig.suptitle(_fit_title(idata, "Posterior trace"), fontsize=13)
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 7), frameon=False, fontsize=10)
    else:
        axes[0, 1].legend(handles=handles, loc="upper right", fontsize=8, ncols=min(len(handles), 4), framealpha=0.85)
    if path is not None:
        save_figure(fig, path)
    return axes


def plot_ppc_lines(
    idata: az.InferenceData,
    n_points: int = 5,
    n_draws: int = 100,
    seed: int = 0,
    ax: Axes | None = None,
    path: PathLike | None = None,
) -> Axes:
    """Posterior-predictive straight lines through a few observed points (the notebook's figure).

    Picks ``n_points`` observations at random (seeded); for each, ``n_draws`` posterior
    draws give lines ``y = a + b_g * x`` (g the point's group) over the range of x,
    drawn thin and translucent in the point's colour; the observed point is a large
    marker of the same colour. The other observations are small grey dots.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit with posterior ``a`` and ``b`` (dim ``group``), ``constant_data`` ``x`` and
        ``group`` and ``observed_data`` ``y``.
    n_points : int, default 5
        How many observations to highlight (at most N).
    n_draws : int, default 100
        Posterior draws per observation (at most the number of draws).
    seed : int, default 0
        Seed of the random choice of points and draws.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    path : str or os.PathLike, optional
        When given, the figure is also saved there (atomically).

    Returns
    -------
    matplotlib.axes.Axes
    """
    for group, names in (("constant_data", ("x", "group")), ("observed_data", ("y",)), ("posterior", ("a", "b"))):
        if group not in idata.groups():
            raise ValueError(f"idata has no {group} group; plot_ppc_lines needs {list(names)} there")
        lacking = [v for v in names if v not in idata[group]]
        if lacking:
            raise ValueError(f"idata.{group} lacks {lacking}; plot_ppc_lines needs them")
    if n_points < 1 or n_draws < 1:
        raise ValueError(f"n_points and n_draws must be >= 1; got {n_points} and {n_draws}")
    x = np.asarray(idata.constant_data["x"].values, dtype=float).reshape(-1)
    g = np.asarray(idata.constant_data["group"].values).reshape(-1)
    y = np.asarray(idata.observed_data["y"].values, dtype=float).reshape(-1)
    if not (x.size == y.size == g.size):
        raise ValueError(f"x, y and group have different lengths: {x.size}, {y.size}, {g.size}")
    b = idata.posterior["b"]
    group_dim = [d for d in b.dims if d not in ("chain", "draw")]
    if len(group_dim) != 1:
        raise ValueError(f"posterior b must have dims (chain, draw, group); got {b.dims}")
    a_s = np.asarray(idata.posterior["a"].stack(sample=("chain", "draw")).values, dtype=float)
    b_s = np.asarray(b.stack(sample=("chain", "draw")).transpose(group_dim[0], "sample").values, dtype=float)
    labels = pd.Index(np.asarray(b[group_dim[0]].values))

    rng = np.random.default_rng(seed)
    points = rng.choice(x.size, size=min(n_points, x.size), replace=False)
    lo, hi = float(np.min(x)), float(np.max(x))
    span = hi - lo if hi > lo else 1.0
    if 0.0 < lo <= 0.5 * span:
        lo = 0.0  # show the shared intercept a at x = 0 when it is near the data
    elif -0.5 * span <= hi < 0.0:
        hi = 0.0
    xfit = np.array([lo - 0.02 * span, hi + 0.02 * span])

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 6.5), layout="constrained")
    fig = ax.figure
    cmap = plt.get_cmap("tab10" if len(points) <= 10 else "tab20")
    others = np.setdiff1d(np.arange(x.size), points)
    ax.plot(x[others], y[others], "o", color="0.65", ms=4, alpha=0.7, zorder=1, label="other observations")
    for k, i in enumerate(points):
        color = cmap(k % cmap.N)
        j = labels.get_indexer([g[i]])[0]
        if j < 0:
            raise ValueError(f"group {g[i]!r} of observation {i} is not a posterior coordinate of b")
        draws = rng.choice(a_s.size, size=min(n_draws, a_s.size), replace=False)
        yfit = a_s[draws, None] + b_s[j, draws, None] * xfit[None, :]
        segments = np.stack([np.broadcast_to(xfit, yfit.shape), yfit], axis=-1)
        ax.add_collection(LineCollection(segments, colors=[color], linewidths=0.7, alpha=0.18, zorder=2))
        ax.plot(
            x[i], y[i], "o", color=color, ms=11, mec="black", mew=1.0, zorder=4,
            label=f"obs {i} (group {g[i]}): x = {x[i]:.2f}, y = {y[i]:.2f}",
        )
    ax.set_xlim(xfit[0], xfit[1])
    ax.autoscale_view(scalex=False, scaley=True)
    ax.set_xlabel("x", fontsize=12)
    ax.set_ylabel("y", fontsize=12)
    ax.tick_params(labelsize=10)
    ax.set_title(
        f"Posterior-predictive lines $y = a + b_g\\,x$: {len(points)} random observations, "
        f"{min(n_draws, a_s.size)} draws each",
        fontsize=12,
    )
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)  # lines fan out to the right
    ax.grid(alpha=0.25)
    if path is not None:
        save_figure(fig, path)
    return ax


def plot_recovery(
    idata: az.InferenceData,
    truth: Any = None,
    prob: float = 0.9,
    ax: Axes | None = None,
    path: PathLike | None = None,
) -> Axes:
    """Forest plot of the posterior against the true values, on a common scale.

    Each parameter of :func:`~hierlin_stan.diagnostics.recovery` is one row, drawn in
    posterior standard deviations from its truth: ``(value - truth) / sd``. The thin bar
    is the central ``prob`` interval, the thick bar the central 50 %, the marker the
    mean; the vertical line at 0 is the truth. Rows whose interval covers the truth are
    blue circles, the others red crosses. The raw truth, mean, sd and z are written at
    the right of each row.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit of simulated data.
    truth : Mapping[str, float], object with a ``.truth`` mapping, or None
        True values; None reads ``true_*`` from ``idata.attrs`` (ValueError if absent).
    prob : float, default 0.9
        Mass of the central interval.
    ax : matplotlib Axes, optional
        Where to draw (all rows on it); a new figure when None.
    path : str or os.PathLike, optional
        When given, the figure is also saved there (atomically).

    Returns
    -------
    matplotlib.axes.Axes
    """
    rec = recovery(idata, truth, prob=prob)
    n = len(rec)
    own_figure = ax is None
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 0.6 * n + 1.9), layout="constrained")
    fig = ax.figure
    extent = 3.0
    for r, (name, row) in enumerate(rec.iterrows()):
        sd = float(row["sd"])
        ok = bool(row["covered"])
        color = _COVERED_COLOR if ok else _MISSED_COLOR
        if np.isfinite(sd) and sd > 0:
            draws = scalar_draws(idata, str(name))
            q25, q75 = np.quantile(draws, [0.25, 0.75])
            std = lambda v: (v - row["truth"]) / sd  # noqa: E731
            ax.plot([std(row["lower"]), std(row["upper"])], [r, r], color=color, lw=2, solid_capstyle="butt")
            ax.plot([std(q25), std(q75)], [r, r], color=color, lw=6, solid_capstyle="butt")
            ax.plot(std(row["mean"]), r, "o" if ok else "X", color="white", mec=color, mew=2, ms=9, zorder=4)
            extent = max(extent, abs(std(row["lower"])), abs(std(row["upper"])))
        note = (
            f"truth {row['truth']:.4g}, mean {row['mean']:.4g} \N{PLUS-MINUS SIGN} {sd:.2g}, "
            f"z = {row['z']:+.2f}" + ("" if ok else "  (missed)")
        )
        ax.annotate(
            note, xy=(1.02, r), xycoords=("axes fraction", "data"), va="center", ha="left",
            fontsize=9.5, color="black" if ok else _MISSED_COLOR,
        )
    ax.axvline(0.0, color="black", ls="--", lw=1.2, zorder=1)
    ax.set_yticks(range(n), [_pretty(p) for p in rec.index], fontsize=13)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(-1.1 * extent, 1.1 * extent)
    ax.set_xlabel("(posterior value \N{MINUS SIGN} truth) / posterior sd", fontsize=11)
    ax.tick_params(axis="x", labelsize=10)
    ax.grid(axis="x", alpha=0.25)
    pct = f"{100 * prob:.0f}%"
    handles = [
        Line2D([], [], color=_COVERED_COLOR, lw=2, marker="o", mfc="white", mew=2, ms=8, label=f"{pct} interval covers truth"),
        Line2D([], [], color=_MISSED_COLOR, lw=2, marker="X", mfc="white", mew=2, ms=8, label=f"{pct} interval misses truth"),
        Line2D([], [], color="0.4", lw=6, label="50% interval"),
        Line2D([], [], color="black", ls="--", lw=1.2, label="truth"),
    ]
    title = _fit_title(idata, f"Recovery of the true values ({pct} central intervals)")
    if own_figure:
        fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize=9)
        fig.suptitle(title, fontsize=12)
    else:
        ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)
        ax.set_title(title, fontsize=11)
    if path is not None:
        save_figure(fig, path)
    return ax


def plot_ess(table: pd.DataFrame, ax: Axes | None = None, path: PathLike | None = None) -> Axes:
    """Horizontal bars of min bulk-ESS per second, one per sampler (log scale).

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``label`` (bar name) and ``min_ess_bulk_per_s``; one row per sampler,
        drawn top to bottom in the table's order. Rows whose value is missing or not
        positive are shown as "n/a".
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    path : str or os.PathLike, optional
        When given, the figure is also saved there (atomically).

    Returns
    -------
    matplotlib.axes.Axes
    """
    df = pd.DataFrame(table)
    missing = [c for c in ("label", "min_ess_bulk_per_s") if c not in df.columns]
    if missing:
        raise ValueError(
            f"table lacks column(s) {missing}; it needs 'label' and 'min_ess_bulk_per_s' "
            f"(got {list(df.columns)})"
        )
    if df.empty:
        raise ValueError("table has no rows; give one row per sampler")
    labels = df["label"].astype(str).tolist()
    values = pd.to_numeric(df["min_ess_bulk_per_s"], errors="coerce").to_numpy(dtype=float)
    good = np.isfinite(values) & (values > 0)
    n = len(labels)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 0.5 * n + 1.6), layout="constrained")
    fig = ax.figure
    ypos = np.arange(n)
    ax.set_xscale("log")
    if good.any():
        lo, hi = values[good].min() / 3.0, values[good].max() * 6.0
    else:
        lo, hi = 1.0, 10.0
    ax.set_xlim(lo, hi)
    ax.barh(ypos[good], values[good] - lo, left=lo, height=0.6, color="#4c72b0")
    for k in range(n):
        if good[k]:
            v = values[k]
            text = f"{v:,.0f}/s" if v >= 10 else f"{v:.2g}/s"
            ax.annotate(text, xy=(v, k), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9.5)
        else:
            ax.annotate("n/a", xy=(lo, k), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=9.5, color="0.4", style="italic")
    ax.set_yticks(ypos, labels, fontsize=10)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("min bulk-ESS per second of sampling (log scale)", fontsize=11)
    ax.set_title("Sampling efficiency", fontsize=12)
    ax.grid(axis="x", which="major", alpha=0.3)
    if path is not None:
        save_figure(fig, path)
    return ax
