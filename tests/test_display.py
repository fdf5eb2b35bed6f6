"""Results display themselves in Jupyter: a verdict, a comparison and an SBC result as HTML and Markdown.

The numpy Metropolis gives real fits in a second (no Stan), one trustworthy (marginal,
long enough) and one not (the full posterior, short), so both row colours are seen.
The rich displays inside a real kernel are checked by tests/test_notebook.py.
"""

from __future__ import annotations

import base64
import pickle
import re

import pytest
from IPython.lib.pretty import pretty

import hierlin_stan as hs
from hierlin_stan.checks.diagnostics import Verdict, verdict
from hierlin_stan.reports.html import ROW_COLOURS
from hierlin_stan.reports.plots import plt
from hierlin_stan.utils.display import RichDisplay, register_display, render
from hierlin_stan.workflows.compare import SAMPLERS, Comparison
from hierlin_stan.workflows.sbc import SBCResult

GOOD, BAD = ROW_COLOURS[True], ROW_COLOURS[False]
SETTINGS = {"metropolis-marginal": {"draws": 8000, "warmup": 2000, "thin": 2},
            "metropolis-full": {"draws": 1000, "warmup": 500, "thin": 1}}


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    data = hs.simulate(groups=[10] * 8, eps=0.5, seed=4)
    return hs.compare(data, samplers=["metropolis-marginal", "metropolis-full"], seed=2, settings=SETTINGS,
                      show_progress=False)


