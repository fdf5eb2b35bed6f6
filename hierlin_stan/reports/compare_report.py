"""Write a :class:`~hierlin_stan.compare.Comparison` to a folder a person can read.

:func:`write_comparison` writes, into a staged folder (complete or absent, see
:func:`hierlin_stan.report.staged_output`):

* ``comparison.csv`` / ``.md`` -- one row per sampler (:attr:`Comparison.table`) plus
  the ``trustworthy`` / ``problems`` columns of :func:`assess`;
* ``cross_check.csv`` / ``.md`` -- every sampler's posterior means against the
  reference's, in combined Monte Carlo standard errors (:meth:`Comparison.cross_checks`);
* ``ess_per_second.png``, ``posteriors.png``, ``intervals.png``, ``trace_<sampler>.png``;
* ``verdicts.txt`` (every sampler's :func:`~hierlin_stan.diagnostics.verdict`), ``data.csv``;
* ``report.html`` -- self-contained (images embedded): a verdict at the top, the tables,
  the plots, and what each number means.

:func:`assess` and :func:`headline` hold the judgement used by the report and the CLI.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..samplers.registry import REFERENCE
from ..checks.diagnostics import ESS_MIN, RHAT_MAX, fit_attrs, verdict
from .html import Section, figure_to_data_uri, headline_html, write_report
from .plots import plot_ess, plot_trace, plt, save_figure
from .plots_compare import plot_intervals_by_sampler, plot_posteriors_overlay
from .tables import write_table
from ..utils.output import staged_output
from ..utils.files import atomic_path, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from ..workflows.compare import Comparison

__all__ = ["assess", "headline", "display_table", "write_comparison"]

#: The fast and the slow end of the headline ratio: Stan NUTS on the marginal
#: posterior against Metropolis on the full posterior (the notebook's sampler and target).
RATIO_FAST = "stan-marginal"
RATIO_SLOW = "metropolis-full"
#: The notebook's own sampler: PyMC's Metropolis on the centered model.
RATIO_SLOW_PYMC = "pymc-metropolis-centered"
#: What a Python user would type for a formula.
RATIO_SLOW_BAMBI = "bambi"


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number


def assess(comparison: "Comparison", threshold: float = 4.0) -> pd.DataFrame:
    """Judge every sampler by the same checks.

    A sampler is trustworthy when it ran, its max R-hat over a, mu_b, sigma_b, eps is
    at most :data:`~hierlin_stan.diagnostics.RHAT_MAX`, its min bulk- and tail-ESS are
    at least :data:`~hierlin_stan.diagnostics.ESS_MIN`, it had no divergent
    transitions (Metropolis records none), and its posterior means agree with the
    reference sampler's within ``threshold`` combined MCSE (the reference itself, or
    every sampler when the reference was not run, is judged by the other checks only).

    Parameters
    ----------
    comparison : Comparison
        The result of :func:`hierlin_stan.compare.compare`.
    threshold : float, default 4.0
        Largest ``|z|`` of the cross-check that passes.

    Returns
    -------
    pandas.DataFrame
        Indexed like :attr:`Comparison.table`; columns ``trustworthy`` (bool) and
        ``problems`` (text, empty when trustworthy).
    """
    table = comparison.table
    cross = comparison.cross_checks(threshold=threshold)
    rows = {}
    for name in table.index:
        if name in comparison.failures:
            rows[name] = {"trustworthy": False, "problems": "did not run: " + comparison.failures[name]}
            continue
        row = table.loc[name]
        problems = []
        rhat = _num(row.get("max_rhat"))
        if not (rhat <= RHAT_MAX):
            problems.append(f"R-hat {rhat:.3g} > {RHAT_MAX}")
        for column, what in (("min_ess_bulk", "bulk-ESS"), ("min_ess_tail", "tail-ESS")):
            ess = _num(row.get(column))
            if not (ess >= ESS_MIN):
                problems.append(f"{what} {ess:.0f} < {ESS_MIN}")
        div = _num(row.get("divergences"))
        if math.isfinite(div) and div > 0:
            problems.append(f"{div:.0f} divergence{'s' if div != 1 else ''}")
        if name != REFERENCE and name in cross.index and not bool(cross.loc[name, "passed"]):
            z_cols = [c for c in cross.columns if c.startswith("z_")]
            worst = max(z_cols, key=lambda c: abs(_num(cross.loc[name, c])) if math.isfinite(_num(cross.loc[name, c])) else math.inf)
            text = f"disagrees with {REFERENCE} ({worst[2:]}: z = {_num(cross.loc[name, worst]):+.1f})"
            differs = prior_differences(comparison, name)
            if differs:
                text += f" -- expected in part, its model differs: {differs}"
            problems.append(text)
        rows[name] = {"trustworthy": not problems, "problems": "; ".join(problems)}
    return pd.DataFrame.from_dict(rows, orient="index").reindex(table.index)


def prior_differences(comparison: "Comparison", name: str) -> str:
    """What in sampler ``name``'s model differs from the others' (bambi: what its priors cannot express); '' if none."""
    idata = comparison.fits.get(name)
    return "" if idata is None else str(fit_attrs(idata).get("prior_differences") or "")


def _over(comparison: "Comparison") -> str:
    """The parameters the ESS columns are taken over, in words."""
    if comparison.design is None:
        return "a, mu_b, sigma_b, eps"
    d = comparison.design
    return "beta, tau, sigma" + (", Omega" if d.correlated and d.q > 1 else "") + " (every element)"


def _ess_s(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _settings(comparison: "Comparison", name: str) -> str:
    idata = comparison.fits.get(name)
    if idata is None:
        return ""
    attrs = fit_attrs(idata)
    warmup, draws, chains = attrs.get("warmup"), attrs.get("draws"), attrs.get("chains")
    thin = attrs.get("thin", 1)
    if None in (warmup, draws, chains):
        return ""
    text = f"{int(chains)} chains x {int(draws):,} iterations after {int(warmup):,} warm-up"
    return text + (f", thinned by {int(thin)}" if thin and int(thin) > 1 else "")


def headline(comparison: "Comparison", assessment: pd.DataFrame | None = None) -> list[tuple[str, bool | None]]:
    """The verdict in a few sentences, each with a flag: True good, False bad, None neutral.

    Parameters
    ----------
    comparison : Comparison
        The result of :func:`hierlin_stan.compare.compare`.
    assessment : pandas.DataFrame, optional
        :func:`assess` of it (computed when None).

    Returns
    -------
    list of (str, bool or None)
        Trustworthy samplers and the fastest of them; the ones not to trust, with why;
        the ESS/s ratio of Stan NUTS (marginal) to Metropolis on the full posterior.
    """
    table = comparison.table
    judged = assess(comparison) if assessment is None else assessment
    label = {n: comparison.specs[n].label for n in table.index}
    lines: list[tuple[str, bool | None]] = []
    good = [n for n in table.index if bool(judged.loc[n, "trustworthy"])]
    if good:
        speed = {n: _num(table.loc[n, "min_ess_bulk_per_s"]) for n in good}
        fastest = max(good, key=lambda n: speed[n] if math.isfinite(speed[n]) else -1.0)
        lines.append((f"Trustworthy: {', '.join(label[n] for n in good)}.", True))
        lines.append((
            f"Fastest trustworthy sampler: {label[fastest]}, {_ess_s(speed[fastest])} effective draws "
            f"per second of sampling (smallest over {_over(comparison)}).", True))
    else:
        lines.append(("No sampler passed every check: do not trust any of these posteriors as they stand.", False))
    for n in table.index:
        if not bool(judged.loc[n, "trustworthy"]):
            lines.append((f"Not trustworthy: {label[n]} \N{EM DASH} {judged.loc[n, 'problems']}.", False))
    fast = RATIO_FAST
    for slow, what in ((RATIO_SLOW, "the package's Metropolis on the full posterior (the notebook's sampler "
                                    "and target"),
                       (RATIO_SLOW_PYMC, "PyMC's Metropolis on the centered model (the notebook's very library "
                                         "and model"),
                       (RATIO_SLOW_BAMBI, "bambi, what a Python user would type for this formula (its default "
                                          "non-centered model and PyMC's NUTS")):
        if fast not in comparison.fits or slow not in comparison.fits:
            continue
        ratio = comparison.speedup(fast, slow)
        note = ""
        if not bool(judged.loc[slow, "trustworthy"]):
            note = (f" It is not trustworthy here ({judged.loc[slow, 'problems']}), so its ESS is itself "
                    "unreliable: the ratio is an order of magnitude, not a measurement.")
        if slow == RATIO_SLOW_BAMBI and prior_differences(comparison, slow):
            note += f" bambi's model is not quite ours: {prior_differences(comparison, slow)}."
        ratio_text = f"a ratio of {ratio:,.0f} to 1" if math.isfinite(ratio) and ratio >= 10 else f"a ratio of {ratio:.3g}"
        lines.append((
            f"Stan NUTS on the marginal posterior gives {_ess_s(_num(table.loc[fast, 'min_ess_bulk_per_s']))} "
            f"ESS/s, {what}; {_settings(comparison, slow)}) gives "
            f"{_ess_s(_num(table.loc[slow, 'min_ess_bulk_per_s']))} ESS/s: {ratio_text}.{note}",
            None,
        ))
    return lines


_COLUMNS = {
    "label": "sampler",
    "parameterization": "parameterization",
    "chains x draws": "chains x kept draws",
    "compile_seconds": "compile s",
    "sampling_chain_seconds": "sampling s (all chains)",
    "min_ess_bulk": "min bulk-ESS",
    "min_ess_tail": "min tail-ESS",
    "min_ess_bulk_per_s": "bulk-ESS / s",
    "max_rhat": "max R-hat",
    "divergences": "divergences",
    "recovered_90": "truth in 90% interval",
}


def display_table(comparison: "Comparison", assessment: pd.DataFrame | None = None) -> pd.DataFrame:
    """The comparison table with readable headers, rounded numbers and a ``trustworthy`` column."""
    table = comparison.table
    judged = assess(comparison) if assessment is None else assessment
    shown = pd.DataFrame(index=table.index)
    for column, header in _COLUMNS.items():
        values = table[column] if column in table.columns else pd.Series(float("nan"), index=table.index)
        shown[header] = [_display(column, v) for v in values]
    notes = [prior_differences(comparison, n) for n in table.index]
    if any(notes):
        shown["model differs"] = [n or "\N{EM DASH}" for n in notes]
    shown["trustworthy"] = judged["trustworthy"].astype(bool)
    shown = shown.set_index("sampler")
    shown.index.name = "sampler"
    return shown


def _display(column: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\N{EM DASH}"
    if column in ("compile_seconds", "sampling_chain_seconds"):
        return f"{float(value):.2f}"
    if column in ("min_ess_bulk", "min_ess_tail", "divergences"):
        return f"{float(value):,.0f}"
    if column == "min_ess_bulk_per_s":
        return _ess_s(float(value))
    if column == "max_rhat":
        return f"{float(value):.3f}"
    return value


def _glossary(comparison: "Comparison") -> list[tuple[str, str]]:
    """The glossary, worded for the comparison's model."""
    if comparison.design is None:
        return _GLOSSARY
    over = _over(comparison)
    out = []
    for term, text in _GLOSSARY:
        text = text.replace("a, mu_b, sigma_b and eps", over).replace("a, mu_b, sigma_b, eps", over)
        text = text.replace("(here: the funnel between the slopes b and eps)",
                            "(in a hierarchical model: the funnel between the group effects u and tau)")
        text = text.replace("How many of the true a, mu_b, sigma_b (and eps when it is above 0) lie",
                            "How many of the true beta, tau, sigma (and correlations) lie")
        out.append((term, text))
    return out


