"""Child processes: list them, and stop the ones a long call started when it is interrupted.

CmdStan runs one executable per chain from cmdstanpy's worker threads, and
queues the chains beyond ``parallel_chains``; compilers run from threads too
(make for CmdStan, gcc for httpstan). On Ctrl-C or SIGTERM the main thread
raises, but those threads carry on: they wait for the running chains and then
start the queued ones, so a stopped fit went on sampling (and the command line
would not exit) until every chain had finished.
:func:`stop_children_on_interrupt` kills the processes started within the
block, and can keep killing those its threads start afterwards until the
threads are done.

Processes are read from ``/proc`` on Linux, else through psutil when it is
installed; elsewhere nothing is stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Callable, Iterator

from .signals import stop_on_interrupt


def _parents_linux() -> dict[int, int] | None:
    """pid -> parent pid of every live (not zombie) process, from /proc; None without /proc."""
    if not os.path.isdir("/proc/self"):
        return None
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
        if fields and fields[0] not in (b"Z", b"X"):
            parents[int(entry)] = int(fields[1])
    return parents


def _parents() -> dict[int, int]:
    parents = _parents_linux()
    if parents is not None:
        return parents
    try:
        import psutil
    except ImportError:
        return {}
    out = {}
    for proc in psutil.process_iter(["ppid", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE:
            out[proc.pid] = proc.info["ppid"]
    return out


def descendants(pid: int | None = None, parents: dict[int, int] | None = None) -> list[int]:
    """Live descendants of ``pid`` (default: this process), children first."""
    parents = _parents() if parents is None else parents
    kids: dict[int, list[int]] = {}
    for child, parent in parents.items():
        kids.setdefault(parent, []).append(child)
    out, todo = [], list(kids.get(os.getpid() if pid is None else pid, []))
    while todo:
        child = todo.pop(0)
        out.append(child)
        todo.extend(kids.get(child, []))
    return out


def children(pid: int | None = None) -> list[int]:
    """Live direct children of ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return [child for child, parent in _parents().items() if parent == pid]


def kill_trees(pids: list[int]) -> None:
    """SIGKILL each process in ``pids`` and all its descendants (found before any is killed)."""
    if not pids:
        return
    parents = _parents()
    doomed: list[int] = []
    for pid in pids:
        doomed += [pid] + descendants(pid, parents)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


_BLOCKS = [0]  # blocks entered so far in this process


@contextlib.contextmanager
def stop_children_on_interrupt(
    stop: Callable[[], None] | None = None, *, watch_threads: bool = True, poll: float = 0.05,
    watch_seconds: float = 120.0,
) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM call ``stop()``, kill the child processes started in it, then raise.

    With ``watch_threads``, a daemon thread then goes on killing new children of
    this process until every (non-daemon) thread started within the block has
    ended (their queued work would otherwise start new processes), at most
    ``watch_seconds``, and no longer than until the next block starts: use it
    only where those threads end with the call (cmdstanpy's), not where they
    live on (a thread or process pool kept between calls).
    Children that existed before the block are never touched. Outside the main
    thread this does nothing (as :func:`~hierlin_stan.utils.signals.stop_on_interrupt`).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = set(children())
    threads_before = set(threading.enumerate())
    started = threading.Event()
    _BLOCKS[0] += 1
    block = _BLOCKS[0]

    def new_children() -> list[int]:
        return [pid for pid in children() if pid not in before]

    def watch(threads: list[threading.Thread]) -> None:
        end = time.monotonic() + watch_seconds
        # a later block is new work of the user's: never kill its processes
        while any(t.is_alive() for t in threads) and time.monotonic() < end and _BLOCKS[0] == block:
            kill_trees(new_children())
            time.sleep(poll)

    def on_interrupt() -> None:
        try:
            if stop is not None:
                stop()
        finally:
            kill_trees(new_children())
            if watch_threads and not started.is_set():
                started.set()
                threads = [t for t in threading.enumerate() if t not in threads_before and not t.daemon]
                threading.Thread(target=watch, args=(threads,), name="hierlin-stop-children", daemon=True).start()

    with stop_on_interrupt(on_interrupt):
        yield
