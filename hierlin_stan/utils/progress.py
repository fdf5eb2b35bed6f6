"""One progress display per long step: in a terminal, in a Jupyter notebook, or nowhere.

Where the display goes is decided when it is made (:func:`display_mode`):

* ``"widget"``: inside a Jupyter kernel with ipywidgets importable: tqdm's widget bar
  (a progress bar and a line of text), kept when the step ends, red if it stopped short.
* ``"line"``: inside a Jupyter kernel without ipywidgets: one plain line of text,
  updated in place through an IPython display handle (no ANSI codes, no carriage
  returns, no "IProgress not found" warning).
* ``"terminal"``: stderr is a terminal, or ``HIERLIN_PROGRESS=1``: tqdm's text bar on
  stderr, erased when the step ends.
* ``None``: pipes, CI logs, and processes forked from a kernel (pool workers): nothing.

A display counts time from its creation, so make it when the step starts: its rate
is then units (iterations, simulations) per second of that step. Updates may come
from any thread.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Any

__all__ = ["Progress", "display_mode", "in_notebook", "progress_bar", "say"]


def in_notebook() -> bool:
    """Whether this is the process of a Jupyter kernel (IPython's ZMQ shell), not a child of it."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a half-initialised IPython is no notebook
        return False
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    import multiprocessing

    # a process forked from the kernel shares its sockets: it must never display anything
    return multiprocessing.parent_process() is None


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a broken install: use the plain line
        return False
    return True


def display_mode() -> str | None:
    """Where a progress display made now would go: ``"widget"``, ``"line"``, ``"terminal"`` or None."""
    if in_notebook():
        return "widget" if _widgets_available() else "line"
    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if interactive or os.environ.get("HIERLIN_PROGRESS") == "1":
        return "terminal"
    return None


def say(text: str) -> None:
    """Show one status line where the user looks: stdout in a notebook (stderr is shown as an error), else stderr."""
    print(text, file=sys.stdout if in_notebook() else sys.stderr, flush=True)


class Progress:
    """A progress display: ``update(n)`` adds, ``set(n)`` moves to ``n``, ``close()`` ends it.

    Attributes
    ----------
    total : int
        Units the step takes.
    desc : str
        What the step is (shown before the bar).
    unit : str
        Name of a unit ("it", "sim").
    n : int
        Units done.
    """

    def __init__(self, total: int, desc: str, unit: str = "it") -> None:
        self.total = int(total)
        self.desc = desc
        self._unit = unit
        self.n = 0
        self.start = time.perf_counter()
        self.closed = False
        self._lock = threading.RLock()

    @property
    def unit(self) -> str:
        """Name of a unit, e.g. ``"it"`` or ``"sim"``."""
        return self._unit

    @unit.setter
    def unit(self, value: str) -> None:
        self._unit = value

    def update(self, n: int = 1) -> None:
        """Add ``n`` units done."""
        with self._lock:
            if self.closed or n <= 0:
                return
            self.n += int(n)
            self._show()

    def set(self, n: int) -> None:
        """Move to ``n`` units done (never backwards)."""
        with self._lock:
            if n > self.n:
                self.update(int(n) - self.n)

    def rate(self) -> float:
        """Units per second since the display was made (NaN before any time has passed)."""
        elapsed = time.perf_counter() - self.start
        return self.n / elapsed if elapsed > 0 else float("nan")

    def close(self) -> None:
        """End the display (idempotent)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._finish()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # what a display does
    def _show(self) -> None:
        pass

    def _finish(self) -> None:
        pass


class _TqdmProgress(Progress):
    """tqdm's bar: text on stderr in a terminal, the widget in a notebook."""

    def __init__(self, total: int, desc: str, unit: str, widget: bool) -> None:
        super().__init__(total, desc, unit)
        if widget:
            from tqdm.notebook import tqdm as bar_class

            self._bar = bar_class(total=total, desc=desc, unit=unit, leave=True, mininterval=0.1)
        else:
            from tqdm.std import tqdm as bar_class

            self._bar = bar_class(total=total, desc=desc, unit=unit, leave=False, mininterval=0.1,
                                  file=sys.stderr, dynamic_ncols=True)

    @property
    def unit(self) -> str:  # noqa: D102 - as Progress.unit
        return self._unit

    @unit.setter
    def unit(self, value: str) -> None:
        self._unit = value
        self._bar.unit = value

    def update(self, n: int = 1) -> None:  # noqa: D102 - as Progress.update
        with self._lock:
            if self.closed or n <= 0:
                return
            self.n += int(n)
            self._bar.update(int(n))

    def _finish(self) -> None:
        self._bar.close()


class _LineProgress(Progress):
    """One plain text line in a notebook, updated in place (a display handle), at most every 0.25 s."""

    interval = 0.25

    def __init__(self, total: int, desc: str, unit: str) -> None:
        super().__init__(total, desc, unit)
        from IPython.display import display

        self._shown = 0.0
        self._handle = display({"text/plain": self.text()}, raw=True, display_id=True)

    def text(self) -> str:
        """The line as it reads now, e.g. ``marginal (4 chains): 45% 3600/8000 it [1.1 s, 3273 it/s]``."""
        elapsed = time.perf_counter() - self.start
        rate = self.rate()
        speed = f"{rate:,.0f} {self.unit}/s" if math.isfinite(rate) and rate >= 10 else (
            f"{rate:.3g} {self.unit}/s" if math.isfinite(rate) and rate > 0 else f"? {self.unit}/s")
        percent = f"{100 * self.n / self.total:3.0f}%" if self.total > 0 else ""
        if self.closed:
            state = "done" if self.n >= self.total else "stopped"
            return f"{self.desc}: {percent} {self.n}/{self.total} {self.unit}, {state} in {elapsed:.1f} s ({speed})"
        left = ""
        if math.isfinite(rate) and rate > 0 and self.total > self.n:
            left = f", ~{(self.total - self.n) / rate:.0f} s left"
        return f"{self.desc}: {percent} {self.n}/{self.total} {self.unit} [{elapsed:.1f} s, {speed}{left}]"

    def _show(self) -> None:
        now = time.perf_counter()
        if now - self._shown >= self.interval:
            self._shown = now
            self._handle.update({"text/plain": self.text()}, raw=True)

    def _finish(self) -> None:
        self._handle.update({"text/plain": self.text()}, raw=True)


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "it") -> Progress | None:
    """Make the progress display of one long step, or return None when there is nowhere to show it.

    Parameters
    ----------
    total : int
        Units the step takes (e.g. iterations over all chains).
    desc : str
        What the step is, shown before the bar.
    enabled : bool
        False (``show_progress=False``, ``--quiet``) returns None.
    unit : str
        Name of a unit, for the rate ("it/s", "sim/s").

    Returns
    -------
    Progress or None
        See :func:`display_mode` for where it shows; None when disabled or nowhere.
    """
    if not enabled:
        return None
    mode = display_mode()
    if mode is None:
        return None
    if mode == "widget":
        try:
            return _TqdmProgress(total, desc, unit, widget=True)
        except Exception:  # noqa: BLE001 - a widget that cannot be made: the plain line still works
            mode = "line"
    if mode == "line":
        return _LineProgress(total, desc, unit)
    return _TqdmProgress(total, desc, unit, widget=False)