_GLOSSARY = [
    ("compile s", "Seconds spent compiling the sampler's log density before any draw (Stan C++, "
                  "PyMC/PyTensor). 0 for the numpy Metropolis. Kept apart: it is paid once per model."),
    ("sampling s (all chains)", "Seconds of the sampling phase after warm-up, summed over chains: the time one "
                                "core would take to run every chain in turn, whether the sampler runs chains in "
                                "parallel processes (Stan, PyMC), threads (nutpie, estimated as run time x cores "
                                "used) or one vectorised loop (the numpy Metropolis). ESS per second divides by "
                                "this, so it compares samplers fairly; with chains in parallel on k cores the wall "
                                "time is about k times shorter. Timings vary between runs (other work on the "
                                "machine, caches): read ESS/s as an order of magnitude."),
    ("bulk-ESS, tail-ESS", "Effective sample size: how many independent draws the correlated chains are "
                           "worth for the centre (bulk) and the 5%/95% quantiles (tail) of the posterior. "
                           "The table shows the smallest over a, mu_b, sigma_b and eps. Below "
                           f"{ESS_MIN}, estimates are too noisy to rely on."),
    ("bulk-ESS / s", "Smallest bulk-ESS divided by the sampling seconds (all chains): what a second of one "
                     "core's computing buys. "
                     "The fairest single speed number, but only meaningful for a trustworthy sampler."),
    ("max R-hat", f"Largest split-R-hat over a, mu_b, sigma_b, eps: do the chains agree with each other? "
                  f"Above {RHAT_MAX} they have not converged to the same distribution."),
    ("divergences", "Divergent transitions of NUTS: places where the posterior's geometry is too curved "
                    "for the sampler (here: the funnel between the slopes b and eps), so the draws may be "
                    "biased. Any divergence is a warning. Metropolis has no such signal (shown as \N{EM DASH}), "
                    "which is why its failures stay silent."),
    ("truth in 90% interval", "How many of the true a, mu_b, sigma_b (and eps when it is above 0) lie in "
                              "their 90% central posterior interval. A check of the data simulation and the "
                              "model; a single miss happens by chance one time in ten."),
    ("cross-check z", "For each parameter: (mean of this sampler \N{MINUS SIGN} mean of the reference) / "
                      "sqrt(MCSE\u00b2 + MCSE_ref\u00b2), with MCSE the Monte Carlo standard error of the "
                      "mean. Two correct samplers of the same posterior give |z| of about 1; |z| above the "
                      "threshold means they do not sample the same distribution (or one has not converged)."),
    ("trustworthy", f"R-hat \u2264 {RHAT_MAX}, bulk- and tail-ESS \u2265 {ESS_MIN}, no divergences, and "
                    "agreement with the reference in the cross-check."),
]


