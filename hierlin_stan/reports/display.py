"""How results display in Jupyter: a verdict, a comparison, an SBC result, as HTML and Markdown.

The result classes (:class:`~hierlin_stan.checks.diagnostics.Verdict`,
:class:`~hierlin_stan.workflows.compare.Comparison`,
:class:`~hierlin_stan.workflows.models.ModelComparison`,
:class:`~hierlin_stan.workflows.sbc.SBCResult`) inherit
:class:`~hierlin_stan.utils.display.RichDisplay`; this module registers their
renderers when :mod:`hierlin_stan.reports` is imported (which ``import hierlin_stan`` does).

* A verdict: its lines, each tag coloured ([OK] green, [WARNING] amber, [PROBLEM] red).
* A comparison: the report's verdict sentences, its table (green rows trustworthy, red
  not) and the ESS/s bars as an inline PNG.
* A model comparison: its verdict sentences and ranking table (green rows reliable).
* An SBC result: calibrated or not, counts, the uniformity table (green/red rows) and
  the ECDF-difference plot as an inline PNG.

The HTML carries its colours in ``style`` attributes (a notebook has no report
stylesheet) and its figures as ``data:`` URIs; figures are drawn without pyplot, so
the notebook's inline backend never shows them a second time. Markdown is text only:
the same tables, the ESS/s bars as block characters.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from ..checks.diagnostics import Verdict
from ..utils.display import register_display
from ..workflows.compare import Comparison
from ..workflows.models import ModelComparison
from ..workflows.sbc import SBCResult
from .html import figure_to_data_uri, table_html
from .tables import to_markdown

__all__ = ["comparison_html", "comparison_markdown", "models_html", "models_markdown", "sbc_html", "sbc_markdown", "verdict_html", "verdict_markdown"]

#: Colour of each verdict tag, and of the headline by its worst tag.
TAG_COLOURS = {"OK": "#1b7a1b", "WARNING": "#a15c00", "PROBLEM": "#b3261e", "n/a": "#666666", "": "#444444"}
_BOX = "font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;line-height:1.45;max-width:1000px"


def _tag(tag: str) -> str:
    colour = TAG_COLOURS.get(tag, TAG_COLOURS[""])
    return (f'<span style="display:inline-block;min-width:6.2em;font-family:monospace;font-weight:600;'
            f'color:{colour}">[{html.escape(tag)}]</span>') if tag else ""


def _md(text: str) -> str:
    """``text`` with Markdown's special characters escaped (it stays plain text)."""
    for char in "\\`*_[]<>|#":
        text = text.replace(char, "\\" + char)
    return text


def _headline_colour(problems: int, warnings: int) -> str:
    return TAG_COLOURS["PROBLEM"] if problems else TAG_COLOURS["WARNING"] if warnings else TAG_COLOURS["OK"]


# ------------------------------------------------------------------ verdict
def verdict_html(verdict: Verdict) -> str:
    """A verdict as HTML: the headline coloured by the worst finding, one coloured tag per check."""
    items = "".join(f'<li style="margin:0.15em 0">{_tag(tag)} {html.escape(text)}</li>'
                    for tag, text in verdict.lines())
    colour = _headline_colour(verdict.problems, verdict.warnings)
    return (f'<div class="hierlin-verdict" style="{_BOX}">'
            f'<p style="font-weight:600;color:{colour};margin:0.2em 0">{html.escape(verdict.headline)}</p>'
            f'<ul style="list-style:none;padding-left:0.3em;margin:0.2em 0">{items}</ul></div>')


