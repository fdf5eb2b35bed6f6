"""Engine trouble, concurrency and interruption, with the real engines and processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hierlin_stan as hs
from hierlin_stan.engines import ChainError, EngineError, get_engine, pystan_engine

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def test_chain_that_cannot_initialise_is_named(engine_name):
    ds = hs.Dataset.from_arrays([1.0, 2.0, 3.0], [1e300, -1e300, 1e300])
    with pytest.raises(ChainError) as info:
        hs.fit(ds, "centered", engine=engine_name, seed=1, chains=2, draws=10, warmup=10, show_progress=False)
    text = str(info.value)
    assert info.value.engine == engine_name and info.value.chain in (1, 2)
    assert text.startswith(f"{engine_name}: chain {info.value.chain} failed: ")
    assert "Initialization failed" in text  # Stan's own words
    assert "Log probability evaluates to log(0)" in text  # and its reason
    assert "rescale x and y" in text and "inits=" in text  # our advice
    assert "RunSet" not in text and "show_console" not in text  # not cmdstanpy's plumbing
    assert text.count("Rejecting initial value") <= 1  # Stan repeats it 100 times; once is enough


def test_stanc_rejection_is_reported_with_stancs_words(monkeypatch):
    broken = "parameters { real x; } model { x ~ normal(0, ; }"
    monkeypatch.setattr(pystan_engine, "program_source", lambda name: broken)
    engine = pystan_engine.PyStanEngine()
    with pytest.raises(EngineError, match=r"pystan: stanc rejected the centered program: Syntax error.*Ill-formed"):
        engine.compile("centered")


@pytest.mark.slow
def test_missing_cxx_compiler_says_what_to_install(tmp_path):
    code = (
        "from hierlin_stan.engines import get_engine\n"
        "get_engine('pystan').compile('marginal')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=_env(XDG_CACHE_HOME=str(tmp_path / "xdg"), HIERLIN_STAN_CACHE=str(tmp_path / "h"),
                                  CC="/nonexistent/cc", CXX="/nonexistent/c++"))
    assert run.returncode != 0
    assert "the C++ compiler failed building the marginal program" in run.stderr
    assert "apt-get install g++" in run.stderr


def _python_without_cmdstan(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    from tests.conftest import no_cmdstan_env

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=no_cmdstan_env(tmp_path), cwd=tmp_path)


def test_no_usable_engine_says_how_to_get_one(tmp_path):
    # a process whose cmdstanpy sees an empty $CMDSTAN, and whose PyStan is declared unusable
    code = (
        "from hierlin_stan.engines import EngineError, get_engine, pystan_engine\n"
        "pystan_engine.available = lambda: (False, 'PyStan is not importable (simulated)')\n"
        "try:\n"
        "    get_engine('auto', verbose=False)\n"
        "except EngineError as err:\n"
        "    print(err)\n"
    )
    run = _python_without_cmdstan(code, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r"no Stan engine is usable: no CmdStan installation found by cmdstanpy .*no_cmdstan.*"
                     r"PyStan is not importable \(simulated\).*hierlin install-cmdstan.*pip install pystan", run.stdout)


def test_auto_engine_without_cmdstan_falls_back_to_pystan_and_says_so(tmp_path):
    code = "from hierlin_stan.engines import get_engine\nprint(get_engine('auto').name)\n"
    run = _python_without_cmdstan(code, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "pystan"
    assert "engine=auto -> pystan (no CmdStan found by cmdstanpy; `hierlin install-cmdstan` installs it)" in run.stderr


def test_cmdstan_engine_without_cmdstan_points_to_pystan(tmp_path):
    code = (
        "from hierlin_stan.engines import EngineError, get_engine\n"
        "try:\n"
        "    get_engine('cmdstan')\n"
        "except EngineError as err:\n"
        "    print(err)\n"
    )
    run = _python_without_cmdstan(code, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r"^cmdstan: no CmdStan installation found by cmdstanpy.*hierlin install-cmdstan.*"
                     r"engine='pystan'", run.stdout)


@pytest.mark.slow
def test_eight_processes_on_a_cold_cache_compile_once(tmp_path):
    """8 processes compile and sample the same program at once on empty caches."""
    cache, xdg = tmp_path / "cache", tmp_path / "xdg"
    code = (
        "import hierlin_stan as hs, sys\n"
        "idata = hs.fit(hs.simulate(seed=1), 'marginal', engine='pystan', chains=2, draws=100, warmup=100,\n"
        "               seed=int(sys.argv[1]), show_progress=False)\n"
        "print(float(idata.posterior['a'].mean()))\n"
    )
    env = _env(XDG_CACHE_HOME=str(xdg), HIERLIN_STAN_CACHE=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for k in range(8)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert 0 < float(out.strip().splitlines()[-1]) < 10
    events = (cache / "compile-events.log").read_text().splitlines()
    assert len(events) == 1 and events[0].startswith("pystan marginal"), events
    # the cache is intact: a ninth process finds the model and does not compile
    p9 = subprocess.run([sys.executable, "-c", code, "9"], capture_output=True, text=True, env=env, timeout=300)
    assert p9.returncode == 0, p9.stderr[-2000:]
    assert len((cache / "compile-events.log").read_text().splitlines()) == 1


def _sampling(pid: int, engine: str, program: str) -> list:
    """The processes running chains under ``pid``: CmdStan executables (named after the program),
    or httpstan's chain workers (forked, so with their parent's command line)."""
    import psutil

    from tests.process_helpers import descendants

    try:
        command = psutil.Process(pid).cmdline()
        if engine == "cmdstan":
            return [p for p in descendants(pid) if p.name() == program]
        return [p for p in descendants(pid) if p.cmdline() == command]
    except psutil.Error:
        return []


def _compiling(pid: int) -> list:
    """The compiler processes (make, gcc, cc1plus) under ``pid``."""
    import psutil

    from tests.process_helpers import descendants

    try:
        return [p for p in descendants(pid) if p.name() in ("make", "gcc", "g++", "cc1plus")]
    except psutil.Error:
        return []


def _interrupt_when(cmd: list[str], running, what: str, sig: signal.Signals, env: dict | None = None, **popen):
    """Start ``cmd`` in its own process group, send ``sig`` once ``running(pid)`` finds processes, and
    return (process, stderr, survivors): every process it or its descendants left alive. The process
    must exit within 20 s of the signal."""
    from tests.process_helpers import descendants, in_group, kill_all, survivors, wait_for

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or _env(),
                            start_new_session=True, **popen)
    watched: dict = {}
    try:
        wait_for(lambda: running(proc.pid) or proc.poll() is not None, 300, what)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(2)  # well into it
        watched.update((p.pid, p) for p in descendants(proc.pid))
        assert running(proc.pid), f"no longer {what}"
        proc.send_signal(sig)
        signalled = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - signalled < 20, f"exited {time.monotonic() - signalled:.0f} s after the signal"
        watched.update((p.pid, p) for p in in_group(proc.pid))  # orphans keep the group
        return proc, err, survivors(watched.values(), timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_all(list(watched.values()) + in_group(proc.pid))


def _interrupt_during_sampling(cmd: list[str], engine: str, sig: signal.Signals, **popen):
    return _interrupt_when(cmd, lambda pid: _sampling(pid, engine, "centered"), "sampling to run", sig, **popen)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [pytest.param(signal.SIGINT, 130, id="SIGINT"),
                                       pytest.param(signal.SIGTERM, 143, id="SIGTERM")])
def test_cli_interrupt_stops_sampling_and_leaves_no_output(tmp_path, sig, code, engine_name):
    from tests.process_helpers import describe

    get_engine(engine_name, verbose=False).compile("centered")  # the CLI shares this session's cache
    data = tmp_path / "d.json"
    hs.simulate(seed=1).to_json(data)
    out = tmp_path / f"out_{sig.name}"
    proc, err, alive = _interrupt_during_sampling(
        [sys.executable, "-m", "hierlin_stan", "fit", str(data), "--parameterization", "centered", "--engine",
         engine_name, "--draws", "400000", "--warmup", "1000", "--seed", "1", "--out", str(out)],
        engine_name, sig, cwd=tmp_path,
    )
    assert proc.returncode == code, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder
    assert not alive, "left running:\n" + "\n".join(describe(alive))  # sampling processes were stopped



@pytest.mark.slow
def test_cli_sigterm_while_compiling_stops_the_compiler(tmp_path, engine_name):
    """The compiler runs from a thread (make for CmdStan, gcc for httpstan): it used to finish first."""
    from tests.process_helpers import describe

    data = tmp_path / "d.json"
    hs.simulate(seed=1).to_json(data)
    env = _env(XDG_CACHE_HOME=str(tmp_path / "xdg"), HIERLIN_STAN_CACHE=str(tmp_path / "cache"))  # cold caches
    proc, err, alive = _interrupt_when(
        [sys.executable, "-m", "hierlin_stan", "fit", str(data), "--engine", engine_name, "--out", str(tmp_path / "o")],
        _compiling, "the compiler to run", signal.SIGTERM, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 143, err[-2000:]
    assert not alive, "left running:\n" + "\n".join(describe(alive))
    assert not (tmp_path / "o").exists()

@pytest.mark.slow
def test_api_sigterm_during_fit_stops_child_processes(tmp_path, engine_name):
    from tests.process_helpers import describe

    get_engine(engine_name, verbose=False).compile("centered")
    code = (
        "import hierlin_stan as hs\n"
        f"hs.fit(hs.simulate(seed=1), 'centered', engine={engine_name!r}, draws=400000, seed=1, show_progress=False)\n"
    )
    proc, err, alive = _interrupt_during_sampling([sys.executable, "-c", code], engine_name, signal.SIGTERM)
    assert proc.returncode != 0
    assert "Terminated" in err or "KeyboardInterrupt" in err
    assert not alive, "left running:\n" + "\n".join(describe(alive))


@pytest.mark.slow
def test_forked_child_fits_with_pystan_after_its_parent_did_and_exits(tmp_path):
    """A fork-started child used to inherit the parent's httpstan pool (no manager thread): it waited forever."""
    from tests.process_helpers import describe, in_group, kill_all, survivors

    code = (
        "import multiprocessing as mp\n"
        "import hierlin_stan as hs\n"
        "def job(seed, queue=None):\n"
        "    idata = hs.fit(hs.simulate(seed=1), 'marginal', engine='pystan', chains=2, draws=100, warmup=100,\n"
        "                   seed=seed, show_progress=False)\n"
        "    if queue is not None:\n"
        "        queue.put(float(idata.posterior['a'].mean()))\n"
        "if __name__ == '__main__':\n"
        "    job(1)\n"
        "    ctx = mp.get_context('fork')\n"
        "    queue = ctx.Queue()\n"
        "    child = ctx.Process(target=job, args=(2, queue))\n"
        "    child.start()\n"
        "    child.join(120)\n"
        "    if child.is_alive():\n"
        "        child.kill()\n"
        "    print('child exit code', child.exitcode, 'a', queue.get(timeout=1) if child.exitcode == 0 else None)\n"
    )
    script = tmp_path / "fork_after_fit.py"
    script.write_text(code)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert out.startswith("child exit code 0 a "), out + err[-2000:]
        assert 0 < float(out.split()[-1]) < 10
        alive = survivors(in_group(proc.pid), timeout=10)
        assert not alive, "left running:\n" + "\n".join(describe(alive))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_all(in_group(proc.pid))


def test_engine_output_points_only_to_what_users_have(default_data, engine_name, caplog, capfd):
    """A fit with divergences: the verdict reports them; the engine prints no advice about
    objects users never see (cmdstanpy's show_console=True, diagnose(), exit-code strerror)."""
    caplog.set_level("INFO")
    idata = hs.fit(default_data, "centered", engine=engine_name, seed=2, chains=2, draws=300, warmup=300,
                   show_progress=False)
    printed = capfd.readouterr().err + caplog.text
    assert int(idata.sample_stats["diverging"].sum()) > 0
    assert "divergent transitions" in hs.diagnostics.verdict(idata)
    for noise in ("show_console", "diagnose()", "Operation not permitted", "CmdStan start processing"):
        assert noise not in printed, printed[-2000:]
