"""compare(): several samplers on one dataset, judged by the same numbers, written as a report.

One small comparison on noisy grouped data (short runs) is shared by the tests of
this module; a sampler whose library is missing (PyMC blocked for the run) shows
that a failure is recorded, not fatal.
"""

from __future__ import annotations

import base64
import re
import sys

import numpy as np
import pandas as pd
import pytest

import hierlin_stan as hs
from hierlin_stan import cli
from hierlin_stan.workflows.compare import SAMPLERS, Comparison, compare
from hierlin_stan.reports.compare_report import assess, headline
from hierlin_stan.samplers.registry import parse_samplers
from hierlin_stan.reports.plots import plt
from hierlin_stan.reports.plots_compare import plot_intervals_by_sampler, plot_posteriors_overlay
from hierlin_stan.utils.output import OutputExistsError

RUN = ("stan-marginal", "stan-centered", "metropolis-marginal", "metropolis-full")
FAILING = "pymc-nuts-marginal"  # PyMC is blocked while the comparison runs
SHORT = {
    "stan-marginal": {"draws": 500, "warmup": 500},
    "stan-centered": {"draws": 500, "warmup": 500},
    "metropolis-marginal": {"draws": 6000, "warmup": 2000, "thin": 3},
    "metropolis-full": {"draws": 3000, "warmup": 2000, "thin": 3},
}


@pytest.fixture(scope="module")
def small(grouped_data) -> Comparison:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "pymc", None)  # `import pymc` fails: the PyMC extra "is not installed"
        return compare(grouped_data, samplers=[*RUN, FAILING], seed=3, settings=SHORT, show_progress=False)


# ------------------------------------------------------------ argument checks (fast)


def test_bad_sampler_names_raise_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown sampler\(s\) \['bogus'\]; choose from .*stan-marginal"):
        compare(samplers=["stan-marginal", "bogus"])
    with pytest.raises(ValueError, match="no samplers given"):
        compare(samplers=[])
    with pytest.raises(ValueError, match="repeats"):
        compare(samplers="stan-marginal,stan-marginal")
    with pytest.raises(ValueError, match="preset='nb' is unknown"):
        compare(preset="nb")
    with pytest.raises(ValueError, match="settings given for 'metropolis-full'"):
        compare(samplers=["stan-marginal"], settings={"metropolis-full": {"draws": 10}})
    with pytest.raises(ValueError, match="metropolis-full.*installed here: stan-collapsed, stan-marginal"):
        parse_samplers("list")
    assert parse_samplers(" stan-marginal , metropolis-full ") == ["stan-marginal", "metropolis-full"]
    assert parse_samplers(None) is None


