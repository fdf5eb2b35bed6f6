"""Stan engines: CmdStan (cmdstanpy) and PyStan 3, behind one interface."""

from __future__ import annotations

from typing import Any

from . import cmdstan_engine
from . import pystan_engine
from .base import ChainError, Engine, EngineError, RawDraws
from ..utils.progress import say

ENGINES = ("auto", "cmdstan", "pystan")
_INSTANCES: dict[str, Any] = {}
_ANNOUNCED: set[str] = set()


def get_engine(engine: str = "auto", verbose: bool = True) -> Engine:
    """Return the engine called ``engine``.

    ``"auto"`` picks CmdStan when cmdstanpy finds an installation, else PyStan,
    and (with ``verbose``) prints which and why.

    Raises
    ------
    ValueError
        For an unknown engine name.
    EngineError
        When the chosen engine (or, for auto, every engine) is unusable.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is unknown; use one of {list(ENGINES)}")
    if engine == "auto":
        ok, why = cmdstan_engine.available()
        if ok:
            chosen, reason = "cmdstan", why
        else:
            ok_py, why_py = pystan_engine.available()
            if not ok_py:
                raise EngineError(
                    f"no Stan engine is usable: {why}; {why_py}. Install CmdStan "
                    "(`hierlin install-cmdstan`) or PyStan (`pip install pystan`)."
                )
            chosen, reason = "pystan", "no CmdStan found by cmdstanpy; `hierlin install-cmdstan` installs it"
        if verbose and chosen not in _ANNOUNCED:
            say(f"hierlin_stan: engine=auto -> {chosen} ({reason})")
            _ANNOUNCED.add(chosen)
        engine = chosen
    if engine not in _INSTANCES:
        _INSTANCES[engine] = (cmdstan_engine.CmdStanEngine if engine == "cmdstan" else pystan_engine.PyStanEngine)()
    return _INSTANCES[engine]


__all__ = ["ENGINES", "ChainError", "Engine", "EngineError", "RawDraws", "get_engine"]