def _glossary_html(comparison: "Comparison") -> str:
    items = "".join(f"<dt><b>{html.escape(term)}</b></dt><dd>{html.escape(text)}</dd>"
                    for term, text in _glossary(comparison))
    return f"<dl>{items}</dl>"


def _cross_display(cross: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    shown = cross.copy()
    rhat = [_num(table.loc[n, "max_rhat"]) if n in table.index else float("nan") for n in shown.index]
    shown.insert(len(shown.columns) - 1, "chains converged (R-hat)",
                 [("yes" if r <= RHAT_MAX else "NO: MCSE unreliable") + f" ({r:.3f})" for r in rhat])
    z_cols = [c for c in shown.columns if c.startswith("z_")]
    for c in z_cols:
        shown[c] = [("n/a" if not math.isfinite(_num(v)) else f"{_num(v):+.2f}") for v in shown[c]]
    shown = shown.rename(columns={c: f"z of {c[2:]}" for c in z_cols})
    shown.index.name = cross.index.name
    return shown


def _posteriors_note(comparison: "Comparison") -> str:
    note = ("The same posterior, sampled by each sampler: outlines that coincide mean the samplers agree. The red "
            "line is the true value used to simulate the data")
    if comparison.design is None:
        return note + (" (eps = 0 sits on the boundary of its prior: with one slope per point the data cannot tell "
                       "a small eps from 0, so its posterior is wide however well it is sampled).")
    d = comparison.design
    if d.correlated and d.q > 1 and "bambi" in comparison.fits:
        return note + (", when the data were simulated. A sampler whose model differs (bambi has no Omega) is left "
                       "out of the panels it does not have.")
    return note + ", when the data were simulated."


def _what_ran(comparison: "Comparison") -> str:
    engines = sorted({str(fit_attrs(idata).get("engine")) for idata in comparison.fits.values()
                      if fit_attrs(idata).get("engine") is not None})
    if comparison.design is not None:
        d = comparison.design
        truth = ""
        if d.truth:
            parts = [f"beta[{k}] = {v:g}" for k, v in d.truth.get("beta", {}).items()]
            parts += [f"tau[{k}] = {v:g}" for k, v in d.truth.get("tau", {}).items()]
            parts.append(f"sigma = {d.truth['sigma']:g}")
            truth = "; true values " + ", ".join(parts)
        return (f"Model: {d.formula.canonical}. Data: N = {d.N} rows in J = {d.J} groups of "
                f"{d.spec.group_factor or '(none)'} from {d.source}{truth}. Priors: {comparison.priors}. "
                f"Seed {comparison.seed}. Engines: {', '.join(engines) or 'none'}. Every sampler ran on these same "
                "data and priors (bambi: as far as its priors can say, see 'model differs').")
    ds = comparison.dataset
    kind = "one slope per point" if ds.one_slope_per_point else f"{ds.n_groups} groups"
    truth = ""
    if ds.truth:
        truth = "; true values " + ", ".join(f"{k} = {v:g}" for k, v in ds.truth.items())
    engines = sorted({str(fit_attrs(idata).get("engine")) for idata in comparison.fits.values()
                      if fit_attrs(idata).get("engine") is not None})
    return (f"Data: N = {ds.n} observations, {kind}{truth}. Priors: {comparison.priors}. Seed {comparison.seed}. "
            f"Engines: {', '.join(engines) or 'none'}. Every sampler ran on these same data and priors.")


def _trace_section(comparison: "Comparison", folder: Path, judged: pd.DataFrame) -> tuple[str, list[Path]]:
    """HTML of one block per sampler (verdict lines and trace plot) and the PNGs written."""
    parts, written = [], []
    for name, idata in comparison.fits.items():
        label = comparison.specs[name].label
        path = folder / f"trace_{name}.png"
        # 100 dpi: one trace per sampler is embedded in report.html, keep the page light
        save_figure(plot_trace(idata)[0, 0].figure, path, dpi=100)
        plt.close("all")
        written.append(path)
        ok = bool(judged.loc[name, "trustworthy"])
        status = ('<span class="verdict-ok">trustworthy</span>' if ok
                  else f'<span class="verdict-bad">not trustworthy: {html.escape(judged.loc[name, "problems"])}</span>')
        lines = "".join(f"<li>{html.escape(line)}</li>" for line in verdict(idata).splitlines() if line.strip())
        settings = _settings(comparison, name)
        parts.append(
            f"<h3>{html.escape(label)} <code>{html.escape(name)}</code></h3>"
            f"<p>{status}. {html.escape(settings)}.</p><ul>{lines}</ul>"
            f'<figure><img src="{figure_to_data_uri(path)}" alt="trace of {html.escape(label)}">'
            f"<figcaption>Trace of {html.escape(label)}: left, each chain's posterior density; right, each "
            "chain's draws in order. Red: the true value. Chains that agree overlap and look like "
            "stationary noise; black ticks mark divergent transitions.</figcaption></figure>"
        )
    return "\n".join(parts), written


def _write_data(comparison: "Comparison", folder: Path) -> None:
    """``data.csv``: the notebook's data, or a formula's rows as fitted (response, X, Z, group) and ``design.txt``."""
    if comparison.design is None:
        comparison.dataset.to_csv(folder / "data.csv")
        return
    d = comparison.design
    write_text_atomic(folder / "design.txt", d.describe() + "\n")
    if d.rows is None:
        return
    frame = pd.DataFrame({d.formula.response.name: d.rows.y})
    for k, name in enumerate(d.term_names):
        frame[f"X[{name}]"] = d.rows.x[:, k]
    for k, name in enumerate(d.group_term_names):
        frame[f"Z[{name}]"] = d.rows.z[:, k]
    frame[d.spec.group_factor or "group"] = np.asarray(d.group_labels)[d.rows.codes]
    with atomic_path(folder / "data.csv") as tmp:
        frame.to_csv(tmp, index=False)


def write_comparison(comparison: "Comparison", out: str | Path, force: bool = False) -> Path:
    """Write the comparison's tables, plots and HTML report into the folder ``out``.

    Parameters
    ----------
    comparison : Comparison
        The result of :func:`hierlin_stan.compare.compare`.
    out : str or Path
        Output folder, written completely or not at all.
    force : bool, default False
        Replace ``out`` when it exists and is not empty.

    Returns
    -------
    pathlib.Path
        The folder; ``report.html`` inside is the one file to open.

    Raises
    ------
    hierlin_stan.report.OutputExistsError
        ``out`` exists, is not empty, and ``force`` is False.
    ValueError
        When no sampler produced a fit (nothing to report; the message lists the failures).
    """
    if not comparison.fits:
        raise ValueError(
            "no sampler produced a fit, nothing to write; failures: "
            + "; ".join(f"{k}: {v}" for k, v in comparison.failures.items())
        )
    out = Path(out)
    judged = assess(comparison)
    table = comparison.table.join(judged)
    cross = comparison.cross_checks()
    lines = headline(comparison, judged)
    with staged_output(out, force=force) as folder:
        _write_data(comparison, folder)
        write_table(table, folder / "comparison", "Samplers compared on one dataset")
        if not cross.empty:
            write_table(cross, folder / "cross_check",
                        f"Posterior means vs {REFERENCE}, in combined MCSE (|z| <= {cross.attrs['threshold']:g} passes)")
        texts = [f"== {name} ==\n{verdict(idata)}" for name, idata in comparison.fits.items()]
        texts += [f"== {name} ==\nFAILED: {err}" for name, err in comparison.failures.items()]
        write_text_atomic(folder / "verdicts.txt",
                          "\n".join(t for t, _ in lines) + "\n\n" + "\n\n".join(texts) + "\n")

        plot_ess(table[["label", "min_ess_bulk_per_s"]], path=folder / "ess_per_second.png")
        labelled = {comparison.specs[n].label: idata for n, idata in comparison.fits.items()}
        trusted = [comparison.specs[n].label for n in comparison.fits if bool(judged.loc[n, "trustworthy"])]
        plot_posteriors_overlay(labelled, truth=None, focus=trusted or None, path=folder / "posteriors.png")
        plot_intervals_by_sampler(labelled, truth=None, path=folder / "intervals.png")
        plt.close("all")
        traces_html, _ = _trace_section(comparison, folder, judged)

        sections = [
            Section("Verdict", paragraphs=[_what_ran(comparison)], raw_html=headline_html(lines)),
            Section(
                "Comparison table",
                paragraphs=["One row per sampler, green when trustworthy, red when not (see the verdict and "
                            "'What the numbers mean' below). Speeds are per second of sampling; compile time "
                            "is shown apart."],
                tables=[("", display_table(comparison, judged))],
                row_status="trustworthy",
            ),
        ]
        if not cross.empty:
            sections.append(Section(
                f"Cross-check against {comparison.specs[REFERENCE].label}",
                paragraphs=[
                    f"Do the samplers find the same posterior? For each parameter, z is the difference of the "
                    f"posterior means in units of their combined Monte Carlo standard error; "
                    f"|z| \u2264 {cross.attrs['threshold']:g} for every parameter passes. A sampler that has "
                    "not converged has meaningless MCSE, so its z can be huge (or small) for that reason alone.",
                ],
                tables=[("", _cross_display(cross, table))],
                row_status="passed",
            ))
        sections += [
            Section("Sampling efficiency",
                    paragraphs=["Effective draws per second of sampling (log scale: each grid line is ten times "
                                "more). Longer bars are faster; compare only samplers marked trustworthy."],
                    figures=[(f"Smallest bulk-ESS over {_over(comparison)} per second of sampling.",
                              folder / "ess_per_second.png")]),
            Section("Posteriors across samplers",
                    paragraphs=[_posteriors_note(comparison)],
                    figures=[("Posterior densities, all chains pooled, on bins shared by all samplers; the x range "
                              "is set by the trustworthy samplers (solid outlines; the others are dashed), and the legend "
                              "says when another one has draws beyond it.",
                              folder / "posteriors.png"),
                             ("Posterior mean, 50% and 90% intervals per sampler, on each sampler's full range: "
                              "rows that do not line up disagree.",
                              folder / "intervals.png")]),
            Section("Traces, sampler by sampler", raw_html=traces_html),
        ]
        if comparison.failures:
            sections.append(Section(
                "Samplers that failed",
                paragraphs=[f"{comparison.specs[n].label} ({n}): {err}" for n, err in comparison.failures.items()],
            ))
        sections.append(Section("What the numbers mean", raw_html=_glossary_html(comparison)))
        write_report(
            folder / "report.html",
            "Sampler comparison: hierarchical linear regression" + (
                f", {comparison.design.formula.canonical}" if comparison.design is not None else ""),
            f"{len(comparison.fits)} sampler(s) on one dataset; reference: {comparison.specs.get(REFERENCE).label if REFERENCE in comparison.specs else 'none'}",
            sections,
        )
    return out
