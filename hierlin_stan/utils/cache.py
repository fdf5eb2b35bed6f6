"""Where compiled models live, and a cross-process lock to build them once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

CACHE_ENV = "HIERLIN_STAN_CACHE"


def cache_root() -> Path:
    """Return the package's cache folder.

    ``$HIERLIN_STAN_CACHE`` if set, else ``$XDG_CACHE_HOME/hierlin_stan``, else
    ``~/.cache/hierlin_stan``.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hierlin_stan"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block.

    Several processes compiling the same program serialise here: the first
    compiles, the others wait and then find the finished build.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run the block with ``path`` as the current directory (for tools that litter it)."""
    old = os.getcwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
