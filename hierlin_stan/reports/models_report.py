"""Write a :class:`~hierlin_stan.workflows.models.ModelComparison` to a folder a person can read.

:func:`write_models` writes, into a staged folder (complete or absent):

* ``models.csv`` / ``.md`` -- the ranking by the comparison's LOO (every column of
  :meth:`ModelComparison.ranking`), and ``models_by_<other>.csv/.md`` for the other LOO
  when it was computed;
* ``pareto_k.csv`` (and ``pareto_k_by_<other>.csv``) -- every unit's Pareto k per model;
* ``compare.png`` (ArviZ's ``plot_compare``), ``pareto_k.png`` (k per unit and model),
  and the same for the other LOO;
* ``verdict.txt`` and ``report.html`` -- self-contained, in the style of the sampler
  comparison: the verdict, the ranking, the plots, each fit's diagnostics, and what each
  number means.
"""

from __future__ import annotations

import html
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..checks.diagnostics import ESS_MIN, RHAT_MAX, fit_attrs, sampler_stats
from ..checks.loo import DSE_RATIO, ELPD_SMALL, UNITS, pareto_advice
from ..utils.files import write_text_atomic
from ..utils.output import staged_output
from .html import Section, headline_html, table_html, write_report
from .plots import az, plt, save_figure
from .tables import write_table
from ..workflows.models import likelihood_text

if TYPE_CHECKING:  # pragma: no cover
    from ..workflows.models import ModelComparison

__all__ = ["write_models", "display_ranking", "plot_compare", "plot_pareto_k"]

_PM = "\N{PLUS-MINUS SIGN}"
_OTHER = {"obs": "group", "group": "obs"}
_BY_TITLE = {"obs": "leave-one-observation-out", "group": "leave-one-group-out"}


def display_ranking(result: "ModelComparison", by: str | None = None) -> pd.DataFrame:
    """The ranking with readable headers and numbers (the HTML and CLI table).

    Columns: formula (when the names are not the formulas), elpd_loo +- SE, difference to the best +- SE, verdict (with
    ``recommended``), stacking weight, p_loo, Pareto k (summary), fit (ok or what is
    wrong), reliable (Pareto k and fit both fine).
    """
    by = result.by if by is None else by
    table = result.ranking(by)
    out = pd.DataFrame(index=table.index)
    if any(str(name) != str(text) for name, text in table["formula"].items()):
        out["formula"] = table["formula"]  # models named by their formulas need no second copy
    out["elpd_loo"] = [f"{e:.1f} {_PM} {s:.1f}" for e, s in zip(table["elpd_loo"], table["se"])]
    out["difference to best"] = ["\N{EM DASH}" if r == 0 else f"\N{MINUS SIGN}{d:.1f} {_PM} {s:.1f}"
                                 for r, d, s in zip(table["rank"], table["elpd_diff"], table["dse"])]
    out["verdict"] = [v + (", recommended" if r else "") for v, r in zip(table["verdict"], table["recommended"])]
    out["stacking weight"] = [f"{w:.2f}" for w in table["weight"]]
    out["p_loo"] = [f"{p:.1f}" for p in table["p_loo"]]
    out[f"Pareto k ({UNITS[by]})"] = [
        f"all \u2264 {result.pareto[by][n].good_k:.3g}" if result.pareto[by][n].ok
        else f"{result.pareto[by][n].high} > {result.pareto[by][n].good_k:.3g} (max {result.pareto[by][n].max_k:.2f})"
        for n in table.index]
    out["fit"] = [_fit_text(table.loc[n]) for n in table.index]
    out["reliable"] = table["reliable"].astype(bool)
    out.index.name = "model"
    return out


def _fit_text(row: pd.Series) -> str:
    if bool(row["fit_ok"]):
        return "ok"
    problems = []
    div = row["divergences"] or 0
    if div:
        problems.append(f"{int(div)} divergences")
    if row["max_rhat"] is not None and not row["max_rhat"] <= RHAT_MAX:
        problems.append(f"R-hat {row['max_rhat']:.3f}")
    if row["min_ess_bulk"] is not None and not row["min_ess_bulk"] >= ESS_MIN:
        problems.append(f"ESS {row['min_ess_bulk']:.0f}")
    return ", ".join(problems) or "doubtful"


