"""Write an SBC run: ranks and records (CSV), uniformity table, plots, self-contained HTML.

Files, each written atomically into the run's folder (next to the incremental
``sims.jsonl`` and ``sbc.json``): ``ranks.csv``, ``simulations.csv`` (truth, ranks,
posterior summaries, ESS, R-hat, divergences per simulation), ``uniformity.csv`` /
``.md``, ``failures.csv`` (when any failed), ``sbc_ranks.png`` (rank histograms and
ECDF-difference plots) and ``report.html``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import pandas as pd

from .html import Section, write_report
from .plots_sbc import plot_sbc_result
from .tables import write_table
from ..utils.files import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from ..workflows.sbc import SBCResult

THINNING_NOTE = (
    "Ranks: each true value is ranked among L posterior draws (rank = number of draws below the truth, "
    "0..L; uniform when the sampler is calibrated). To make those draws nearly independent, each chain is "
    "thinned by t = ceil(S / ESS), with S the total number of draws and ESS the smallest bulk-ESS of "
    "the ranked parameters (a, mu_b, sigma_b and eps; for a formula every beta, tau, sigma and correlation) "
    "in that fit; L evenly spaced draws are then kept from the thinned draws of "
    "all chains. When fewer than L thinned draws remain, t is lowered and the simulation is counted as "
    "'ESS-limited' (its draws are autocorrelated, which distorts ranks; give the sampler more draws)."
)
READING_NOTE = (
    "Reading the plots: in the histograms the shaded band is where each bar of a uniform histogram falls "
    "with 99% probability; in the ECDF-difference plots the band holds the whole curve with 95% probability "
    "(simultaneous band, Säilynoja, Bürkner & Vehtari 2022). A U-shaped histogram (ECDF difference first "
    "above zero, then below) means posteriors too narrow; a hump (first below, then above) too wide; a "
    "slope to one side a biased posterior."
)


def write_sbc_report(result: "SBCResult", folder: str | Path | None = None) -> Path:
    """Write the tables, plots and ``report.html`` of ``result`` into ``folder``; return the HTML path.

    ``folder`` defaults to the run's own folder (``sbc(out=...)``), next to its records.
    """
    if folder is None:
        if result.out is None:
            raise ValueError("this SBC run has no folder: pass one (write_report(result, 'sbc_out'))")
        folder = result.out
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ranks = result.ranks
    with atomic_path(folder / "ranks.csv") as tmp:
        ranks.to_csv(tmp)
    table = result.table
    with atomic_path(folder / "simulations.csv") as tmp:
        table.to_csv(tmp)
    failures = result.failures
    if len(failures):
        with atomic_path(folder / "failures.csv") as tmp:
            failures.to_csv(tmp)
    else:
        (folder / "failures.csv").unlink(missing_ok=True)
    sections = [_summary_section(result)]
    if len(ranks):
        tests = result.uniformity()
        write_table(tests, folder / "uniformity", result.title() + ": uniformity of ranks")
        fig_path = folder / "sbc_ranks.png"
        axes = plot_sbc_result(result, fig_path)
        plt.close(axes.flat[0].figure)
        sections.append(Section(
            "Uniformity",
            paragraphs=[
                "Chi-square test on binned ranks (p-value per parameter) and whether the ECDF of the ranks "
                "stays inside its simultaneous 95% band (ecdf_in_band, as plotted). The verdict 'calibrated' "
                f"keeps the false-alarm rate over all {len(tests)} parameters at {tests.attrs['alpha']:.0%} "
                f"(Bonferroni): per parameter p >= {tests.attrs['level']:.3g} and the ECDF inside the "
                f"{1 - tests.attrs['level']:.2%} simultaneous band. A curve just outside the plotted 95% band "
                "is expected now and then when several parameters are checked.",
            ],
            tables=[("", tests)],
            row_status="calibrated",
        ))
        sections.append(Section("Rank plots", paragraphs=[READING_NOTE],
                                figures=[("Rank histograms (top) and ECDF differences (bottom)", fig_path)]))
        sections.append(Section("Per-simulation diagnostics", paragraphs=[THINNING_NOTE],
                                tables=[("", _diagnostics_table(result))]))
    if len(failures):
        sections.append(Section("Failed simulations", paragraphs=[
            f"{len(failures)} simulation(s) failed; each is recorded with its error in sims.jsonl and failures.csv."],
            tables=[("", failures)]))
    verdict = "calibrated" if result.calibrated else "NOT calibrated"
    return write_report(folder / "report.html", result.title(), f"Simulation-based calibration: {verdict}", sections)


def _summary_section(result: "SBCResult") -> Section:
    s = result.summary()
    cfg = result.config
    gen, back = cfg["generator"], cfg["backend"]
    ok = result.calibrated
    rows = pd.DataFrame(
        {
            "value": [
                back["sampler"], _engines_used(result, back.get("engine")), _priors_text(gen["priors"]), _priors_text(back["fit_priors"]),
                _design_text(gen), ", ".join(f"{k}={v}" for k, v in back["settings"].items()) or "defaults",
                cfg["seed"], s["n_sims"], s["n_ok"], s["n_failed"], s["n_ranks"], s["n_ess_limited"],
                s["n_with_divergences"], f"{s['median_min_ess_bulk']:.0f}",
            ]
        },
        index=["sampler", "engine", "simulating priors", "fitting priors", "design", "sampler settings", "seed",
               "simulations", "finished", "failed", "L (draws per rank)", "ESS-limited", "with divergences",
               "median min bulk-ESS"],
    )
    rows.index.name = "setting"
    timing = ""
    if result.n_run:
        timing = (f" This call ran {result.n_run} simulation(s) in {result.wall_seconds:.1f} s wall time "
                  f"({result.executor or 'pool'}, n_jobs={result.n_jobs}).")
    cls = "verdict-ok" if ok else "verdict-bad"
    raw = (f"<p class='{cls}'>{'All parameters pass' if ok else 'At least one parameter fails'} "
           f"the uniformity checks.</p><p class='note'>{html.escape(THINNING_NOTE)}{html.escape(timing)}</p>")
    return Section("Summary", raw_html=raw, tables=[("", rows.astype(str))])


def _engines_used(result: "SBCResult", asked: str | None) -> str:
    used = sorted({str(r["engine"]) for r in result.ok if r.get("engine")})
    return f"{asked} -> {', '.join(used)}" if used and used != [asked] else str(asked)


def _priors_text(fields: dict) -> str:
    """The notebook's Priors fields, or a formula's distributions by name, in words."""
    from ..model.priors import Priors

    if "a_loc" not in fields:  # a formula's priors: {"beta": "normal(0, 2)", ...}
        return "; ".join(f"{k} ~ {v}" for k, v in fields.items())
    return Priors(**fields).describe()


def _design_text(gen: dict) -> str:
    groups = gen.get("groups")
    if groups is None:
        where = f"N = {gen.get('n') or 100}, one slope per point"
    elif isinstance(groups, list):
        where = f"N = {sum(groups)} in {len(groups)} groups (sizes {', '.join(map(str, groups))})"
    else:
        where = f"N = {gen.get('n') or 100} in {groups} groups"
    text = f"{where}, x ~ U({gen['x_low']:g}, {gen['x_high']:g})"
    if gen.get("formula"):
        where = where.replace(", one slope per point", "")
        text = f"{gen['formula']}; {where}, each numeric predictor ~ U({gen['x_low']:g}, {gen['x_high']:g}) per simulation"
    return text


def _diagnostics_table(result: "SBCResult") -> pd.DataFrame:
    t = result.table
    cols = ["min_ess_bulk", "max_rhat", "divergences", "thin", "seconds"]
    frame = t[cols].describe(percentiles=[0.05, 0.5, 0.95]).T[["min", "5%", "50%", "95%", "max"]]
    frame.index.name = "per simulation"
    return frame
