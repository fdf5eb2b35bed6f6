"""Progress bars that work in a terminal, in Jupyter and in logs."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, desc: str, enabled: bool = True) -> Any:
    """Return a tqdm bar (auto-selecting the notebook widget), or None when disabled.

    In a non-interactive stream (CI logs) the bar updates at most every 5 s so
    logs stay short.
    """
    if not enabled:
        return None
    from tqdm.auto import tqdm

    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="it", leave=False, mininterval=0.1 if interactive else 5.0)