def plot_compare(result: "ModelComparison", by: str | None = None, path: str | Path | None = None) -> Any:
    """ArviZ's ``plot_compare`` of one LOO: elpd (open circles, with SE), differences to the best (triangles).

    Returns the axes; with ``path`` also writes the PNG.
    """
    by = result.by if by is None else by
    table = result.arviz_table(by)
    n = len(table)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.75 * n))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword")  # inside ArviZ, pandas >= 3.1
        az.plot_compare(table, insample_dev=False, plot_ic_diff=True, legend=True, title=False, ax=ax, textsize=11)
    ax.set_title(f"Models ranked by PSIS-LOO, {_BY_TITLE[by]} (log likelihood '{result.ranking(by)['likelihood'].iloc[0]}')",
                 fontsize=12)
    ax.set_xlabel("elpd_loo (log score; higher is better)")
    # ArviZ puts its legend over the best model's point; the lower right is empty (lower rows score lower)
    legend = ax.get_legend()
    if legend is not None:
        handles, labels = ax.get_legend_handles_labels()
        legend.remove()
        ax.legend(handles, labels, loc="lower right", fontsize=10, framealpha=0.9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=110)
    return ax


def plot_pareto_k(result: "ModelComparison", by: str | None = None, path: str | Path | None = None) -> Any:
    """Every unit's Pareto k, one panel per model (best first), thresholds marked.

    Points above ArviZ's good_k are red; dashed: good_k, dotted: 1 (above it the LOO
    estimate of that unit has no finite variance). Groups are labelled on the x axis
    while there are at most 40 of them.
    """
    by = result.by if by is None else by
    ks = result.pareto_k(by)
    order = list(result.ranking(by).index)
    n = len(order)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.35 + 1.55 * n), sharex=True, sharey=True, squeeze=False)
    x = np.arange(len(ks))
    top = max(1.05, float(np.nanmax(ks.to_numpy())) + 0.05) if ks.size else 1.05
    for ax, name in zip(axes[:, 0], order):
        k = ks[name].to_numpy()
        info = result.pareto[by][name]
        bad = k > info.good_k
        ax.scatter(x[~bad], k[~bad], s=10, color="#4a78b5", alpha=0.7, linewidths=0)
        ax.scatter(x[bad], k[bad], s=22, color="#d62728", marker="x")
        ax.axhline(info.good_k, color="#d62728", ls="--", lw=1)
        ax.axhline(1.0, color="#444", ls=":", lw=1)
        ax.set_ylim(min(-0.3, float(np.nanmin(k)) - 0.05) if k.size else -0.3, top)
        ax.set_title(f"{name}: {info.summary()}", fontsize=10, loc="left")
        ax.set_ylabel("Pareto k")
        ax.grid(axis="y", alpha=0.3)
    last = axes[-1, 0]
    if by == "group" and len(ks) <= 40:
        last.set_xticks(x)
        last.set_xticklabels(list(ks.index), rotation=90, fontsize=8)
        last.set_xlabel(f"group ({ks.index.name})")
    else:
        last.set_xlabel("observation (row of the data)" if by == "obs" else f"group number ({ks.index.name})")
    fig.suptitle(f"Pareto k of PSIS-LOO, {_BY_TITLE[by]}: red crosses are above the threshold (dashed)",
                 fontsize=11)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=110)
    return axes


_TABLE_CSS = ("<style>.models-table { overflow-x: auto; } .models-table td { white-space: nowrap; } "
              ".models-table td:nth-child(2), .models-table th:nth-child(2) { text-align: left; }</style>")


def _ranking_html(result: "ModelComparison", by: str) -> str:
    """The ranking table, one line per model (formulas and intervals do not wrap)."""
    return f'{_TABLE_CSS}<div class="models-table">{table_html(display_ranking(result, by), "reliable")}</div>'


def _what_ran(result: "ModelComparison") -> str:
    s = result.settings
    groups = f", {result.n_groups} groups of {result.group_factor!r}" if result.group_factor else ""
    dropped = f" ({s['dropped_rows']} rows with missing values dropped for every model)" if s.get("dropped_rows") else ""
    return (f"Data: N = {result.n_obs} observations{groups}{dropped}. {len(result.formulas)} models, each fitted to "
            f"the same rows with Stan NUTS ({s['parameterization']} parameterization, {s['chains']} chains x "
            f"{s['draws']:,} draws after {s['warmup']:,} warm-up; engine {s.get('engine_used', s['engine'])}; seed "
            f"{result.seed}); priors: data-scaled defaults unless given (listed per model below). "
            f"The whole comparison took {result.seconds:.1f} s.")