def _png_sources(html: str) -> list[bytes]:
    return [base64.b64decode(uri) for uri in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


# ------------------------------------------------------------ the verdict
def test_verdict_is_a_str_with_counts(comparison):
    good = verdict(comparison.fits["metropolis-marginal"])
    bad = verdict(comparison.fits["metropolis-full"])
    for v in (good, bad):
        assert isinstance(v, Verdict) and isinstance(v, str)
        tags = [tag for tag, _ in v.lines()]
        assert v.problems == tags.count("PROBLEM") and v.warnings == tags.count("WARNING")
        assert v.headline == v.splitlines()[0] and v.startswith("Fit (metropolis")
        assert pretty(v) == str(v)  # IPython's plain text: the lines, not a quoted string with \n
    assert good.ok and not bad.ok and bad.problems >= 1
    assert "do not trust" in bad.headline
    copy = pickle.loads(pickle.dumps(bad))
    assert copy == bad and copy.problems == bad.problems and isinstance(copy, Verdict)


def test_verdict_html_colours_each_tag_and_markdown_escapes():
    v = Verdict("Fit (nuts; 4 chains x 1000 draws): 1 problem(s), 1 warning(s) -- do not trust these estimates yet.\n"
                "[OK] max R-hat 1.002 <= 1.01.\n"
                "[WARNING] E-BFMI < 0.3 in chain(s) 0.\n"
                "[PROBLEM] 12 divergent transitions: use parameterization='marginal'.\n"
                "[n/a] eps not checked: its true value 0 is on the boundary.", problems=1, warnings=1)
    html = v._repr_html_()
    assert re.search(r'color:#1b7a1b">\[OK\]</span> max R-hat 1.002 &lt;= 1.01.', html)
    assert re.search(r'color:#a15c00">\[WARNING\]</span> E-BFMI &lt; 0.3', html)
    assert re.search(r'color:#b3261e">\[PROBLEM\]</span> 12 divergent', html)
    assert re.search(r'<p style="[^"]*color:#b3261e[^"]*">Fit \(nuts', html)  # headline red: a problem
    assert "parameterization=&#x27;marginal&#x27;" in html  # escaped
    md = v._repr_markdown_()
    assert md.splitlines()[0].startswith("**Fit (nuts; 4 chains")
    assert "- **\\[PROBLEM\\]** 12 divergent transitions: use parameterization='marginal'." in md
    assert "R-hat 1.002 \\<= 1.01" in md


# ------------------------------------------------------------ a comparison
def test_comparison_html_has_coloured_table_and_ess_bars(comparison):
    figures_before = plt.get_fignums()
    html = comparison._repr_html_()
    assert plt.get_fignums() == figures_before, "a figure left open would be shown again by the inline backend"
    rows = re.findall(r"<tr><td([^>]*)>([^<]+)</td>", html)
    colour = {label: attrs for attrs, label in rows}
    assert f"background:{GOOD}" in colour["Metropolis (numpy), marginal"]
    assert f"background:{BAD}" in colour["Metropolis (numpy), full posterior"]
    assert "Trustworthy: Metropolis (numpy), marginal." in html
    assert "Not trustworthy: Metropolis (numpy), full posterior" in html
    pngs = _png_sources(html)
    assert len(pngs) == 1 and pngs[0][:8] == b"\x89PNG\r\n\x1a\n" and len(pngs[0]) > 5_000  # the ESS/s bars


def test_comparison_markdown_and_plain_text(comparison):
    md = comparison._repr_markdown_()
    assert "| sampler | parameterization |" in md and "ESS/s (log) |" in md
    table = [line for line in md.splitlines() if line.startswith("| Metropolis")]
    bars = {line.split(" | ")[0][2:]: line.rstrip(" |").rsplit(" | ", 1)[1] for line in table}
    assert set(bars) == {"Metropolis (numpy), marginal", "Metropolis (numpy), full posterior"}
    assert len(bars["Metropolis (numpy), marginal"]) > len(bars["Metropolis (numpy), full posterior"]) >= 1
    assert set(bars["Metropolis (numpy), marginal"]) == {"\N{FULL BLOCK}"}
    assert "**[OK]** Trustworthy" in md and "**[!!]** Not trustworthy" in md
    text = repr(comparison)
    assert text == "Comparison(2 sampler(s) on N = 80: metropolis-marginal, metropolis-full; seed 2)"


def test_comparison_with_failures_only_still_displays():
    data = hs.simulate(groups=[5] * 4, eps=0.5, seed=1)
    failed = Comparison(data, {}, {"stan-marginal": SAMPLERS["stan-marginal"]},
                        {"stan-marginal": "EngineError: no engine"}, 1, "notebook")
    assert "stan-marginal failed: EngineError: no engine" in failed._repr_html_()
    assert "failed" in failed._repr_markdown_() and "1 failed (stan-marginal)" in repr(failed)


# ------------------------------------------------------------ an SBC result
@pytest.mark.slow
def test_sbc_result_shows_uniformity_table_and_ecdf_plot():
    # far too short a Metropolis: not calibrated, so red rows must appear
    result = hs.sbc(16, sampler="metropolis-marginal", seed=11, n_jobs=1, design={"groups": [5] * 4},
                    sampler_settings={"chains": 4, "draws": 50, "warmup": 20, "thin": 1}, n_ranks=49,
                    show_progress=False)
    assert not result.calibrated
    figures_before = plt.get_fignums()
    html = result._repr_html_()
    assert plt.get_fignums() == figures_before
    assert "NOT calibrated" in html and result.title() in html
    rows = dict((label, attrs) for attrs, label in re.findall(r"<tr><td([^>]*)>([^<]+)</td>", html))
    assert set(rows) == {"a", "mu_b", "sigma_b", "eps"}
    u = result.uniformity()
    for param, attrs in rows.items():
        assert f"background:{GOOD if u.loc[param, 'calibrated'] else BAD}" in attrs
    pngs = _png_sources(html)
    assert len(pngs) == 1 and pngs[0][:8] == b"\x89PNG\r\n\x1a\n"
    md = result._repr_markdown_()
    assert "**NOT calibrated**" in md and "| parameter | n_sims |" in md


def test_sbc_result_without_finished_simulations():
    records = [{"sim": k, "status": "failed", "stage": "fit", "error": "ChainError: chain 1 failed"} for k in range(3)]
    result = SBCResult(records, {"n_ranks": 99, "backend": {"sampler": "stan-marginal"}})
    assert "No simulation finished; 3 failed" in result._repr_html_()
    assert "No simulation finished; 3 failed" in result._repr_markdown_()


# ------------------------------------------------------------ the registry
def test_registry_finds_the_nearest_base_and_names_bad_kinds():
    class Base(RichDisplay):
        pass

    class Child(Base):
        pass

    class Unregistered(RichDisplay):
        pass

    register_display(Base, html=lambda obj: f"<b>{type(obj).__name__}</b>")
    assert Child()._repr_html_() == "<b>Child</b>"
    assert Child()._repr_markdown_() is None  # no Markdown registered: Jupyter falls back
    assert Unregistered()._repr_html_() is None
    with pytest.raises(ValueError, match="kind='latex' is unknown; use 'html' or 'markdown'"):
        render(Child(), "latex")