def verdict_markdown(verdict: Verdict) -> str:
    """A verdict as Markdown: the headline in bold, one bullet per check with its tag."""
    lines = [f"**{_md(verdict.headline)}**", ""]
    lines += [f"- **{_md(f'[{tag}]')}** {_md(text)}" if tag else f"- {_md(text)}" for tag, text in verdict.lines()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------- comparison
def _ess_bars_uri(comparison: Comparison) -> str | None:
    """The ESS/s bars of the report (:func:`~hierlin_stan.reports.plots.plot_ess`) as a PNG data URI."""
    from matplotlib.figure import Figure

    from .plots import plot_ess

    table = comparison.table
    if "min_ess_bulk_per_s" not in table.columns or not len(table):
        return None
    fig = Figure(figsize=(8.5, 0.5 * len(table) + 1.6), layout="constrained")
    plot_ess(table[["label", "min_ess_bulk_per_s"]], ax=fig.add_subplot())
    return figure_to_data_uri(fig)


def comparison_html(comparison: Comparison) -> str:
    """A comparison as the HTML report shows it: verdict sentences, coloured table, ESS/s bars."""
    from .compare_report import assess, display_table, headline

    parts = [f'<div class="hierlin-comparison" style="{_BOX}">',
             f"<p><b>Samplers compared</b> on N = {comparison.dataset.n} observations "
             f"(seed {comparison.seed}; priors: {html.escape(comparison.priors)}).</p>"]
    if comparison.fits:
        judged = assess(comparison)
        items = []
        for text, ok in headline(comparison, judged):
            colour = {True: TAG_COLOURS["OK"], False: TAG_COLOURS["PROBLEM"], None: TAG_COLOURS[""]}[ok]
            weight = "600" if ok is not None else "normal"
            items.append(f'<li style="color:{colour};font-weight:{weight}">{html.escape(text)}</li>')
        parts.append(f"<ul>{''.join(items)}</ul>")
        parts.append('<p style="margin-bottom:0.2em">Green rows are trustworthy, red ones are not; '
                     "speeds are per second of sampling, compile time apart.</p>")
        parts.append(table_html(display_table(comparison, judged), "trustworthy", inline=True))
        uri = _ess_bars_uri(comparison)
        if uri is not None:
            parts.append(f'<img src="{uri}" alt="bulk-ESS per second of each sampler" '
                         'style="max-width:100%;margin-top:0.5em">')
    for name, error in comparison.failures.items():
        parts.append(f'<p style="color:{TAG_COLOURS["PROBLEM"]}">{html.escape(name)} failed: {html.escape(error)}</p>')
    parts.append("<p style='color:#555'>Every plot, the cross-check and what each number means: "
                 "<code>hs.write_report(result, 'folder')</code>.</p></div>")
    return "".join(parts)


def _text_bar(value: Any, low: float) -> str:
    """ESS/s as block characters on a log scale (two blocks per factor of 10 above ``low``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(number) or number <= 0:
        return "n/a"
    return "\N{FULL BLOCK}" * max(1, round(2 * math.log10(number / low)) + 1)


def comparison_markdown(comparison: Comparison) -> str:
    """A comparison as Markdown: the verdict sentences, the table, ESS/s as a bar of blocks."""
    from .compare_report import assess, display_table, headline

    lines = [f"**Samplers compared** on N = {comparison.dataset.n} observations (seed {comparison.seed}).", ""]
    if comparison.fits:
        judged = assess(comparison)
        for text, ok in headline(comparison, judged):
            lines.append(f"- {'**[OK]** ' if ok else '**[!!]** ' if ok is False else ''}{_md(text)}")
        shown = display_table(comparison, judged)
        per_s = pd.to_numeric(comparison.table.get("min_ess_bulk_per_s"), errors="coerce")
        positive = per_s[per_s > 0]
        low = float(positive.min()) if len(positive) else 1.0
        shown["ESS/s (log)"] = [_text_bar(v, low) for v in per_s]
        lines += ["", to_markdown(shown)]
    lines += [f"- {_md(name)} failed: {_md(error)}" for name, error in comparison.failures.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------- model comparison
def _models_intro(result: ModelComparison) -> str:
    groups = f", {result.n_groups} groups of {result.group_factor!r}" if result.group_factor else ""
    return f"{len(result.formulas)} models compared by PSIS-LOO on N = {result.n_obs} observations{groups}"


def models_html(result: ModelComparison) -> str:
    """A model comparison: the verdict sentences (coloured) and the ranking table (green rows reliable)."""
    from .models_report import display_ranking

    parts = [f'<div class="hierlin-models" style="{_BOX}">', f"<p><b>{html.escape(_models_intro(result))}</b>.</p>"]
    items = []
    for text, ok in result.headline():
        colour = {True: TAG_COLOURS["OK"], False: TAG_COLOURS["PROBLEM"], None: TAG_COLOURS[""]}[ok]
        weight = "600" if ok is not None else "normal"
        items.append(f'<li style="color:{colour};font-weight:{weight}">{html.escape(text)}</li>')
    parts.append(f"<ul>{''.join(items)}</ul>")
    if result.fits:
        parts.append('<div style="overflow-x:auto">'
                     + table_html(display_ranking(result), "reliable", inline=True) + "</div>")
    parts.append("<p style='color:#555'>The ArviZ compare plot, Pareto k per unit and each fit's diagnostics: "
                 "<code>hs.write_report(result, 'folder')</code>.</p></div>")
    return "".join(parts)


def models_markdown(result: ModelComparison) -> str:
    """A model comparison as Markdown: the verdict sentences and the ranking table."""
    from .models_report import display_ranking

    lines = [f"**{_md(_models_intro(result))}**", ""]
    for text, ok in result.headline():
        lines.append(f"- {'**[OK]** ' if ok else '**[!!]** ' if ok is False else ''}{_md(text)}")
    if result.fits:
        lines += ["", to_markdown(display_ranking(result))]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- SBC
def _sbc_plot_uri(result: SBCResult) -> str:
    """The ECDF-difference plots of ``result`` (one panel per parameter) as a PNG data URI."""
    from matplotlib.figure import Figure

    from .plots_sbc import plot_sbc

    params = list(result.ranks.columns)
    fig = Figure(figsize=(3.4 * len(params), 3.3), layout="constrained")
    plot_sbc(result.ranks, result.n_ranks, kind="ecdf", title=result.title(),
             axes=fig.subplots(1, len(params), squeeze=False))
    return figure_to_data_uri(fig)


def _sbc_counts(result: SBCResult) -> str:
    s = result.summary()
    return (f"{s['n_ok']} of {s['n_sims']} simulations finished ({s['n_failed']} failed), "
            f"{s['n_ess_limited']} ESS-limited, {s['n_with_divergences']} with divergences; "
            f"L = {s['n_ranks']} draws per rank.")


def sbc_html(result: SBCResult) -> str:
    """An SBC result: calibrated or not, counts, the uniformity table (coloured rows), the ECDF plot."""
    parts = [f'<div class="hierlin-sbc" style="{_BOX}">', f"<p><b>{html.escape(result.title())}</b></p>"]
    if result.ok:
        ok = result.calibrated
        colour = TAG_COLOURS["OK"] if ok else TAG_COLOURS["PROBLEM"]
        text = ("calibrated: every parameter passes the uniformity checks" if ok
                else "NOT calibrated: at least one parameter fails the uniformity checks")
        parts.append(f'<p style="color:{colour};font-weight:600">{text}.</p>')
        parts.append(f"<p>{html.escape(_sbc_counts(result))}</p>")
        parts.append(table_html(result.uniformity(), "calibrated", inline=True))
        parts.append(f'<img src="{_sbc_plot_uri(result)}" alt="ECDF differences of the ranks" '
                     'style="max-width:100%;margin-top:0.5em">')
        parts.append("<p style='color:#555'>Each curve must stay inside its shaded 95% band (simultaneous); "
                     "histograms and per-simulation diagnostics: <code>hs.write_report(result)</code>.</p>")
    else:
        parts.append(f'<p style="color:{TAG_COLOURS["PROBLEM"]}">No simulation finished; '
                     f"{len(result.records)} failed. <code>result.failures</code> gives their errors.</p>")
    parts.append("</div>")
    return "".join(parts)


def sbc_markdown(result: SBCResult) -> str:
    """An SBC result as Markdown: title, calibrated or not, counts, the uniformity table."""
    lines = [f"**{_md(result.title())}**", ""]
    if result.ok:
        lines.append(f"**{'calibrated' if result.calibrated else 'NOT calibrated'}** \N{EM DASH} "
                     f"{_md(_sbc_counts(result))}")
        lines += ["", to_markdown(result.uniformity())]
    else:
        lines.append(f"No simulation finished; {len(result.records)} failed.")
    return "\n".join(lines) + "\n"


register_display(Verdict, html=verdict_html, markdown=verdict_markdown)
register_display(Comparison, html=comparison_html, markdown=comparison_markdown)
register_display(ModelComparison, html=models_html, markdown=models_markdown)
register_display(SBCResult, html=sbc_html, markdown=sbc_markdown)