def _fits_html(result: "ModelComparison") -> str:
    rows = []
    for name, idata in result.fits.items():
        st = sampler_stats(idata)
        attrs = fit_attrs(idata)
        rows.append({
            "model": name,
            "formula": result.formulas[name],
            "N, J": f"{attrs.get('N')}, {attrs.get('J') if int(attrs.get('q', 0)) else chr(0x2014)}",
            "divergences": st.get("divergences"),
            "max R-hat": f"{st['max_rhat']:.3f}" if st.get("max_rhat") is not None else "n/a",
            "min bulk-ESS": f"{st['min_ess_bulk']:,.0f}" if st.get("min_ess_bulk") is not None else "n/a",
            "sampling s (all chains)": f"{st['sampling_chain_seconds']:.2f}" if st.get("sampling_chain_seconds") else "n/a",
        })
    frame = pd.DataFrame(rows).set_index("model")
    priors = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(p)}</li>" for n, p in result.priors.items())
    return table_html(frame) + f"<p>Priors (per model):</p><ul>{priors}</ul>"


_GLOSSARY = [
    ("elpd_loo", "Expected log predictive density, estimated by Pareto-smoothed importance-sampling leave-one-out "
                 "cross-validation (PSIS-LOO): the sum over units of log p(unit | all other units), on the log "
                 "scale; higher is better. \u00b1 is its standard error."),
    ("leave-one-observation-out (log likelihood 'y')", "Each observation is predicted from the rest of the data, "
     "its own group included: log normal(y_i | X_i beta + Z_i u_g, sigma) per draw. The question: how well does "
     "the model predict a new observation of a group it has seen?"),
    ("leave-one-group-out (log likelihood 'y_group')", "Each group's data are predicted from the other groups: "
     "log p(y_j | beta, Sigma, sigma) per draw, the group's effects integrated out exactly (a multivariate normal "
     "with covariance sigma\u00b2 I + Z_j Sigma Z_j'). The question: how well does the model predict a new group? "
     "A model without group terms takes part with the sum of its observations' terms in each group."),
    ("difference to best", f"elpd_loo of the best model minus this model's, with the standard error of the "
     f"difference (computed from the paired pointwise differences, so usually much smaller than either SE). "
     f"Verdict 'clearly worse' when the difference is above {ELPD_SMALL:g} and above {DSE_RATIO:g} of its SE; "
     "otherwise 'indistinguishable': LOO cannot rank the two."),
    ("recommended", "The model with the fewest population-level parameters (coefficients, group-level sds, "
     "correlations, sigma) among those not clearly worse than the best. When a model only adds terms the data "
     "do not need, its elpd differs from the simpler one's by noise, in either direction: parsimony decides."),
    ("stacking weight", "Weights of the models' predictive distributions that together predict the left-out "
     "units best (Yao et al. 2018): a way to average models instead of choosing one. Not a probability that "
     "a model is true."),
    ("p_loo", "Effective number of parameters: the lppd of the fitted model minus elpd_loo. Far above the "
     "number of parameters, or above the number of units, signals a misspecified model or unreliable LOO."),
    ("Pareto k", "Shape of the distribution of each unit's importance weights. Up to good_k = min(1 - "
     "1/log10(draws), 0.7) the PSIS estimate is reliable; above it, unreliable for that unit; above 1 its "
     "variance is infinite. High k for observations in hierarchical models is common (an observation pulls its "
     "own group's effect): use leave-one-group-out, refit without the unit (exact LOO or K-fold), or moment "
     "matching."),
    ("fit", f"The fit's own diagnostics: no divergences, R-hat \u2264 {RHAT_MAX}, bulk-ESS \u2265 {ESS_MIN} over "
     "the population parameters. LOO of a fit that did not converge means nothing."),
    ("reliable (row colour)", "Green: every Pareto k below good_k and the fit ok. Red: read that row's numbers "
     "with care (see the Pareto k section)."),
]


def _glossary_html() -> str:
    items = "".join(f"<dt><b>{html.escape(term)}</b></dt><dd>{html.escape(text)}</dd>" for term, text in _GLOSSARY)
    return f"<dl>{items}</dl>"


def _pareto_table(result: "ModelComparison", by: str) -> pd.DataFrame:
    rows = {}
    for name in result.ranking(by).index:
        k = result.pareto[by][name]
        rows[name] = {"good_k": f"{k.good_k:.3g}", "k \u2264 good_k": k.good, "good_k < k \u2264 1": k.bad,
                      "k > 1": k.very_bad, "max k": f"{k.max_k:.2f}",
                      "worst": ", ".join(f"{u} ({v:.2f})" for u, v in k.worst[:5]) or "\N{EM DASH}",
                      "reliable": k.ok}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame


