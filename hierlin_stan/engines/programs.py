"""The Stan programs: where they live, their flattened source and its hash."""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

PARAMETERIZATIONS = ("centered", "noncentered", "marginal")
#: Programs of the general model (formulas): one per parameterization, and the simulator.
GLM_PARAMETERIZATIONS = ("centered", "noncentered", "marginal", "collapsed")
GLM_PROGRAMS = tuple(f"glm_{name}" for name in GLM_PARAMETERIZATIONS) + ("glm_simulate",)
PROGRAMS = PARAMETERIZATIONS + ("simulate",) + GLM_PROGRAMS
_INCLUDE = re.compile(r"^\s*#include\s+<?\"?([\w./-]+?)\"?>?\s*$")


def stan_dir() -> Path:
    """Folder of the ``.stan`` files: inside the installed wheel, else the source checkout."""
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "stan", package.parent / "stan")  # installed wheel, source checkout
    for candidate in candidates:
        if (candidate / "centered.stan").is_file():
            return candidate
    raise FileNotFoundError(
        f"the Stan programs are missing (looked in {candidates[0]} and {candidates[1]}); reinstall hierlin_stan"
    )


def check_parameterization(parameterization: str) -> str:
    """Return ``parameterization`` if known, else raise a ValueError listing the choices."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization={parameterization!r} is unknown; use one of {list(PARAMETERIZATIONS)}"
        )
    return parameterization


@functools.lru_cache(maxsize=None)
def program_source(name: str) -> str:
    """Return program ``name`` with its ``#include`` lines expanded.

    Both engines compile this flattened text, so its hash identifies the model.
    """
    if name not in PROGRAMS:
        raise ValueError(f"Stan program {name!r} is unknown; use one of {list(PROGRAMS)}")
    return _flatten(stan_dir() / f"{name}.stan", depth=0)


def program_hash(source: str) -> str:
    """Short content hash of a Stan source (the compile-cache key, with the toolchain)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def _flatten(path: Path, depth: int) -> str:
    if depth > 8:
        raise RuntimeError(f"#include nesting too deep at {path}")
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _INCLUDE.match(line)
        if match:
            lines.append(_flatten(path.parent / match.group(1), depth + 1).rstrip("\n"))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"
