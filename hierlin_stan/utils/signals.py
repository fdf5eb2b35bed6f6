"""Ctrl-C and SIGTERM during long work: stop child processes, then raise.

Engines run sampling in child processes (httpstan's process pool ignores
SIGINT; CmdStan runs executables). While an engine call runs, both signals
first call the engine's stop function, then raise in the main thread:
``KeyboardInterrupt`` for SIGINT, :class:`Terminated` (a KeyboardInterrupt)
for SIGTERM. Raising at once matters: httpstan's in-process server can spin
without yielding to the event loop, so asyncio's cooperative SIGINT handling
would wait for sampling to finish.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives during long work."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"received signal {signum}")


@contextlib.contextmanager
def stop_on_interrupt(stop: Callable[[], None]) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM call ``stop()`` and then raise.

    Outside the main thread (where handlers cannot be set) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        try:
            stop()
        finally:
            if signum == signal.SIGTERM:
                raise Terminated(f"received signal {signum}")
            raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def install_cli_handlers() -> None:
    """For the whole CLI process: SIGTERM behaves like Ctrl-C (cleanup runs)."""
    signal.signal(signal.SIGTERM, _raise_terminated)
