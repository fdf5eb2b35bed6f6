"""Atomic file output: a result is either complete on disk or absent."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

# Read once, at import: os.umask can only be read by setting it, which would
# briefly change it for every thread of the process.
_UMASK = os.umask(0)
os.umask(_UMASK)


def umask_mode(folder: bool = False) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the user's umask.

    ``tempfile.mkstemp``/``mkdtemp`` create private (0600/0700) entries; results
    renamed into place from them get these modes instead, as users expect.
    """
    return (0o777 if folder else 0o666) & ~_UMASK


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same folder (so the rename is atomic) and is
    removed if the block raises, so no half-written file is ever left under the
    final name.

    Parameters
    ----------
    path : path-like
        The final file name.

    Yields
    ------
    pathlib.Path
        Where to write.
    """
    final = Path(path)
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"cannot write {final}: {parent} is a file, not a folder")
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, umask_mode())
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
