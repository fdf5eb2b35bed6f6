"""How many points each group holds, from the ``n`` and ``groups`` arguments users give simulators."""

from __future__ import annotations

import numbers
from typing import Sequence

__all__ = ["group_sizes"]


def group_sizes(n: int | None, groups: int | Sequence[int] | None) -> list[int]:
    """Group sizes from ``n`` and ``groups``: None (one point per group), a number J (equal groups) or sizes."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2):
        raise ValueError(f"n={n!r} must be an integer >= 2")
    if groups is None:
        return [1] * (100 if n is None else int(n))
    if isinstance(groups, numbers.Integral) and not isinstance(groups, bool):
        total = 100 if n is None else int(n)
        if not 1 <= groups <= total:
            raise ValueError(f"groups={groups} must be between 1 and n={total}")
        base, extra = divmod(total, int(groups))
        return [base + (1 if k < extra else 0) for k in range(int(groups))]
    sizes = list(groups)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
        raise ValueError(f"groups={groups!r} must be a positive integer J or a non-empty list of positive group sizes")
    if n is not None and sum(sizes) != n:
        raise ValueError(f"group sizes add up to {sum(sizes)} but n={n}; drop n or make them agree")
    if sum(sizes) < 2:
        raise ValueError("the groups hold fewer than two points in all; give at least two")
    return [int(s) for s in sizes]
