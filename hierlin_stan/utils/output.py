"""Output folders that appear complete or not at all.

Everything is written into a hidden sibling folder that is renamed into place at
the end, so an interrupted run leaves no folder that looks complete, and an
existing folder is replaced only when asked. Workflows call :func:`check_output`
before long work, so a refused folder costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .files import umask_mode

__all__ = ["OutputExistsError", "check_output", "staged_output"]


class OutputExistsError(FileExistsError):
    """The output folder exists and overwriting was not asked for."""


def check_output(out: str | Path, force: bool = False) -> Path:
    """Raise now if :func:`staged_output` would refuse ``out`` (call it before long work).

    Raises
    ------
    OutputExistsError
        ``out`` exists, is not empty, and ``force`` is False.
    NotADirectoryError
        ``out`` is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} is a file; give a folder path (--out DIR)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"output folder {out} exists and is not empty; pass --force (force=True) to replace it")
    return out


@contextlib.contextmanager
def staged_output(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a scratch folder that replaces ``out`` when the block succeeds.

    Raises
    ------
    OutputExistsError
        ``out`` exists, is not empty, and ``force`` is False.
    NotADirectoryError
        ``out`` is a file.
    """
    out = check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    os.chmod(scratch, umask_mode(folder=True))
    try:
        yield scratch
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            scratch.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            scratch.rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
