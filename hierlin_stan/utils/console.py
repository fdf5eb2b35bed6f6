"""Console output of engines: captured while they run, shown only when something fails.

Two kinds of chatter reach a user's terminal or notebook while Stan runs:

* lines that a library prints from its worker threads (cmdstanpy prints each CmdStan
  process's console, progress and Stan's informational messages included, from the
  thread that runs it when asked to ``show_console``): :func:`capture_thread_output`
  hands every such line to a callback instead, while the caller's own threads print
  as usual;
* output that child processes write straight to the file descriptors 1 and 2 (the C++
  compiler run by httpstan): :func:`capture_fd_output` sends it to a temporary file
  for the duration of a block and keeps the text, for the error message should the
  block fail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Iterator

__all__ = ["CapturedText", "capture_fd_output", "capture_thread_output", "quiet_loggers"]


class _ThreadRouter:
    """A stand-in for ``sys.stdout``: threads started after it was made write lines to ``on_line``."""

    def __init__(self, original: Any, on_line: Callable[[str], None]) -> None:
        self._original = original
        self._on_line = on_line
        self._before = set(threading.enumerate())
        self._partial: dict[int, str] = {}
        self._lock = threading.Lock()
        self.active = True

    def _captures(self) -> bool:
        return self.active and threading.current_thread() not in self._before

    def write(self, text: str) -> int:
        if not self._captures():
            return self._original.write(text) if self._original is not None else len(text)
        ident = threading.get_ident()
        with self._lock:
            *lines, rest = (self._partial.pop(ident, "") + text).split("\n")
            if rest:
                self._partial[ident] = rest
        for line in lines:
            self._on_line(line)
        return len(text)

    def flush(self) -> None:
        if self._original is not None:
            self._original.flush()

    def finish(self) -> None:
        """Hand on the unfinished lines and stop capturing."""
        with self._lock:
            rest, self._partial = list(self._partial.values()), {}
            self.active = False
        for line in rest:
            self._on_line(line)

    def new_threads(self) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in self._before]

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ... of the real stream
        return getattr(self._original, name)


@contextlib.contextmanager
def capture_thread_output(on_line: Callable[[str], None], grace: float = 2.0) -> Iterator[None]:
    """Within the block, lines printed to ``sys.stdout`` by threads started in it go to ``on_line``.

    The calling thread and every thread that existed before the block print as usual.
    When the block ends by an exception (Ctrl-C), its threads get up to ``grace``
    seconds to finish printing before ``sys.stdout`` is put back, so that a stopped
    run leaves no stray console lines behind. Blocks running at once in several
    threads of one process each capture the threads started after them, so their
    lines may mix (the progress of concurrent CmdStan fits in threads, not their draws).

    Parameters
    ----------
    on_line : callable
        Called with each line (without its newline), from the printing thread.
    grace : float
        Seconds to wait for the block's threads after an exception.
    """
    original = sys.stdout
    router = _ThreadRouter(original, on_line)
    sys.stdout = router  # type: ignore[assignment]
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        if failed:
            end = time.monotonic() + grace
            for thread in router.new_threads():
                thread.join(timeout=max(0.0, end - time.monotonic()))
        router.finish()
        if sys.stdout is router:  # else another block replaced it meanwhile: it puts back what it found
            while isinstance(original, _ThreadRouter) and not original.active:  # a finished block's router
                original = original._original
            sys.stdout = original


class CapturedText:
    """Text captured by :func:`capture_fd_output`, readable once the block has ended."""

    def __init__(self) -> None:
        self.text = ""

    def tail(self, lines: int = 40, chars: int = 4000) -> str:
        """The last ``lines`` lines (at most ``chars`` characters) of the captured text."""
        return "\n".join(self.text.rstrip().splitlines()[-lines:])[-chars:]


@contextlib.contextmanager
def capture_fd_output(fds: tuple[int, ...] = (1, 2)) -> Iterator[CapturedText]:
    """Send what is written to the file descriptors ``fds`` to a temporary file for the block.

    Catches the output of child processes (compilers) that write to the inherited
    descriptors, which no Python-level redirection sees. It holds for the whole
    process while the block runs: use it around a step that prints nothing the user
    needs (a build), and show :attr:`CapturedText.text` when the step fails. Where a
    descriptor cannot be duplicated (no real stdout/stderr), it is left alone.
    """
    captured = CapturedText()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved: dict[int, int] = {}
        try:
            for fd in fds:
                try:
                    saved[fd] = os.dup(fd)
                except OSError:
                    continue
                os.dup2(sink.fileno(), fd)
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


@contextlib.contextmanager
def quiet_loggers(names: tuple[str, ...], quiet: bool = True, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the level of the named loggers (e.g. PyMC's "Initializing NUTS" INFO lines) to ``level``
    for the block when ``quiet``; warnings and errors still get through. Levels are restored after."""
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        for logger, old in zip(loggers, before):
            logger.setLevel(old)
