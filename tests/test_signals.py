"""The package's signal handlers act only in the process that installed them."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from hierlin_stan.utils import signals
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
    with signals.stop_on_interrupt(lambda: None):
        outer = signal.getsignal(signal.SIGTERM)
        with signals.stop_on_interrupt(lambda: None):
            assert signal.getsignal(signal.SIGTERM) is not outer
        assert signal.getsignal(signal.SIGTERM) is outer
    assert signal.getsignal(signal.SIGTERM) is original
    assert not signals._INSTALLED.get(signal.SIGTERM)


def test_pystan_stop_leaves_a_pool_it_does_not_own_alone(monkeypatch):
    """httpstan's forked workers hold a copy of their parent's pool: stopping it there hung forever."""
    import httpstan.services_stub as stub

    from hierlin_stan.engines import pystan_engine

    pool = stub.executor
    monkeypatch.setattr(pystan_engine, "_POOL_OWNER", os.getpid() + 1)  # as seen in a forked child
    pystan_engine._stop_workers()
    assert stub.executor is pool
