"""The Stan programs: where they live, their flattened source and its hash.

The marginal and collapsed programs (the notebook model's and the formulas') have a
**fused twin** for CmdStan (:data:`FUSED_TWINS`): the same data, parameters, outputs and
density, with the likelihood's value and gradient computed in C++ by the user header
``hierlin_fused.hpp`` (a pass or two over the group sums instead of one autodiff node per
element and operation); the formula twins vectorise one or two group terms and go group by
group for any other number.
PyStan (httpstan) cannot compile user headers and runs the pure programs.
:func:`program_hash` of a fused program covers the header too:
cmdstanpy does not rebuild a model when only its header changed.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

PARAMETERIZATIONS = ("collapsed", "marginal", "centered", "noncentered")
#: Programs of the general model (formulas): one per parameterization, and the simulator.
GLM_PARAMETERIZATIONS = ("centered", "noncentered", "marginal", "collapsed")
GLM_PROGRAMS = tuple(f"glm_{name}" for name in GLM_PARAMETERIZATIONS) + ("glm_simulate",)
#: Pure program -> its fused twin (CmdStan only: C++ value and gradient from :data:`FUSED_HEADER`).
FUSED_TWINS = {"marginal": "marginal_fused", "collapsed": "collapsed_fused",
               "glm_marginal": "glm_marginal_fused", "glm_collapsed": "glm_collapsed_fused"}
#: The user C++ header of the fused programs (in the ``stan`` folder, shipped in the wheel).
FUSED_HEADER = "hierlin_fused.hpp"
PROGRAMS = PARAMETERIZATIONS + ("simulate",) + GLM_PROGRAMS + tuple(FUSED_TWINS.values())
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


def is_fused(program: str) -> bool:
    """Whether ``program`` needs the C++ header (a fused twin)."""
    return program in FUSED_TWINS.values()


def user_header(program: str) -> Path | None:
    """Path of the C++ header ``program`` is compiled with, or None for a pure Stan program."""
    return stan_dir() / FUSED_HEADER if is_fused(program) else None


@functools.lru_cache(maxsize=None)
def header_hash() -> str:
    """Short content hash of the fused programs' C++ header."""
    return program_hash((stan_dir() / FUSED_HEADER).read_text(encoding="utf-8"))


def program_key(program: str) -> str:
    """Compile-cache key of ``program``: the hash of its flattened source, and of its header if fused."""
    source = program_source(program)
    if is_fused(program):
        source += "\n// header " + header_hash()
    return program_hash(source)


def select_program(base: str, engine: str, fused: bool | None = None) -> tuple[str, str]:
    """The program to run for ``base`` (e.g. ``"collapsed"``) on ``engine``, and its variant.

    Parameters
    ----------
    base : str
        A pure program name.
    engine : {"cmdstan", "pystan"}
        The engine that will run it (after ``engine="auto"`` was resolved).
    fused : bool, optional
        None: the fused twin where there is one and the engine is CmdStan, else the pure
        program. False: the pure program. True: the fused twin (an error where there is
        none or on PyStan).

    Returns
    -------
    (program, variant)
        ``variant`` is ``"fused"`` or ``"pure"``.

    Raises
    ------
    ValueError
        ``fused=True`` where it cannot run, naming why and the alternative.
    """
    twin = FUSED_TWINS.get(base)
    if fused is None:
        fused = twin is not None and engine == "cmdstan"
    elif not isinstance(fused, bool):
        raise ValueError(f"fused={fused!r} must be True, False or None (None: fused on CmdStan where available)")
    if not fused:
        return base, "pure"
    if twin is None:
        have = sorted(b.replace("glm_", "formula ") for b in FUSED_TWINS)
        raise ValueError(f"fused=True: the {base} program has no fused C++ twin (those that do: {have}); "
                         "use fused=None or False")
    if engine != "cmdstan":
        raise ValueError(f"fused=True needs the CmdStan engine (the fused programs compile a C++ header, which "
                         f"{engine} cannot); use engine='cmdstan' or fused=None/False")
    return twin, "fused"


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
