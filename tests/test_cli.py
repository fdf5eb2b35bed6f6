"""The hierlin command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def hierlin(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "hierlin_stan", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.mark.slow
def test_demo_writes_outputs_and_a_clean_marginal_fit(tmp_path):
    out = tmp_path / "demo"
    run = hierlin("demo", "--out", str(out), "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for name in ("overview.csv", "overview.md", "data.json", "marginal.nc", "centered.nc", "marginal_trace.png",
                 "centered_ppc_lines.png", "marginal_recovery.md", "marginal_summary.csv", "centered_verdict.txt"):
        assert (out / name).stat().st_size > 0, name
    overview = pd.read_csv(out / "overview.csv", index_col=0)
    marginal, centered = overview.loc["marginal"], overview.loc["centered"]
    assert marginal["divergences"] == 0
    assert marginal["max_rhat"] <= 1.01
    assert marginal["min_ess_bulk"] >= 1000
    assert centered["divergences"] > 0  # reported, not hidden
    assert "divergent transitions" in run.stdout and "parameterization='marginal'" in run.stdout
    # the user's folder stays clean (httpstan's build/ goes to our cache), no staging folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    # existing output is not overwritten without --force
    again = hierlin("demo", "--out", str(out), "--quiet")
    assert again.returncode == 2
    assert "exists and is not empty; pass --force" in again.stderr
    assert "Traceback" not in again.stderr


def test_simulate_then_fit_from_csv(tmp_path):
    csv = tmp_path / "d.csv"
    run = hierlin("simulate", "--out", str(csv), "--groups", "5,5,5", "--eps", "0.5", "--seed", "3")
    assert run.returncode == 0, run.stderr
    frame = pd.read_csv(csv)
    assert list(frame.columns) == ["x", "y", "group"] and len(frame) == 15
    again = hierlin("simulate", "--out", str(csv))
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    fit = hierlin("fit", str(csv), "--group", "group", "--draws", "200", "--warmup", "300", "--chains", "2",
                  "--seed", "1", "--quiet", "--out", str(tmp_path / "fit"))
    assert fit.returncode == 0, fit.stderr
    assert (tmp_path / "fit" / "marginal_summary.md").read_text().startswith("## marginal")


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "{csv}", "--x", "nope"], "has no column 'nope'"),
        (["fit", "{csv}", "--parameterization", "wiggly"], "parameterization='wiggly' is unknown"),
        (["fit", "{csv}", "--engine", "jags"], "engine='jags' is unknown"),
        (["fit", "{csv}", "--chains", "0"], "chains=0 must be an integer >= 1"),
        (["fit", "{csv}", "--seed", "-4"], "seed=-4 is out of range"),
        (["fit", "{csv}", "--priors", "flat"], "priors='flat' is not a preset"),
        (["fit", "{csv}", "--out", "{file}"], "is a file"),
        (["fit", "{csv}", "--prior", "eps_scale=0"], "eps_scale=0.0 is invalid"),
        (["fit", "{csv}", "--prior", "a_scale=-1"], "a_scale=-1.0 is invalid"),
        (["fit", "{csv}", "--prior", "sigma_b_scale=-3"], "upper end of a uniform(0, upper) prior must be > 0"),
        (["fit", "{csv}", "--prior", "eps_family=cauchy"], "eps_family='cauchy' is unknown"),
        (["fit", "{csv}", "--prior", "nu=3"], "unknown field(s) ['nu']"),
        (["fit", "{csv}", "--prior", "eps_scale"], "write FIELD=VALUE"),
        (["fit", "{csv}", "--draws", "0"], "draws=0 must be an integer >= 1"),
        (["fit", "{csv}", "--warmup", "0"], "warmup=0 must be an integer >= 1"),
        (["fit", "{missing}"], "does not exist"),
        (["simulate", "--out", "{dir}/x.txt"], "use a .csv or .json"),
        (["simulate", "--out", "{dir}/x.csv", "--groups", "a,b"], "--groups 'a,b'"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(tmp_path, args, message):
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,3\n2,5\n3,8\n")
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    subs = {"{csv}": str(csv), "{file}": str(afile), "{missing}": str(tmp_path / "missing.csv"), "{dir}": str(tmp_path)}
    argv = [subs.get(a, a) for a in args]
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    run = hierlin(*argv)
    assert run.returncode == 2
    assert message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("hierlin: error:")


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("x,y\n1,3\nnan,5\n3,8\n", [], "x[1] = nan is not finite"),
        ("x,y\n1,3\n2,inf\n3,8\n", [], "y[1] = inf is not finite"),
        ("x,y\n1,3\n2,five\n", [], "line 3, column 'y': 'five' is not a number"),
        ("x,y\n1,3\n", [], "only one observation"),
        ("x,y\n", [], "the data are empty"),
        ("", [], "is empty: give a header row"),
        ("x,y,g\n1,3,a\n2,5,\n", ["--group", "g"], "line 3, column 'g': the group label is missing"),
        ("x,y,g\n1,3,1\n2,5,\n", ["--group", "g"], "line 3, column 'g': the group label is missing"),
        ("x,y\n1,3\n2,5\n", ["--group", "g"], "has no column 'g'"),
    ],
)
def test_cli_bad_data_files_are_named(tmp_path, content, extra, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    run = hierlin("fit", str(csv), *extra, "--out", str(tmp_path / "out"))
    assert run.returncode == 2
    assert message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_debug_flag_shows_the_traceback(tmp_path):
    run = hierlin("--debug", "fit", str(tmp_path / "missing.csv"))
    assert run.returncode != 0 and "Traceback" in run.stderr


def test_install_cmdstan_failure_says_why_and_what_works(tmp_path):
    """Offline (every proxy a closed port), with an empty $CMDSTAN and $HOME: the real
    cmdstanpy installer fails at once, downloads nothing and touches no real installation."""
    from tests.conftest import no_cmdstan_env

    env = no_cmdstan_env(tmp_path)
    run = subprocess.run([sys.executable, "-m", "hierlin_stan", "install-cmdstan"], capture_output=True,
                         text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "installing CmdStan 2.35.0 failed" in run.stderr
    assert "downloads it from GitHub" in run.stderr and "engine='pystan'" in run.stderr
    assert "Traceback" not in run.stderr
    assert "Connection refused" in run.stdout + run.stderr  # it did try, through the closed proxy
    # nothing was downloaded or unpacked: the install folder cmdstanpy made in the fresh HOME is empty
    assert list((tmp_path / "home" / ".cmdstan").iterdir()) == []
    assert list((tmp_path / "no_cmdstan").iterdir()) == []
