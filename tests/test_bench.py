"""``hierlin bench``: the quick run writes its tables and plots; bad input fails cleanly."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from hierlin_stan import cli
from hierlin_stan.reports.plots_bench import plot_scaling
from hierlin_stan.workflows.bench import PLANS
from tests.conftest import CMDSTAN_OK, no_cmdstan_env
from tests.test_cli import hierlin


@pytest.mark.slow
def test_bench_quick_writes_table_and_plots(tmp_path):
    """Run as a user runs it: with --quiet, stdout holds the two tables and the last line, stderr nothing."""
    out = tmp_path / "bench"
    run = hierlin("bench", "--quick", "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", f"--quiet let this through on stderr:\n{run.stderr[:3000]}"
    names = {p.name for p in out.iterdir()}
    assert {"samplers.csv", "samplers.md", "scaling.csv", "scaling.md", "ess_per_sampler.png", "scaling.png",
            "programs.csv", "programs.md", "programs.png", "machine.json"} <= names
    assert not list(tmp_path.glob(".bench.*")), "a staging folder was left behind"
    for png in ("ess_per_sampler.png", "scaling.png", "programs.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / png).stat().st_size > 10_000

    plan = PLANS["quick"]
    samplers = pd.read_csv(out / "samplers.csv", index_col="sampler")
    assert list(samplers.index) == list(plan.samplers)
    assert (samplers["min_ess_bulk_per_s"] > 0).all()
    assert (samplers["sampling_chain_seconds"] > 0).all()
    # the default program (collapsed) on the notebook's eps = 0 data: no divergences
    assert samplers.loc["stan-collapsed", "divergences"] == 0
    # The marginal posterior is the easy one: its ESS/s beats the full posterior's, for NUTS and Metropolis.
    assert samplers.loc["stan-marginal", "min_ess_bulk_per_s"] > samplers.loc["stan-centered", "min_ess_bulk_per_s"]
    assert (samplers.loc["metropolis-marginal", "min_ess_bulk_per_s"]
            > samplers.loc["metropolis-full", "min_ess_bulk_per_s"])

    scaling = pd.read_csv(out / "scaling.csv")
    expected = [("one slope per point", n) for n in plan.per_point_n] + \
               [(f"grouped, J = {plan.grouped_j}", n) for n in plan.grouped_n]
    assert list(zip(scaling["design"], scaling["N"])) == expected
    per_point = scaling["design"] == "one slope per point"
    assert (scaling.loc[per_point, "J"] == scaling.loc[per_point, "N"]).all()
    assert (scaling.loc[~per_point, "J"] == plan.grouped_j).all()
    assert (scaling["fit_seconds"] > 0).all() and (scaling["min_ess_bulk_per_s"] > 0).all()
    assert (scaling["ms_per_gradient"] > 0).all()

    # the program-variant table: each variant on each dataset, the program that ran, its numbers
    programs = pd.read_csv(out / "programs.csv")
    assert "error" not in programs or programs["error"].isna().all(), programs.get("error")
    assert list(zip(programs["data"], programs["variant"])) == [(k, v) for k in plan.program_data
                                                               for v in plan.program_variants]
    # without CmdStan (a user's host), its rows say why they did not run; the others ran
    not_run = programs["not_run"].notna() if "not_run" in programs else pd.Series(False, index=programs.index)
    cmdstan_rows = programs["variant"].str.endswith(("-fused", "-pure"))
    assert list(not_run) == list(cmdstan_rows & (not CMDSTAN_OK)), programs.get("not_run")
    if not_run.any():
        assert programs.loc[not_run, "not_run"].str.contains("needs CmdStan.*hierlin install-cmdstan").all()
    programs = programs[~not_run]
    assert len(programs) >= 2  # collapsed-pystan and the Metropolis run everywhere
    for variant, program in zip(programs["variant"], programs["program"]):
        if variant.endswith("-fused"):
            assert program == variant.replace("-fused", "_fused")
        elif variant.endswith(("-pure", "-pystan")):
            assert program == variant.rsplit("-", 1)[0]
    assert (programs["ess_per_chain_second"] > 0).all() and (programs["ess_per_wall_second"] > 0).all()
    nuts = ~programs["variant"].str.startswith("metropolis")
    assert (programs.loc[nuts, "ms_per_gradient"] > 0).all() and (programs.loc[nuts, "mean_leapfrog"] >= 1).all()
    assert (programs.loc[~nuts, "ms_per_density"] > 0).all()
    # only the final summary: the samplers table (header, index name, a row each), a blank line, the
    # scaling table (header, a row each), a blank line, the programs table (header, a row each), a blank
    # line, where it was written
    lines = run.stdout.splitlines()
    rows = len(not_run)
    assert len(lines) == 2 + len(samplers) + 1 + 1 + len(scaling) + 1 + 1 + rows + 1 + 1, run.stdout
    assert lines[-2 - rows - 1].split()[:2] == ["data", "variant"]
    assert "min_ess_bulk_per_s" in lines[0] and lines[1].startswith("sampler")
    assert [line.split()[0] for line in lines[2:2 + len(samplers)]] == list(samplers.index)
    assert lines[2 + len(samplers)] == "" and lines[-2] == ""
    assert lines[-1].startswith(f"wrote {out}/")


def test_bench_existing_folder_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert cli.main(["bench", "--quick", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hierlin: error:") and "--force" in err[0]
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_bench_unknown_sampler_is_one_line_error(tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--samplers", "stan-marginal,nope", "--out", str(tmp_path / "b"),
                     "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and "choose from" in err[0]
    assert not (tmp_path / "b").exists()


def test_plot_scaling_draws_on_given_axes_and_checks_columns():
    frame = pd.DataFrame({"design": ["d", "d"], "N": [10, 100], "fit_seconds": [1.0, 2.0],
                          "min_ess_bulk_per_s": [100.0, 50.0]})
    fig, axes = plt.subplots(1, 2)
    got = plot_scaling(frame, ax=axes)
    assert got[0] is axes[0] and got[1] is axes[1]
    assert axes[0].get_xscale() == "log" and axes[1].get_yscale() == "log"
    assert list(axes[0].lines[0].get_ydata()) == [1.0, 2.0]
    plt.close(fig)
    with pytest.raises(ValueError, match="fit_seconds"):
        plot_scaling(frame.drop(columns="fit_seconds"))


def test_bench_samplers_subset_with_a_plans_settings():
    import hierlin_stan as hs
    from hierlin_stan.workflows.bench import bench_samplers

    # the quick plan also sets metropolis-full, which this run leaves out
    table = bench_samplers(hs.simulate(groups=[5] * 4, eps=0.5, seed=1), samplers=["metropolis-marginal"],
                           settings=PLANS["quick"].settings, seed=1)
    assert list(table.index) == ["metropolis-marginal"]
    row = table.loc["metropolis-marginal"]
    assert row["iterations_per_second"] > 0 and row["min_ess_bulk_per_s"] > 0 and row["speedup_vs_slowest"] == 1.0


def test_plot_programs_draws_each_dataset_and_refuses_bad_frames():
    from hierlin_stan.reports.plots_bench import plot_programs

    frame = pd.DataFrame({
        "data": ["N100"] * 3 + ["N1e4"] * 3, "N": [100] * 3 + [10_000] * 3, "J": [100] * 3 + [10_000] * 3,
        "variant": ["collapsed-fused", "collapsed-pure", "metropolis-marginal"] * 2,
        "ess_per_chain_second": [5e4, 5e3, 9e3, 800, 65, 0.0],
        "ms_per_gradient": [0.002, 0.02, None, 0.1, 1.2, None], "ms_per_density": [None, None, 0.01, None, None, 1.0]})
    axes = plot_programs(frame)
    assert len(axes) == 4
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["metropolis-marginal", "collapsed-pure",
                                                                 "collapsed-fused"]
    assert len(axes[2].patches) == 2  # the row with no ESS is left out
    assert axes[0].get_title(loc="left").startswith("N100: N = 100")
    plt.close("all")
    with pytest.raises(ValueError, match="ess_per_chain_second"):
        plot_programs(frame.drop(columns="ess_per_chain_second"))
    with pytest.raises(ValueError, match="no program variant"):
        plot_programs(frame.assign(ess_per_chain_second=0.0))


def test_bench_programs_names_unknown_variants_and_data():
    from hierlin_stan.workflows.bench import bench_programs, program_dataset

    with pytest.raises(ValueError, match="'collapsed-fast'.*collapsed-fused"):
        bench_programs(["N100"], ["collapsed-fast"])
    with pytest.raises(ValueError, match="'N1e9' is unknown"):
        program_dataset("N1e9")


@pytest.mark.slow
def test_bench_programs_without_cmdstan_says_which_rows_need_it(tmp_path):
    """On a host whose cmdstanpy finds no CmdStan, CmdStan rows are not run (each says why), the rest run."""
    code = ("import json\n"
            "from hierlin_stan.workflows.bench import bench_programs\n"
            "t = bench_programs(['N100'], ['collapsed-fused', 'marginal-pure', 'metropolis-marginal'])\n"
            "print(t.to_json(orient='records'))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=no_cmdstan_env(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {r["variant"]: r for r in json.loads(run.stdout.strip().splitlines()[-1])}
    for variant in ("collapsed-fused", "marginal-pure"):
        assert rows[variant]["not_run"] == ("needs CmdStan, which cmdstanpy does not find: set $CMDSTAN or run "
                                            "`hierlin install-cmdstan`"), rows[variant]
        assert rows[variant].get("ess_per_chain_second") is None
    assert rows["metropolis-marginal"]["not_run"] is None and rows["metropolis-marginal"]["ess_per_chain_second"] > 0
    assert rows["metropolis-marginal"].get("error") is None