def write_models(result: "ModelComparison", out: str | Path, force: bool = False) -> Path:
    """Write the model comparison's tables, plots and HTML page into the folder ``out``.

    Parameters
    ----------
    result : ModelComparison
        From :func:`hierlin_stan.compare_models`.
    out : str or Path
        Output folder, written completely or not at all.
    force : bool
        Replace ``out`` when it exists and is not empty.

    Returns
    -------
    pathlib.Path
        The folder; ``report.html`` inside is the one file to open.

    Raises
    ------
    ValueError
        When no model was fitted (the message lists why).
    """
    if not result.fits or not result.loos:
        raise ValueError("no model comparison to write: "
                         + ("; ".join(f"{k}: {v}" for k, v in result.failures.items()) or "no LOO was computed"))
    out = Path(out)
    by = result.by
    lines = result.headline()
    others = [o for o in (_OTHER[by],) if o in result.loos]
    with staged_output(out, force=force) as folder:
        write_table(result.ranking(by), folder / "models",
                    f"Models ranked by PSIS-LOO, {result.likelihood}")
        result.pareto_k(by).to_csv(folder / "pareto_k.csv")
        plot_compare(result, by, folder / "compare.png")
        plot_pareto_k(result, by, folder / "pareto_k.png")
        plt.close("all")
        for other in others:
            write_table(result.ranking(other), folder / f"models_by_{other}",
                        f"Models ranked by PSIS-LOO, {_BY_TITLE[other]}")
            result.pareto_k(other).to_csv(folder / f"pareto_k_by_{other}.csv")
            plot_compare(result, other, folder / f"compare_by_{other}.png")
            plot_pareto_k(result, other, folder / f"pareto_k_by_{other}.png")
            plt.close("all")
        write_text_atomic(folder / "verdict.txt", "\n".join(
            ("[OK] " if ok else "[!!] " if ok is False else "") + text for text, ok in lines) + "\n")

        sections = [
            Section("Verdict", paragraphs=[_what_ran(result)], raw_html=headline_html(lines)),
            Section(
                "Ranking",
                paragraphs=[f"Ranked by PSIS-LOO, {result.likelihood}. Best first; green rows are reliable "
                            "(every Pareto k below its threshold and the fit converged), red rows are not. "
                            "Differences are to the best model, with the standard error of the paired difference."],
                raw_html=_ranking_html(result, by),
            ),
            Section("Comparison plot",
                    paragraphs=["ArviZ's plot_compare: each model's elpd_loo (open circle) with its standard error, "
                                "and, below the best, the difference to the best (triangle) with the standard error "
                                "of the difference. A model whose triangle bar reaches the best model's "
                                "line (dashed) cannot be told apart from it."],
                    figures=[(f"elpd_loo per model, {_BY_TITLE[by]}.", folder / "compare.png")]),
            Section("Pareto k diagnostics",
                    paragraphs=["Can the importance-sampling estimate be trusted, unit by unit? Counts per model "
                                "in ArviZ's bins, the worst units, and every unit's k below."]
                               + ([f"What to do about high k: {pareto_advice(by)[0].lower()}{pareto_advice(by)[1:]}"]
                                  if any(not k.ok for k in result.pareto[by].values()) else []),
                    tables=[("", _pareto_table(result, by))],
                    figures=[("Pareto k per unit and model.", folder / "pareto_k.png")],
                    row_status="reliable"),
        ]
        for other in others:
            sections.append(Section(
                f"The other question: {_BY_TITLE[other]}",
                paragraphs=[f"The same fits, judged by PSIS-LOO, {likelihood_text(other, result.group_factor)}."
                            + (" It ranks the models in the same order." if list(result.ranking(other).index)
                               == list(result.ranking(by).index) else
                               " It ranks them differently: see the verdict.")],
                raw_html=_ranking_html(result, other),
                tables=[("Pareto k", _pareto_table(result, other))],
                figures=[(f"elpd_loo per model, {_BY_TITLE[other]}.", folder / f"compare_by_{other}.png"),
                         ("Pareto k per unit and model.", folder / f"pareto_k_by_{other}.png")],
                row_status="reliable"))
        sections.append(Section("The fits", raw_html=_fits_html(result)))
        if result.failures:
            sections.append(Section("Models that failed",
                                    paragraphs=[f"{n}: {err}" for n, err in result.failures.items()]))
        sections.append(Section("What the numbers mean", raw_html=_glossary_html()))
        write_report(folder / "report.html", "Model comparison: which hierarchical linear model?",
                     f"{len(result.fits)} formulas on one dataset, ranked by PSIS-LOO ({_BY_TITLE[by]}); "
                     f"recommended: {result.recommended}", sections)
    return out
