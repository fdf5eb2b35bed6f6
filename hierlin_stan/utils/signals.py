"""Ctrl-C and SIGTERM during long work: stop child processes, then raise.

Engines run sampling in child processes (httpstan's process pool ignores
SIGINT; CmdStan runs executables). While an engine call runs, both signals
first call the engine's stop function, then raise in the main thread:
``KeyboardInterrupt`` for SIGINT, :class:`Terminated` (a KeyboardInterrupt)
for SIGTERM. Raising at once matters: httpstan's in-process server can spin
without yielding to the event loop, so asyncio's cooperative SIGINT handling
would wait for sampling to finish.

Handlers belong to the process that installed them. A process forked while
one is installed (httpstan forks its chain workers during the very engine
call that installed it) gets back, at the fork, the handlers the package
had replaced; and should a handler still run in another process, it acts as
the replaced handler would and never calls the stop function. Calling it in
a forked worker used to shut down the worker's copy of the parent's process
pool, whose lock the parent held at the fork: the worker hung forever (a
Jupyter kernel left one such orphan behind at every shutdown). Spawned and
forkserver children start with Python's defaults and need nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Callable, Iterator

_Handler = Any  # a callable, signal.SIG_DFL, signal.SIG_IGN or None

# Per signal, what the package installed, innermost last: (our handler, the handler it replaced).
_INSTALLED: dict[int, list[tuple[_Handler, _Handler]]] = {}


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives during long work."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"received signal {signum}")


def _install(sig: int, handler: _Handler) -> None:
    previous = signal.signal(sig, handler)
    _INSTALLED.setdefault(sig, []).append((handler, previous))


def _uninstall(sig: int, handler: _Handler) -> None:
    stack = _INSTALLED.get(sig, [])
    for i in range(len(stack) - 1, -1, -1):
        if stack[i][0] is handler:
            _, previous = stack.pop(i)
            if i == len(stack):  # it was the innermost: put back what it replaced
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            else:  # the next inner one now stands for what this one replaced
                stack[i] = (stack[i][0], previous)
            return


def _original(sig: int) -> _Handler:
    """The handler of ``sig`` before the package installed any."""
    stack = _INSTALLED.get(sig)
    return stack[0][1] if stack else signal.getsignal(sig)


def restore_original_handlers() -> None:
    """Put back every handler the package replaced and forget the package's own.

    Runs in every child made by ``os.fork`` (multiprocessing's fork start method,
    forkserver's children, httpstan's chain workers).
    """
    for sig, stack in list(_INSTALLED.items()):
        if not stack:
            continue
        original = stack[0][1]
        try:
            signal.signal(sig, original if original is not None else signal.SIG_DFL)
        except (ValueError, OSError):  # not the main thread: the handlers' pid check still holds
            continue
        stack.clear()


os.register_at_fork(after_in_child=restore_original_handlers)


def _act_as_original(signum: int, frame: Any) -> None:
    """In a process that did not install the package's handler: behave as if it never had."""
    original = _original(signum)
    restore_original_handlers()
    if getattr(original, "_hierlin_owner", None) is not None:  # ours, of another process: never run it
        original = signal.SIG_DFL
    if callable(original):
        original(signum, frame)
    elif original == signal.SIG_IGN:
        return
    else:  # SIG_DFL (or unknown): the default action, e.g. terminate by this very signal
        try:
            signal.signal(signum, signal.SIG_DFL)
        except ValueError:  # cannot reset it here: end as the signal would
            os._exit(128 + signum)
        os.kill(os.getpid(), signum)


def _owned(handler: Callable[[int, Any], None]) -> Callable[[int, Any], None]:
    """``handler`` when running in the process that installs it; the replaced handler's behaviour elsewhere."""
    owner = os.getpid()

    def guarded(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            _act_as_original(signum, frame)
            return
        handler(signum, frame)

    guarded._hierlin_owner = owner  # type: ignore[attr-defined]
    return guarded


@contextlib.contextmanager
def stop_on_interrupt(stop: Callable[[], None]) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM call ``stop()`` and then raise.

    Outside the main thread (where handlers cannot be set) this does nothing.
    ``stop`` only ever runs in the process that entered the block: a child
    forked meanwhile gets the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        try:
            stop()
        finally:
            if signum == signal.SIGTERM:
                raise Terminated(f"received signal {signum}")
            raise KeyboardInterrupt

    handler = _owned(on_signal)
    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        _install(sig, handler)
    try:
        yield
    finally:
        for sig in reversed(sigs):
            _uninstall(sig, handler)


_CLI_HANDLER: list[_Handler] = [None]


def install_cli_handlers() -> None:
    """For the whole CLI process: SIGTERM behaves like Ctrl-C (cleanup runs). Once per process."""
    if _CLI_HANDLER[0] is not None and signal.getsignal(signal.SIGTERM) is _CLI_HANDLER[0]:
        return  # main() called again in the same process (tests, scripts)
    _CLI_HANDLER[0] = _owned(_raise_terminated)
    _install(signal.SIGTERM, _CLI_HANDLER[0])
