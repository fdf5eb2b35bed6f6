"""Seed validation and drawing: every run records the seed that reproduces it."""

from __future__ import annotations

import numpy as np

MAX_SEED = 2**31 - 1  # accepted by CmdStan, httpstan and numpy alike


def resolve_seed(seed: int | None) -> int:
    """Return ``seed`` checked, or a fresh random seed when ``seed`` is None.

    Raises
    ------
    ValueError
        If the seed is not an integer in [0, 2**31 - 1].
    """
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0] % MAX_SEED)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed={seed!r} is not an integer; pass an integer in [0, {MAX_SEED}] or None")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed={seed} is out of range; pass an integer in [0, {MAX_SEED}] or None")
    return int(seed)
