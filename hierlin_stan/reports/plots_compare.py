"""Plots that put several samplers side by side: overlaid posteriors, intervals per sampler.

Both functions take ``fits``, a mapping from a sampler's label to its
:class:`arviz.InferenceData` (e.g. :attr:`hierlin_stan.compare.Comparison.fits`), draw
on the axes they are given (``ax=``) or on a new figure, return the axes, and with
``path=`` also write a PNG atomically (:func:`hierlin_stan.plots.save_figure`).

Panels are scalars: the notebook's a, mu_b, sigma_b, eps, or a formula's ``beta[x]``,
``tau[x]``, ``sigma``, ``Omega[x, Intercept]`` (:func:`scalar_panels` lists them). A fit
that lacks a scalar (bambi has no Omega) is left out of that panel only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..checks.diagnostics import HYPER, general_truth, resolve_truth
from ..model.params import is_general, scalar_names
from .plots import TRUTH_COLOR, PathLike, _pretty, plt, save_figure

__all__ = ["plot_posteriors_overlay", "plot_intervals_by_sampler", "scalar_panels", "SAMPLER_COLORS"]

#: One colour per sampler (tab10 without its red, which marks the truth).
SAMPLER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf", "#393b79")
_STYLES = ("-", "--", "-.", ":")


def scalar_panels(fits: Mapping[str, Any]) -> list[str]:
    """The scalars to plot for ``fits``: a, mu_b, sigma_b, eps, or every population-level scalar of a formula
    present in any fit (in the first fit's order)."""
    first = next(iter(fits.values()))
    if not is_general(first.posterior.data_vars):
        return list(HYPER)
    names: list[str] = []
    for idata in fits.values():
        for display, _, _ in scalar_names(idata):
            if display not in names:
                names.append(display)
    return names


def _has(idata: Any, name: str) -> bool:
    if name in idata.posterior.data_vars:
        return True
    base = name.split("[", 1)[0]
    return base in idata.posterior.data_vars and any(d == name for d, _, _ in scalar_names(idata, [base]))


def _check_fits(fits: Mapping[str, Any], var_names: Sequence[str] | None) -> list[str]:
    if not isinstance(fits, Mapping) or not fits:
        raise ValueError("fits must be a non-empty mapping {label: InferenceData}, e.g. Comparison.fits")
    if var_names is None:
        var_names = scalar_panels(fits)
    if isinstance(var_names, str):
        var_names = [var_names]
    names = list(var_names)
    if not names:
        raise ValueError("var_names is empty; give at least one of ('a', 'mu_b', 'sigma_b', 'eps') "
                         "(for a formula e.g. 'beta[x]', 'sigma')")
    for var in names:
        if not any(_has(idata, var) for idata in fits.values()):
            raise ValueError(f"no fit has {var!r}; available in the first: "
                             f"{[d for d, _, _ in scalar_names(next(iter(fits.values())))] or sorted(next(iter(fits.values())).posterior.data_vars)}")
        for label, idata in fits.items():
            if var in idata.posterior.data_vars and idata.posterior[var].ndim != 2:
                raise ValueError(f"variable {var!r} is not scalar; overlay plots take scalars such as a, mu_b, "
                                 f"sigma_b, eps or beta[x], tau[x], sigma")
    return names


def _known_truth(fits: Mapping[str, Any], truth: Any) -> dict[str, float]:
    """True values from ``truth`` or, when None, from the first fit that records them."""
    first = next(iter(fits.values()))
    general = is_general(first.posterior.data_vars)
    if truth is not None:
        return general_truth(first, truth) if general else resolve_truth(first, truth)
    for idata in fits.values():
        try:
            return general_truth(idata, None) if general else resolve_truth(idata, None)
        except ValueError:
            continue
    return {}


def _axes_for(ax: Any, n: int, figsize: tuple[float, float]) -> tuple[np.ndarray, bool]:
    if ax is None:
        ncols = 2 if n > 1 else 1
        nrows = int(np.ceil(n / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained")
        for extra in axes.flat[n:]:
            extra.remove()
        return np.asarray(axes.flat[:n], dtype=object), True
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).reshape(-1)
    if axes.size != n:
        raise ValueError(f"ax must hold {n} Axes (one per variable); got {axes.size}")
    return axes, False


def _draws(idata: Any, var: str) -> np.ndarray:
    """All finite draws of scalar ``var`` (empty when the fit lacks it)."""
    if not _has(idata, var):
        return np.zeros(0)
    if var in idata.posterior.data_vars:
        values = np.asarray(idata.posterior[var].values, dtype=float).reshape(-1)
    else:
        base = var.split("[", 1)[0]
        sel = next(s for d, _, s in scalar_names(idata, [base]) if d == var)
        values = np.asarray(idata.posterior[base].sel(**sel).values, dtype=float).reshape(-1)
    return values[np.isfinite(values)]


def plot_posteriors_overlay(
    fits: Mapping[str, Any],
    truth: Any = None,
    var_names: Sequence[str] | None = None,
    bins: int = 60,
    focus: Sequence[str] | None = None,
    ax: Any = None,
    path: PathLike | None = None,
) -> np.ndarray:
    """Posterior densities of each variable, one outline per sampler, the truth marked.

    Each panel is one variable; every sampler's draws (all chains pooled) are a
    density histogram drawn as an outline in the sampler's colour, on bins shared by
    all samplers so the shapes compare directly. The range covers the central 99.5 %
    of every sampler in ``focus`` (default: all), so a sampler that wanders shows up
    as a wide, flat outline; when a sampler outside ``focus`` has draws beyond the
    range, its legend entry says what share; samplers outside ``focus`` are drawn as
    thinner dashed outlines. The true value is a red vertical line.

    Parameters
    ----------
    fits : mapping of str to arviz.InferenceData
        Label (used in the legend) -> fit; drawn in this order.
    truth : Mapping[str, float], object with a ``.truth`` mapping (a Dataset), or None
        True values; None reads ``true_*`` from the fits' attrs (no line when unknown).
    var_names : sequence of str, optional
        Scalars, one panel each; default :func:`scalar_panels` (a, mu_b, sigma_b, eps, or
        a formula's beta[...], tau[...], sigma, Omega[...]).
    bins : int, default 60
        Number of shared histogram bins per panel.
    focus : sequence of str, optional
        Labels of the samplers whose draws set the x range and are drawn solid (e.g.
        the trustworthy ones, so that one sampler lost far away does not squash the
        others); default all.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per variable; a new figure (two columns) when None.
    path : str or os.PathLike, optional
        When given, the figure is also saved there (atomically).

    Returns
    -------
    numpy.ndarray
        The axes, one per variable.
    """
    names = _check_fits(fits, var_names)
    if int(bins) < 2:
        raise ValueError(f"bins={bins!r} must be an integer >= 2")
    labels = list(fits)
    if focus is None:
        focus = labels
    unknown = [f for f in focus if f not in fits]
    if unknown:
        raise ValueError(f"focus names {unknown} that are not in fits; choose among {labels}")
    focused = [label in focus for label in labels] if focus else [True] * len(labels)
    known = _known_truth(fits, truth)
    n = len(names)
    axes, own = _axes_for(ax, n, (12, 3.3 * int(np.ceil(n / 2)) + 1.0))
    fig = axes[0].figure
    outside = dict.fromkeys(labels, 0.0)
    for var, axis in zip(names, axes):
        samples = [_draws(fits[label], var) for label in labels]
        lows = [np.quantile(s, 0.0025) for s, f in zip(samples, focused) if s.size and f]
        highs = [np.quantile(s, 0.9975) for s, f in zip(samples, focused) if s.size and f]
        if not lows:
            axis.text(0.5, 0.5, "no finite draws", ha="center", va="center", transform=axis.transAxes)
            continue
        lo, hi = min(lows), max(highs)
        if var in known:
            lo, hi = min(lo, known[var]), max(hi, known[var])
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        pad = 0.03 * (hi - lo)
        edges = np.linspace(lo - pad, hi + pad, int(bins) + 1)
        for k, (label, s) in enumerate(zip(labels, samples)):
            if not s.size:
                continue
            dens, _ = np.histogram(s, bins=edges, density=False)
            dens = dens / (s.size * np.diff(edges))  # outside-range draws still count in the total
            outside[label] = max(outside[label], float(np.mean((s < edges[0]) | (s > edges[-1]))))
            color = SAMPLER_COLORS[k % len(SAMPLER_COLORS)]
            if focused[k]:
                axis.stairs(dens, edges, color=color, lw=1.7, label=label,
                            ls=_STYLES[(k // len(SAMPLER_COLORS)) % len(_STYLES)])
            else:  # drawn, but quieter than the samplers in focus
                axis.stairs(dens, edges, color=color, lw=1.1, ls="--", alpha=0.85, label=label)
            if k == 0:
                axis.stairs(dens, edges, color=color, alpha=0.15, fill=True)
        if var in known:
            axis.axvline(known[var], color=TRUTH_COLOR, lw=2.0, zorder=5, label="true value")
        axis.set_xlim(edges[0], edges[-1])
        axis.set_ylim(bottom=0)
        axis.set_yticks([])
        axis.set_xlabel(_pretty(var), fontsize=13)
        axis.set_ylabel("posterior density", fontsize=10)
        axis.grid(axis="x", alpha=0.25)
    handles, legend_labels = axes[0].get_legend_handles_labels()
    legend_labels = [
        f"{text} (up to {100 * outside[text]:.0f}% of draws off the plot)" if outside.get(text, 0.0) >= 0.01 else text
        for text in legend_labels
    ]
    if own:
        fig.suptitle("Posteriors across samplers (all chains pooled)", fontsize=13)
        fig.legend(handles, legend_labels, loc="outside lower center", ncols=min(len(handles), 4),
                   frameon=False, fontsize=10)
    else:
        axes[0].legend(handles, legend_labels, fontsize=8, framealpha=0.9)
    if path is not None:
        save_figure(fig, path)
    return axes


def plot_intervals_by_sampler(
    fits: Mapping[str, Any],
    truth: Any = None,
    var_names: Sequence[str] | None = None,
    prob: float = 0.9,
    ax: Any = None,
    path: PathLike | None = None,
) -> np.ndarray:
    """Per variable, one row per sampler: posterior mean, 50 % and ``prob`` intervals; truth dashed.

    Where the outlines of :func:`plot_posteriors_overlay` pile up, this shows the same
    posteriors as intervals, one under the other, so a sampler that disagrees with the
    rest (or misses the truth) stands out.

    Parameters
    ----------
    fits : mapping of str to arviz.InferenceData
        Label -> fit; rows top to bottom in this order.
    truth : Mapping[str, float], object with a ``.truth`` mapping, or None
        True values; None reads them from the fits' attrs (no line when unknown).
    var_names : sequence of str, optional
        Scalars, one panel each; default :func:`scalar_panels`.
    prob : float, default 0.9
        Mass of the thin central interval.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per variable; a new figure when None.
    path : str or os.PathLike, optional
        When given, the figure is also saved there (atomically).

    Returns
    -------
    numpy.ndarray
        The axes, one per variable.
    """
    names = _check_fits(fits, var_names)
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob={prob!r} must be in (0, 1), e.g. 0.9")
    known = _known_truth(fits, truth)
    labels = list(fits)
    n = len(names)
    axes, own = _axes_for(ax, n, (12, (0.42 * len(labels) + 1.3) * int(np.ceil(n / 2)) + 0.8))
    fig = axes[0].figure
    tail = (1.0 - prob) / 2.0
    for p, (var, axis) in enumerate(zip(names, axes)):
        for k, label in enumerate(labels):
            s = _draws(fits[label], var)
            if not s.size:
                continue
            color = SAMPLER_COLORS[k % len(SAMPLER_COLORS)]
            lo, q25, q75, hi = np.quantile(s, [tail, 0.25, 0.75, 1.0 - tail])
            axis.plot([lo, hi], [k, k], color=color, lw=1.8, solid_capstyle="butt")
            axis.plot([q25, q75], [k, k], color=color, lw=6, solid_capstyle="butt")
            axis.plot(np.mean(s), k, "o", color="white", mec=color, mew=2, ms=7, zorder=4)
        if var in known:
            axis.axvline(known[var], color=TRUTH_COLOR, ls="--", lw=1.6, zorder=1)
        axis.set_ylim(len(labels) - 0.5, -0.5)
        show_labels = own and p % 2 == 0 or not own
        axis.set_yticks(range(len(labels)), labels if show_labels else [""] * len(labels), fontsize=9)
        axis.set_xlabel(_pretty(var), fontsize=13)
        axis.grid(axis="x", alpha=0.25)
    if own:
        fig.suptitle(
            f"Posterior mean (circle), 50 % (thick) and {100 * prob:.0f} % (thin) intervals; truth dashed red",
            fontsize=12,
        )
    if path is not None:
        save_figure(fig, path)
    return axes
