"""Prior sets for a, mu_b, sigma_b and eps, passed to Stan as data."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping, Union

SCALE_FAMILIES = {"uniform": 1, "halfnormal": 2}


@dataclasses.dataclass(frozen=True)
class Priors:
    """Priors of the hierarchical linear regression.

    ``a ~ normal(a_loc, a_scale)``, ``mu_b ~ normal(mu_b_loc, mu_b_scale)``;
    ``sigma_b`` and ``eps`` each ``uniform(0, scale)`` or ``halfnormal(0, scale)``.

    Parameters
    ----------
    a_loc, a_scale : float
        Normal prior of the intercept.
    mu_b_loc, mu_b_scale : float
        Normal prior of the mean slope.
    sigma_b_family, eps_family : {"uniform", "halfnormal"}
        Family of the scale priors.
    sigma_b_scale, eps_scale : float
        Upper end (uniform) or scale (half-normal).
    """

    a_loc: float = 0.0
    a_scale: float = 100.0**2
    mu_b_loc: float = 0.0
    mu_b_scale: float = 100.0**2
    sigma_b_family: str = "uniform"
    sigma_b_scale: float = 100.0
    eps_family: str = "uniform"
    eps_scale: float = 10.0

    def __post_init__(self) -> None:
        for name in ("a_loc", "mu_b_loc"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value):
                raise ValueError(f"prior {name}={value!r} must be a finite number")
        for name in ("a_scale", "mu_b_scale", "sigma_b_scale", "eps_scale"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value) or value <= 0:
                hint = "the upper end of a uniform(0, upper) prior must be > 0" if (
                    name in ("sigma_b_scale", "eps_scale")
                    and getattr(self, name.replace("scale", "family")) == "uniform"
                ) else "prior scales must be positive and finite"
                raise ValueError(f"prior {name}={value!r} is invalid: {hint}")
        for name in ("sigma_b_family", "eps_family"):
            value = getattr(self, name)
            if value not in SCALE_FAMILIES:
                raise ValueError(
                    f"prior {name}={value!r} is unknown; use one of {sorted(SCALE_FAMILIES)}"
                )

    @classmethod
    def notebook(cls) -> "Priors":
        """The notebook's diffuse priors: a, mu_b ~ N(0, 1e4); sigma_b ~ U(0, 100); eps ~ U(0, 10)."""
        return cls()

    @classmethod
    def weakly_informative(cls) -> "Priors":
        """Weakly informative priors on the scale of x in [0, 10] and slopes near 1.

        a ~ N(0, 10), mu_b ~ N(0, 5), sigma_b ~ half-normal(0, 2.5),
        eps ~ half-normal(0, 2.5). Proper and moderate: suited to SBC.
        """
        return cls(0.0, 10.0, 0.0, 5.0, "halfnormal", 2.5, "halfnormal", 2.5)

    def to_stan_data(self) -> dict[str, Any]:
        """Return the prior block of the Stan programs' data."""
        return {
            "a_loc": float(self.a_loc),
            "a_scale": float(self.a_scale),
            "mu_b_loc": float(self.mu_b_loc),
            "mu_b_scale": float(self.mu_b_scale),
            "sigma_b_family": SCALE_FAMILIES[self.sigma_b_family],
            "sigma_b_scale": float(self.sigma_b_scale),
            "eps_family": SCALE_FAMILIES[self.eps_family],
            "eps_scale": float(self.eps_scale),
        }

    def describe(self) -> str:
        """One line a person can read, e.g. for reports."""

        def scale(family: str, s: float) -> str:
            return f"U(0, {s:g})" if family == "uniform" else f"half-normal(0, {s:g})"

        return (
            f"a ~ N({self.a_loc:g}, {self.a_scale:g}), mu_b ~ N({self.mu_b_loc:g}, {self.mu_b_scale:g}), "
            f"sigma_b ~ {scale(self.sigma_b_family, self.sigma_b_scale)}, "
            f"eps ~ {scale(self.eps_family, self.eps_scale)}"
        )


PRESETS = {"notebook": Priors.notebook, "weakly_informative": Priors.weakly_informative}

PriorsLike = Union[None, str, Priors, Mapping[str, Any]]


def resolve_priors(priors: PriorsLike) -> Priors:
    """Turn ``None``, a preset name, a mapping or a :class:`Priors` into :class:`Priors`.

    ``None`` gives the notebook's priors. A mapping overrides fields of the
    notebook's priors, e.g. ``{"eps_scale": 5}``.
    """
    if priors is None:
        return Priors.notebook()
    if isinstance(priors, Priors):
        return priors
    if isinstance(priors, str):
        if priors not in PRESETS:
            raise ValueError(f"priors={priors!r} is not a preset; use one of {sorted(PRESETS)} or a Priors object")
        return PRESETS[priors]()
    if isinstance(priors, Mapping):
        fields = {f.name for f in dataclasses.fields(Priors)}
        unknown = sorted(set(priors) - fields)
        if unknown:
            raise ValueError(f"unknown prior field(s) {unknown}; valid fields are {sorted(fields)}")
        return dataclasses.replace(Priors.notebook(), **dict(priors))
    raise ValueError(f"priors={priors!r} is not understood; pass None, a preset name, a mapping or a Priors")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