@pytest.mark.parametrize("value", ["list", "stan-marginal,nuts"])
def test_cli_bad_samplers_is_one_line_listing_choices(value, capsys, tmp_path):
    status = cli.main(["compare", "--samplers", value, "--out", str(tmp_path / "c"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert err[0].startswith("hierlin: error: --samplers") and all(name in err[0] for name in SAMPLERS)
    assert not (tmp_path / "c").exists()


def test_cli_refuses_existing_output_before_sampling(capsys, tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("mine")
    status = cli.main(["compare", "--samplers", "stan-marginal", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert status == 2 and "exists and is not empty; pass --force" in err and "running" not in err
    assert (tmp_path / "c" / "keep.txt").read_text() == "mine"


# ------------------------------------------------------------------ the comparison


@pytest.mark.slow
def test_failing_sampler_is_recorded_not_fatal(small):
    assert list(small.fits) == list(RUN)
    assert list(small.failures) == [FAILING] and "hierlin_stan[pymc]" in small.failures[FAILING]
    table = small.table
    assert list(table.index) == [*RUN, FAILING]
    assert "FAILED" in table.loc[FAILING, "label"] and "ImportError" in table.loc[FAILING, "error"]
    judged = assess(small)
    assert not judged.loc[FAILING, "trustworthy"] and judged.loc[FAILING, "problems"].startswith("did not run")


@pytest.mark.slow
def test_table_judgement_and_ratio(small):
    table = small.table
    for name in RUN:
        row = table.loc[name]
        assert row["sampling_chain_seconds"] > 0 and row["min_ess_bulk"] > 0 and row["max_rhat"] > 0.99
        assert row["min_ess_bulk_per_s"] == pytest.approx(row["min_ess_bulk"] / row["sampling_chain_seconds"])
    assert table.loc["metropolis-full", "chains x draws"] == "4 x 1000"  # 3000 iterations thinned by 3
    assert pd.isna(table.loc["metropolis-marginal", "divergences"])  # Metropolis records none
    judged = assess(small)
    assert judged.loc["stan-marginal", "trustworthy"], judged.loc["stan-marginal", "problems"]
    for name in RUN:  # every reason given is a measured fact
        problems = judged.loc[name, "problems"]
        assert ("R-hat" in problems) == (table.loc[name, "max_rhat"] > 1.01)
        assert ("bulk-ESS" in problems) == (table.loc[name, "min_ess_bulk"] < 400)
        assert judged.loc[name, "trustworthy"] == (problems == "")
    ratio = small.speedup("stan-marginal", "metropolis-full")
    expected = table.loc["stan-marginal", "min_ess_bulk_per_s"] / table.loc["metropolis-full", "min_ess_bulk_per_s"]
    assert ratio == pytest.approx(expected)
    text = " ".join(line for line, _ in headline(small, judged))
    assert "Trustworthy: Stan NUTS, marginal" in text and "Metropolis on the full posterior" in text
    assert f"{ratio:,.0f} to 1" in text or f"{ratio:.3g}" in text


@pytest.mark.slow
def test_cross_check_same_posterior_passes_shifted_fails(small, grouped_data):
    """Same posterior: |z| <= 4 (combined MCSE); y + 1 shifts a by 1, which it flags alone."""
    cross = small.cross_checks()
    assert cross.index.name == "vs stan-marginal" and cross.attrs["threshold"] == 4.0
    assert list(cross.index) == ["stan-centered", "metropolis-marginal", "metropolis-full"]
    assert cross.loc["metropolis-marginal", "passed"], cross.loc["metropolis-marginal"]
    assert cross.loc["stan-centered", "passed"], cross.loc["stan-centered"]
    shifted = hs.Dataset.from_arrays(grouped_data.x, grouped_data.y + 1.0, grouped_data.group, grouped_data.n_groups)
    moved = hs.metropolis(shifted, target="marginal", draws=6000, warmup=2000, thin=3, seed=4, show_progress=False)
    table = hs.cross_check(small.fits["stan-marginal"], moved)
    assert not table.attrs["passed"]
    assert table.index[~table["passed"]].tolist() == ["a"] and table.loc["a", "z"] < -4


@pytest.mark.slow
def test_plots_accept_axes_and_focus(small):
    fits = {small.specs[n].label: idata for n, idata in small.fits.items()}
    fig, axes = plt.subplots(1, 4)
    out = plot_posteriors_overlay(fits, truth=small.dataset, ax=axes, focus=["Stan NUTS, marginal"])
    assert list(out) == list(axes)
    for axis, var in zip(out, ("a", "mu_b", "sigma_b", "eps")):
        assert len(axis.patches) == len(fits) + 1  # one outline per sampler, the first also filled
        assert any(np.allclose(line.get_xdata(), small.dataset.truth[var]) for line in axis.lines), var
    marginal = fits["Stan NUTS, marginal"].posterior["a"].values
    lo, hi = out[0].get_xlim()
    assert lo <= np.quantile(marginal, 0.0025) and hi >= np.quantile(marginal, 0.9975)
    with pytest.raises(ValueError, match="focus names"):
        plot_posteriors_overlay(fits, focus=["nope"])
    with pytest.raises(ValueError, match="4 Axes"):
        plot_posteriors_overlay(fits, ax=axes[:2])
    intervals = plot_intervals_by_sampler(fits)
    assert len(intervals) == 4 and len(intervals[0].get_yticks()) == len(fits)
    plt.close("all")


@pytest.mark.slow
def test_write_makes_every_file_and_a_self_contained_report(small, tmp_path):
    out = hs.write_report(small, tmp_path / "cmp")
    expected = {"comparison.csv", "comparison.md", "cross_check.csv", "cross_check.md", "data.csv",
                "verdicts.txt", "report.html", "ess_per_second.png", "posteriors.png", "intervals.png",
                *(f"trace_{name}.png" for name in RUN)}
    assert {p.name for p in out.iterdir()} == expected
    assert [p.name for p in tmp_path.iterdir()] == ["cmp"]  # nothing half-written left beside it
    csv = pd.read_csv(out / "comparison.csv", index_col="sampler")
    assert list(csv.index) == [*RUN, FAILING] and "trustworthy" in csv.columns
    assert list(pd.read_csv(out / "cross_check.csv", index_col=0).index) == list(RUN[1:])

    page = (out / "report.html").read_text()
    for section in ("Verdict", "Comparison table", "Cross-check against Stan NUTS, marginal", "Sampling efficiency",
                    "Posteriors across samplers", "Traces, sampler by sampler", "Samplers that failed",
                    "What the numbers mean"):
        assert f">{section}</h2>" in page, section
    for phrase in ("Trustworthy: Stan NUTS, marginal", "Fastest trustworthy sampler", "a ratio of",
                   "Effective sample size", "combined Monte Carlo standard error", "did not run: ImportError"):
        assert phrase in page, phrase
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == 3 + len(RUN)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing outside the file

    with pytest.raises(OutputExistsError, match="--force"):
        hs.write_report(small, out)


@pytest.mark.slow
def test_cli_compare_on_the_default_data(tmp_path):
    """Run as a user runs it. With --quiet only the summary is printed: no engine choice, progress,
    cmdstanpy log or Stan message (the centered program makes Stan print its rejections)."""
    from tests.test_cli import hierlin

    out = tmp_path / "cmp"
    run = hierlin("compare", "--samplers", "stan-marginal,stan-centered,metropolis-marginal", "--out", str(out),
                  "--quiet")
    printed = run.stdout
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", f"--quiet let this through on stderr:\n{run.stderr[:3000]}"
    assert "Stan NUTS, marginal" in printed and "bulk-ESS / s" in printed and "Trustworthy:" in printed
    assert f"open {out / 'report.html'}" in printed
    # the table (header, index name, one row per sampler), a blank line, the verdict, a blank line, the last line
    lines = printed.splitlines()
    assert "bulk-ESS / s" in lines[0] and lines[1].startswith("sampler") and lines[5] == ""
    assert [line.split(",")[0] for line in lines[2:5]] == ["Stan NUTS", "Stan NUTS", "Metropolis (numpy)"]
    verdict = lines[6:-2]
    assert verdict and all(line.startswith(("[OK] ", "[!!] ")) for line in verdict), printed
    assert any("centered" in line and "divergence" in line for line in verdict)
    assert lines[-2] == "" and lines[-1].startswith(f"wrote {out}/")
    assert (out / "report.html").is_file() and (out / "trace_metropolis-marginal.png").is_file()
    table = pd.read_csv(out / "comparison.csv", index_col="sampler")
    assert list(table.index) == ["stan-marginal", "stan-centered", "metropolis-marginal"]
    # the default data are the notebook's: 100 points, one slope per point, seed of the demo
    assert len(pd.read_csv(out / "data.csv")) == 100
