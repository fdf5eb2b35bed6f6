"""The one small interface every Stan engine implements."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Protocol

import numpy as np

from .controls import NutsControls


class EngineError(RuntimeError):
    """A Stan engine could not do what was asked; the message says which engine and what to do."""


class ChainError(EngineError):
    """A chain failed (e.g. could not initialise); names the engine, chain and Stan's message."""

    def __init__(self, engine: str, chain: int, message: str):
        self.engine, self.chain = engine, chain
        super().__init__(f"{engine}: chain {chain} failed: {message}")


@dataclasses.dataclass
class RawDraws:
    """Draws as an engine returns them, before conversion to InferenceData.

    Attributes
    ----------
    variables : dict
        Stan variable name -> array (chain, draw, *shape).
    sample_stats : dict
        Stan sampler column (``lp__``, ``divergent__``, ...) -> array (chain, draw).
    info : dict
        engine, versions, timings: ``compile_seconds``, ``warmup_seconds`` and
        ``sampling_seconds`` (slowest chain), ``sampling_chain_seconds`` (summed
        over chains: the sampling work, what ESS per second divides by), ``wall_seconds``.
    adaptation : dict
        What NUTS warm-up adapted, when the engine reports it: ``step_size``
        (chain,) and ``inv_metric`` (chain, dim) for the diagonal metric or
        (chain, dim, dim) for the dense one, on the unconstrained scale.
    """

    variables: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    info: dict[str, Any]
    adaptation: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


class Engine(Protocol):
    """A way of running Stan programs (CmdStan through cmdstanpy, or PyStan 3)."""

    name: str

    def compile(self, program: str) -> float:
        """Compile (or find in the cache) program ``program``; return seconds spent."""
        ...

    def sample(
        self,
        program: str,
        data: Mapping[str, Any],
        *,
        chains: int,
        draws: int,
        warmup: int,
        seed: int,
        thin: int = 1,
        show_progress: bool = True,
        controls: NutsControls | None = None,
    ) -> RawDraws:
        """Run adaptive NUTS with ``controls`` (default: Stan's) and return the kept draws.

        Raises
        ------
        ChainError
            When a chain fails, naming it and Stan's reason.
        EngineError
            When the engine cannot run a control (PyStan: ``metric="dense"``).
        """
        ...

    def fixed_param(
        self,
        program: str,
        data: Mapping[str, Any],
        *,
        chains: int,
        draws: int,
        seed: int,
        show_progress: bool = True,
    ) -> RawDraws:
        """Run the fixed_param sampler (generated quantities only)."""
        ...

    def log_density(
        self, program: str, data: Mapping[str, Any], params: Mapping[str, Any], jacobian: bool = True
    ) -> float:
        """Log density (Stan's ``lp__``) at constrained parameter values ``params``."""
        ...

    def versions(self) -> dict[str, str]:
        """Versions of the engine and of Stan."""
        ...


def split_columns(
    names: list[str], values: np.ndarray, dims: Mapping[str, tuple[int, ...]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split flat Stan columns into variables and sampler stats.

    Parameters
    ----------
    names : list of str
        Column names in Stan's order: sampler columns end in ``__``; a vector ``b``
        appears as ``b.1``/``b[1]`` ... in column-major order.
    values : numpy.ndarray
        (chain, draw, column).
    dims : mapping
        Variable name -> shape, in Stan's declaration order.
    """
    stats = {n: values[:, :, i] for i, n in enumerate(names) if n.endswith("__")}
    first = next(i for i, n in enumerate(names) if not n.endswith("__")) if len(stats) < len(names) else len(names)
    variables: dict[str, np.ndarray] = {}
    col = first
    chains, draws = values.shape[:2]
    for name, shape in dims.items():
        size = int(np.prod(shape)) if shape else 1
        block = values[:, :, col : col + size]
        if shape:
            # Stan flattens arrays column-major: reverse the shape, then the axes.
            arr = block.reshape((chains, draws) + tuple(reversed(shape)))
            variables[name] = arr.transpose((0, 1) + tuple(range(len(shape) + 1, 1, -1)))
        else:
            variables[name] = block[:, :, 0]
        col += size
    return variables, stats


INIT_ADVICE = (
    "Stan found no starting point with a finite log density. Check the data for extreme values "
    "(rescale x and y) and that the priors allow them, or give starting values: "
    "hs.fit(..., inits={'a': ..., 'mu_b': ..., 'sigma_b': ..., 'eps': ...}) / hierlin fit ... --inits FILE.json"
)
_BLOCK_HEADS = ("Rejecting initial value", "Informational Message", "Exception")
_FINAL = re.compile(r"^\s*(Initialization (between|failed|partially)|Unrecoverable error|Error|"
                    r"Exception|Stan can't|Try specifying|.*(must be|is not|is nan|is inf))", re.I)


def stan_failure_reason(console: str) -> str:
    """Stan's reason for a failed chain, from its console output, in one line.

    Keeps what explains the failure and drops the rest (the configuration echo,
    progress lines, the same rejection repeated 100 times): each distinct reason
    once, in order, then the closing lines (e.g. "Initialization failed."). For an
    initialisation failure, adds :data:`INIT_ADVICE`.

    Parameters
    ----------
    console : str
        What the chain printed (CmdStan's stdout, httpstan's error and logger messages).
    """
    lines = [line.rstrip() for line in console.splitlines()]
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith(_BLOCK_HEADS):
            block = [line]
            i += 1
            while i < len(lines) and lines[i][:1] in (" ", "\t") and lines[i].strip():
                block.append(lines[i].strip())
                i += 1
            text = " ".join(block)
            if text.rstrip(":") != line.rstrip(":") or line.startswith("Exception"):
                kept.append(text)
            continue
        if line and _FINAL.match(line):
            kept.append(line)
        i += 1
    unique = list(dict.fromkeys(kept))
    reason = " ".join(unique) if unique else " ".join(" ".join(lines[-8:]).split())
    if "initializ" in reason.lower() or "initial value" in reason.lower():
        reason += " -- " + INIT_ADVICE
    return reason[:3000]
