"""Progress bars that work in a terminal, in Jupyter and in logs."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_bar(total: int, desc: str, enabled: bool = True) -> Any:
    """Return a tqdm bar (the widget in Jupyter), or None when disabled.

    Shown in a terminal or a Jupyter kernel; not in logs and pipes (CI), where
    a bar only adds noise, unless ``HIERLIN_PROGRESS=1``.
    """
    if not enabled:
        return None
    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not (interactive or "ipykernel" in sys.modules or os.environ.get("HIERLIN_PROGRESS") == "1"):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="it", leave=False, mininterval=0.1)
