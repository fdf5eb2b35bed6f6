"""The package's signal handlers act only in the process that installed them; stopped work leaves no process."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from hierlin_stan.utils import processes, signals
from tests.process_helpers import report_handlers_then_wait

START_METHODS = [m for m in ("fork", "forkserver", "spawn") if m in mp.get_all_start_methods()]


@pytest.mark.parametrize("method", START_METHODS)
def test_child_of_any_start_method_neither_keeps_the_handlers_nor_runs_stop(tmp_path, method):
    stopped = tmp_path / "stop-ran"
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    with signals.stop_on_interrupt(lambda: stopped.write_text(str(os.getpid()))):
        child = ctx.Process(target=report_handlers_then_wait, args=(queue,))
        child.start()
        try:
            installed = queue.get(timeout=60)
            os.kill(child.pid, signal.SIGTERM)
            child.join(timeout=30)
        finally:
            if child.is_alive():
                child.kill()
    assert installed == {"SIGINT": False, "SIGTERM": False}
    assert child.exitcode == -signal.SIGTERM  # died of the signal, as without the package
    assert not stopped.exists(), f"stop() ran in process {stopped.read_text()}"


@pytest.mark.parametrize("sig, outcome", [(signal.SIGTERM, "killed by SIGTERM"), (signal.SIGINT, "KeyboardInterrupt")])
def test_inherited_handler_in_a_forked_child_does_not_run_stop(tmp_path, sig, outcome):
    """Even when a child still holds the handler (no at-fork reset), it acts as the handler it replaced."""
    stopped = tmp_path / "stop-ran"
    with signals.stop_on_interrupt(lambda: stopped.write_text(str(os.getpid()))):
        handler = signal.getsignal(sig)
        installed = {k: list(v) for k, v in signals._INSTALLED.items()}
        pid = os.fork()
        if pid == 0:  # child: undo the at-fork reset, then receive the signal
            code = 0
            try:
                signals._INSTALLED.update(installed)
                signal.signal(sig, handler)
                os.kill(os.getpid(), sig)
                time.sleep(5)
                code = 3
            except KeyboardInterrupt as err:
                code = 4 if isinstance(err, signals.Terminated) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    if outcome == "killed by SIGTERM":
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, status
    else:  # the handler it replaced (Python's): a plain KeyboardInterrupt, not the package's Terminated
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 2, status
    assert not stopped.exists(), f"stop() ran in process {stopped.read_text()}"


@pytest.mark.parametrize("sig, error", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, signals.Terminated)])
def test_handler_in_its_own_process_stops_then_raises_and_is_removed_after(sig, error):
    calls = []
    before = signal.getsignal(sig)
    with pytest.raises(error):
        with signals.stop_on_interrupt(lambda: calls.append(os.getpid())):
            os.kill(os.getpid(), sig)
            time.sleep(5)
    assert calls == [os.getpid()]
    assert signal.getsignal(sig) is before


def test_nested_blocks_put_back_what_each_replaced():
    original = signal.getsignal(signal.SIGTERM)
    installed = len(signals._INSTALLED.get(signal.SIGTERM, []))  # e.g. the CLI's, from an in-process main()
    with signals.stop_on_interrupt(lambda: None):
        outer = signal.getsignal(signal.SIGTERM)
        with signals.stop_on_interrupt(lambda: None):
            assert signal.getsignal(signal.SIGTERM) is not outer
        assert signal.getsignal(signal.SIGTERM) is outer
    assert signal.getsignal(signal.SIGTERM) is original
    assert len(signals._INSTALLED.get(signal.SIGTERM, [])) == installed


def test_cli_handler_is_installed_once_per_process():
    before = signal.getsignal(signal.SIGTERM)
    signals.install_cli_handlers()
    handler = signal.getsignal(signal.SIGTERM)
    installed = len(signals._INSTALLED[signal.SIGTERM])
    try:
        signals.install_cli_handlers()
        assert signal.getsignal(signal.SIGTERM) is handler
        assert len(signals._INSTALLED[signal.SIGTERM]) == installed
    finally:
        if handler is not before:  # leave pytest's SIGTERM as it was
            signals._uninstall(signal.SIGTERM, handler)


def test_pystan_stop_leaves_a_pool_it_does_not_own_alone(monkeypatch):
    """httpstan's forked workers hold a copy of their parent's pool: stopping it there hung forever."""
    import httpstan.services_stub as stub

    from hierlin_stan.engines import pystan_engine

    pool = stub.executor
    monkeypatch.setattr(pystan_engine, "_POOL_OWNER", os.getpid() + 1)  # as seen in a forked child
    pystan_engine._stop_workers()
    assert stub.executor is pool


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_interrupt_kills_the_children_the_block_started_and_those_its_threads_start_after():
    """As cmdstanpy does: chains beyond parallel_chains wait in worker threads and start later."""
    older = _sleeper()
    started: list[subprocess.Popen] = []

    def queued_work() -> None:
        time.sleep(0.5)  # after the signal
        started.append(_sleeper())
        started[-1].wait()

    try:
        with pytest.raises(signals.Terminated):
            with processes.stop_children_on_interrupt(poll=0.02):
                started.append(_sleeper())
                worker = threading.Thread(target=queued_work)
                worker.start()
                time.sleep(0.2)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        worker.join(timeout=10)
        assert not worker.is_alive()
        for thread in threading.enumerate():
            if thread.name == "hierlin-stop-children":
                thread.join(timeout=10)  # it stops once the worker has ended
                assert not thread.is_alive()
        assert [p.wait(timeout=10) for p in started] == [-signal.SIGKILL, -signal.SIGKILL]
        assert older.poll() is None  # a child from before the block is not touched
    finally:
        for p in [older] + started:
            p.kill()
            p.wait()


def test_descendants_are_read_from_this_process_tree():
    before = set(processes.descendants())  # e.g. a forkserver left by another test
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"])
    try:
        found = []
        for _ in range(100):
            found = [pid for pid in processes.descendants() if pid not in before]
            if len(found) >= 2:
                break
            time.sleep(0.1)
        assert found[0] == child.pid and len(found) == 2  # children first
        grandchild = found[1]
        processes.kill_trees([child.pid])
        assert child.wait(timeout=10) == -signal.SIGKILL
        for _ in range(100):
            if grandchild not in processes._parents():  # gone, or a zombie waiting for its new parent
                break
            time.sleep(0.1)
        assert grandchild not in processes._parents()
    finally:
        child.kill()
        child.wait()


def test_interrupt_calls_stop_then_kills_the_new_children_once_without_watching():
    """PyStan's way: its pools outlive the call, so no thread watches them afterwards."""
    calls = []
    started = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with processes.stop_children_on_interrupt(lambda: calls.append(os.getpid()), watch_threads=False):
                started.append(_sleeper())
                time.sleep(0.2)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
        assert calls == [os.getpid()]
        assert started[0].wait(timeout=10) == -signal.SIGKILL
        assert "hierlin-stop-children" not in [t.name for t in threading.enumerate()]
    finally:
        for p in started:
            p.kill()
            p.wait()
