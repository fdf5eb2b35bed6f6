"""Watching the processes a test starts: their descendants, whether any survive, and cleanup."""

from __future__ import annotations

import os
import signal
import time
from typing import Callable, Iterable

import psutil


def descendants(pid: int) -> list[psutil.Process]:
    """Live descendants of ``pid`` (none when it is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def in_group(pgid: int) -> list[psutil.Process]:
    """Live processes of process group ``pgid`` (orphans keep their group when init adopts them)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and _alive(proc):
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def survivors(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``procs`` still alive after up to ``timeout`` seconds of polling."""
    procs = list(procs)
    end = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if _alive(p)]
        if not alive or time.monotonic() > end:
            return alive
        time.sleep(0.2)


def describe(procs: Iterable[psutil.Process]) -> list[str]:
    """pid, parent, name, resident MB and command line of each process, for assertion messages."""
    out = []
    for p in procs:
        try:
            out.append(f"pid {p.pid} ppid {p.ppid()} {p.name()} {p.memory_info().rss >> 20} MB: "
                       f"{' '.join(p.cmdline())[:200]}")
        except psutil.Error:
            out.append(f"pid {p.pid} (gone)")
    return out


def kill_all(procs: Iterable[psutil.Process]) -> None:
    """SIGKILL what is left, so that a failing test leaks nothing."""
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def report_handlers_then_wait(queue) -> None:
    """Child process: put whether the package's signal handlers are installed here, then wait.

    Lives here, not in a test module, so that spawned children import little.
    """
    queue.put({
        sig.name: getattr(signal.getsignal(sig), "_hierlin_owner", None) is not None
        for sig in (signal.SIGINT, signal.SIGTERM)
    })
    time.sleep(60)
