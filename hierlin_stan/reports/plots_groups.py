"""Plots of a formula fit group by group: fitted lines per group, and partial pooling.

* :func:`plot_group_lines` — the notebook's posterior-predictive lines, generalised: for a
  few groups, the observations against a chosen predictor and posterior draws of the
  group's own regression line (beta + u_j), with the population line (beta) for contrast.
* :func:`plot_partial_pooling` — the radon case study's figure: for each group, its
  no-pooling estimate (the group's data alone) next to its posterior (partial pooling),
  against the group's size, with the population value; the arrows show how far each
  group is pulled towards the population, small groups most.

Both need the rows (``constant_data`` X, Z, group and ``observed_data`` y), which fits
keep while the data are small.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from .plots import PathLike, _fit_title, plt, save_figure

__all__ = ["plot_group_lines", "plot_partial_pooling", "no_pooling_estimates"]

_POP_COLOR = "#333333"


def _rows(idata: Any, what: str) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame, np.ndarray]:
    for group, names in (("constant_data", ("X", "Z", "group")), ("observed_data", ("y",)), ("posterior", ("beta",))):
        if group not in idata.groups() or any(n not in idata[group] for n in names):
            raise ValueError(f"{what} needs a formula fit that kept its rows (idata.{group} with {list(names)}); "
                             "fits of large data drop them")
    y = np.asarray(idata.observed_data["y"].values, dtype=float)
    x = idata.constant_data["X"].to_pandas()
    z = idata.constant_data["Z"].to_pandas()
    g = np.asarray(idata.constant_data["group"].values)
    return y, x, z, g


def _pick_groups(idata: Any, g: np.ndarray, groups: Sequence[Any] | int | None, seed: int) -> list[Any]:
    labels = list(np.asarray(idata.posterior["u"]["group"].values)) if "u" in idata.posterior else list(pd.unique(g))
    if groups is None or isinstance(groups, (int, np.integer)):
        k = min(6 if groups is None else int(groups), len(labels))
        sizes = pd.Series(g).value_counts()
        # a spread of group sizes: from the largest to the smallest
        ordered = [lab for lab in sizes.index]
        idx = np.unique(np.round(np.linspace(0, len(ordered) - 1, k)).astype(int))
        return [ordered[i] for i in idx]
    chosen = list(groups)
    unknown = [c for c in chosen if c not in labels]
    if unknown:
        raise ValueError(f"group(s) {unknown} are not group labels of this fit (e.g. {labels[:5]})")
    return chosen


def plot_group_lines(
    idata: Any,
    predictor: str | None = None,
    groups: Sequence[Any] | int | None = None,
    n_draws: int = 60,
    seed: int = 0,
    axes: np.ndarray | None = None,
    path: PathLike | None = None,
) -> np.ndarray:
    """Observations and posterior regression lines, one panel per group.

    Parameters
    ----------
    idata : arviz.InferenceData
        A formula fit that kept its rows and its group effects ``u``.
    predictor : str, optional
        The common term on the x axis (default: the first that is not the intercept).
        Other terms are held at the group's mean of their column (so a term that
        interacts with the predictor enters at its group mean).
    groups : sequence of labels or int, optional
        Which groups (default 6, from the largest to the smallest).
    n_draws : int
        Posterior draws of each line.
    axes : array of Axes, optional
        One per group; a new figure when None.
    path : path, optional
        Save the figure there too.

    Returns
    -------
    numpy.ndarray of Axes
    """
    y, x, z, g = _rows(idata, "plot_group_lines")
    if "u" not in idata.posterior:
        raise ValueError("plot_group_lines needs the group effects u (fit with keep_u=True)")
    terms = list(x.columns)
    if predictor is None:
        numeric = [t for t in terms if t != "Intercept" and ":" not in t and "[" not in t]
        if not numeric:
            raise ValueError(f"no numeric predictor among the terms {terms}; name one with predictor=")
        predictor = numeric[0]
    if predictor not in terms:
        raise ValueError(f"predictor={predictor!r} is not a common term; choose from {terms}")
    chosen = _pick_groups(idata, g, groups, seed)
    post = idata.posterior
    rng = np.random.default_rng(seed)
    n_total = post.sizes["chain"] * post.sizes["draw"]
    pick = rng.choice(n_total, size=min(n_draws, n_total), replace=False)
    beta = np.asarray(post["beta"].stack(s=("chain", "draw")).transpose("s", "term").values)[pick]
    u = post["u"].stack(s=("chain", "draw")).transpose("s", "group", "group_term")
    group_terms = list(np.asarray(post["u"]["group_term"].values))
    labels = list(np.asarray(post["u"]["group"].values))
    ncol = min(3, len(chosen))
    nrow = int(np.ceil(len(chosen) / ncol))
    own = axes is None
    if own:
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow + 0.8), squeeze=False,
                                 sharex=True, sharey=True, layout="constrained")
    axes = np.asarray(axes, dtype=object).reshape(-1)
    if axes.size < len(chosen):
        raise ValueError(f"axes holds {axes.size} panels for {len(chosen)} groups")
    fig = axes[0].figure
    lo, hi = float(x[predictor].min()), float(x[predictor].max())
    grid = np.linspace(lo, hi, 30)
    pop_beta = np.asarray(post["beta"].mean(("chain", "draw")).values)
    for ax, label in zip(axes, chosen):
        rows = g == label
        xmean = x[rows].mean()
        zmean = z[rows].mean()
        xg = np.tile(xmean.to_numpy(), (grid.size, 1))
        xg[:, terms.index(predictor)] = grid
        zg = np.tile(zmean.to_numpy(), (grid.size, 1))
        if predictor in group_terms:
            zg[:, group_terms.index(predictor)] = grid
        j = labels.index(label)
        uj = np.asarray(u.isel(group=j).values)[pick]  # (draws, q)
        lines = beta @ xg.T + uj @ zg.T  # (draws, grid)
        segs = np.stack([np.broadcast_to(grid, lines.shape), lines], axis=-1)
        ax.add_collection(LineCollection(segs, colors="#1f77b4", linewidths=0.7, alpha=0.15, zorder=2))
        ax.plot(grid, xg @ pop_beta, color=_POP_COLOR, ls="--", lw=1.5, zorder=3)
        ax.plot(x[predictor][rows], y[rows], "o", color="#d62728", ms=5, mec="white", mew=0.5, zorder=4)
        ax.set_title(f"{label}  (n = {int(rows.sum())})", fontsize=10)
        ax.grid(alpha=0.25)
        ax.autoscale_view()
    for ax in axes[len(chosen):]:
        ax.set_visible(False)
    response = str(idata.attrs.get("response", "y"))
    for ax in axes[:len(chosen)]:
        ax.set_xlabel(predictor)
        ax.set_ylabel(response)
    if own:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color="#d62728", marker="o", ls="none", label="observations"),
                   Line2D([], [], color="#1f77b4", lw=1.5, label="group's line (posterior draws of beta + u)"),
                   Line2D([], [], color=_POP_COLOR, ls="--", lw=1.5, label="population line (posterior mean of beta)")]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, fontsize=9)
        fig.suptitle(_fit_title(idata, f"Fitted lines by group against {predictor}"), fontsize=12)
    if path is not None:
        save_figure(fig, path)
    return axes


def no_pooling_estimates(idata: Any) -> pd.DataFrame:
    """Each group's own least-squares estimate of its group terms, and its standard error.

    The group's rows alone: regress y minus the common terms that are not group terms
    (at their posterior means) on Z_j; standard errors from the posterior mean of sigma.
    Groups too small to estimate a term (rank-deficient Z_j) get NaN.

    Returns
    -------
    pandas.DataFrame
        Index (group, group_term); columns ``estimate``, ``se``, ``n``.
    """
    y, x, z, g = _rows(idata, "no_pooling_estimates")
    post = idata.posterior
    beta = post["beta"].mean(("chain", "draw")).to_pandas()
    sigma = float(post["sigma"].mean())
    gterms = list(z.columns)
    other = [t for t in x.columns if t not in gterms]
    offset = x[other].to_numpy() @ beta[other].to_numpy() if other else np.zeros(len(y))
    r = y - offset
    rows = []
    for label in pd.unique(g):
        sel = g == label
        zj = z.to_numpy()[sel]
        gram = zj.T @ zj
        est = np.full(len(gterms), np.nan)
        se = np.full(len(gterms), np.nan)
        if sel.sum() >= len(gterms) and np.linalg.matrix_rank(gram) == len(gterms):
            inv = np.linalg.inv(gram)
            est = inv @ zj.T @ r[sel]
            se = sigma * np.sqrt(np.diag(inv))
        for k, t in enumerate(gterms):
            rows.append({"group": label, "group_term": t, "estimate": est[k], "se": se[k], "n": int(sel.sum())})
    return pd.DataFrame(rows).set_index(["group", "group_term"])


def plot_partial_pooling(
    idata: Any,
    group_term: str | None = None,
    prob: float = 0.68,
    ax: Axes | None = None,
    path: PathLike | None = None,
) -> Axes:
    """No pooling vs partial pooling, group by group, against group size (the radon figure).

    For each group: its no-pooling estimate (open circle, ± 1 se; the group's data alone)
    and its posterior coefficient ``coef`` (filled, central ``prob`` interval), joined by an
    arrow that shows the shrinkage towards the population value (posterior of beta for
    that term: line and band). Small groups are pulled most.

    Parameters
    ----------
    group_term : str, optional
        Which group term (default the first, usually the intercept).
    prob : float
        Mass of the posterior interval.
    """
    if "coef" not in idata.posterior:
        raise ValueError("plot_partial_pooling needs each group's coefficients (coef): fit with keep_u=True")
    est = no_pooling_estimates(idata)
    post = idata.posterior
    gterms = list(np.asarray(post["coef"]["group_term"].values))
    if group_term is None:
        group_term = gterms[0]
    if group_term not in gterms:
        raise ValueError(f"group_term={group_term!r} is not a group term; choose from {gterms}")
    coef = post["coef"].sel(group_term=group_term)
    labels = list(np.asarray(coef["group"].values))
    tail = (1 - prob) / 2
    mean = coef.mean(("chain", "draw")).to_numpy()
    lo = coef.quantile(tail, ("chain", "draw")).to_numpy()
    hi = coef.quantile(1 - tail, ("chain", "draw")).to_numpy()
    np_est = est.xs(group_term, level="group_term").reindex(labels)
    n = np_est["n"].to_numpy(dtype=float)
    by_size = np.nanmax(n) >= 3 * np.nanmin(n)
    if by_size:  # the radon figure: shrinkage against group size
        rng = np.random.default_rng(0)
        xpos = n * np.exp(rng.uniform(-0.06, 0.06, size=n.size))  # jitter groups of equal size
    else:  # sizes alike: groups side by side, ordered by their own estimate
        order = np.argsort(np.where(np.isnan(np_est["estimate"].to_numpy()), mean, np_est["estimate"].to_numpy()))
        xpos = np.empty(n.size)
        xpos[order] = np.arange(n.size)
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    fig = ax.figure
    ok = np_est["estimate"].notna().to_numpy()
    ax.errorbar(xpos[ok], np_est["estimate"].to_numpy()[ok], yerr=np_est["se"].to_numpy()[ok], fmt="o",
                mfc="white", mec="0.45", ecolor="0.75", ms=5, lw=0.8, zorder=2, label="no pooling (group's data alone) ± 1 se")
    ax.errorbar(xpos, mean, yerr=[mean - lo, hi - mean], fmt="o", color="#1f77b4", ms=5, lw=1.0, zorder=3,
                label=f"partial pooling (posterior mean, {prob:.0%} interval)")
    for k in np.flatnonzero(ok):
        ax.annotate("", xy=(xpos[k], mean[k]), xytext=(xpos[k], np_est["estimate"].iloc[k]),
                    arrowprops=dict(arrowstyle="->", color="#1f77b4", alpha=0.35, lw=0.8), zorder=1)
    if group_term in list(post["beta"]["term"].values):
        b = post["beta"].sel(term=group_term)
        bm, bl, bh = float(b.mean()), float(b.quantile(tail)), float(b.quantile(1 - tail))
        ax.axhline(bm, color=_POP_COLOR, ls="--", lw=1.4, label=f"population value beta[{group_term}]")
        ax.axhspan(bl, bh, color=_POP_COLOR, alpha=0.08)
    if by_size:
        from matplotlib.ticker import ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("observations in the group (log scale)")
    else:
        if len(labels) <= 40:
            ax.set_xticks(xpos, [str(v) for v in labels], rotation=90 if len(labels) > 12 else 0, fontsize=8)
        else:
            ax.set_xticks([])
        ax.set_xlabel(f"groups, ordered by their no-pooling estimate (each has about {int(np.nanmedian(n))} observations)")
    factor = str(idata.attrs.get("group_factor", "group"))
    what = "intercept" if group_term == "Intercept" else f"coefficient of {group_term}"
    ax.set_ylabel(f"{what} of each {factor}")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=9, loc="best", framealpha=0.9)
    ax.set_title(_fit_title(idata, f"Partial pooling of {group_term} across {len(labels)} groups"), fontsize=11)
    if path is not None:
        save_figure(fig, path)
    return ax
