"""Priors of the general model, written the way users write them, passed to Stan as data.

    priors = {"beta": "normal(0, 10)", "beta[floor]": "normal(0, 1)",
              "tau": "halfnormal(1)", "sigma": "exponential(1)", "Omega": "lkj(2)"}

* ``beta`` (every common coefficient) and ``beta[term]`` (one): ``normal(loc, scale)``.
* ``tau`` (every group-level sd), ``tau[term]``, and ``sigma``: ``halfnormal(scale)``,
  ``halfstudent_t(df, scale)`` (also ``half_t``), ``exponential(rate)`` or ``uniform(0, upper)``.
* ``Omega`` (correlation of ``|`` group terms): ``lkj(eta)``.

What is not given gets a data-scaled, weakly informative default in the spirit of
rstanarm's autoscaling (computed from the data's sums): with s_y the sd of y and s_k the sd
of column k, ``beta[k] ~ normal(0, 2.5 s_y / s_k)``, the intercept ``normal(mean(y), 2.5 s_y
sqrt(1 + sum_k (mean_k / s_k)^2))`` (wide enough for uncentred predictors),
``tau[k] ~ halfstudent_t(3, 2.5 s_y / s_k)`` (s_k of the Z column; 1 for the intercept),
``sigma ~ exponential(1 / s_y)`` and ``Omega ~ lkj(1)``. :meth:`GLMPriors.table` says which
came from where; fits record it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["Prior", "GLMPriors", "parse_prior", "resolve_glm_priors", "SCALE_FAMILY_CODES"]

#: Stan codes of the scale families (glm_functions.stan).
SCALE_FAMILY_CODES = {"uniform": 1, "halfnormal": 2, "halfstudent_t": 3, "exponential": 4}
_ALIASES = {
    "normal": "normal",
    "halfnormal": "halfnormal", "half_normal": "halfnormal", "half-normal": "halfnormal",
    "halfstudent_t": "halfstudent_t", "half_student_t": "halfstudent_t", "half_t": "halfstudent_t",
    "halft": "halfstudent_t", "half-t": "halfstudent_t", "half-student-t": "halfstudent_t",
    "exponential": "exponential", "exp": "exponential",
    "uniform": "uniform",
    "lkj": "lkj", "lkj_corr": "lkj",
}
_ARITY = {"normal": (2,), "halfnormal": (1, 2), "halfstudent_t": (2, 3), "exponential": (1,), "uniform": (2,),
          "lkj": (1,)}
_SYNTAX = {
    "normal": "normal(loc, scale)",
    "halfnormal": "halfnormal(scale)",
    "halfstudent_t": "halfstudent_t(df, scale)",
    "exponential": "exponential(rate)",
    "uniform": "uniform(0, upper)",
    "lkj": "lkj(eta)",
}
_KINDS = {"beta": ("normal",), "tau": ("halfnormal", "halfstudent_t", "exponential", "uniform"),
          "sigma": ("halfnormal", "halfstudent_t", "exponential", "uniform"), "Omega": ("lkj",)}


class PriorError(ValueError):
    """A prior that cannot be read or does not fit its parameter."""


@dataclasses.dataclass(frozen=True)
class Prior:
    """One prior distribution, with its parameters in a canonical form.

    ``normal``: (loc, scale); ``halfnormal``: (scale,); ``halfstudent_t``: (df, scale);
    ``exponential``: (rate,); ``uniform``: (upper,) (the lower end is 0); ``lkj``: (eta,).
    """

    family: str
    params: tuple[float, ...]

    def __str__(self) -> str:
        args = ", ".join(_num(v) for v in self.params)
        if self.family == "uniform":
            args = f"0, {args}"
        return f"{self.family}({args})"

    def stan_scale(self) -> tuple[int, float, float]:
        """(family code, a, b) of a scale prior for glm_scale_lpdf."""
        code = SCALE_FAMILY_CODES[self.family]
        if self.family == "halfstudent_t":
            df, scale = self.params
            return code, float(scale), float(df)
        return code, float(self.params[0]), 0.0


def _num(value: float) -> str:
    return f"{value:.4g}"


_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*\((.*)\)\s*$")


def parse_prior(text: str | Prior, what: str = "prior") -> Prior:
    """Parse ``"normal(0, 10)"``, ``"halfnormal(1)"``, ``"lkj(2)"``, ... into a :class:`Prior`.

    Raises
    ------
    PriorError
        Naming the text, what is wrong and the accepted forms.
    """
    if isinstance(text, Prior):
        return text
    forms = ", ".join(_SYNTAX.values())
    if not isinstance(text, str):
        raise PriorError(f"{what}={text!r} must be text such as 'normal(0, 10)'; accepted: {forms}")
    m = _CALL.match(text)
    if not m:
        raise PriorError(f"{what}={text!r} is not a distribution; write e.g. 'normal(0, 10)' ({forms})")
    name = m.group(1).lower()
    family = _ALIASES.get(name)
    if family is None:
        raise PriorError(f"{what}={text!r}: distribution {m.group(1)!r} is unknown; accepted: {forms}")
    try:
        values = [float(v) for v in m.group(2).split(",")] if m.group(2).strip() else []
    except ValueError:
        raise PriorError(f"{what}={text!r}: the parameters must be numbers, as in {_SYNTAX[family]}") from None
    if len(values) not in _ARITY[family]:
        raise PriorError(f"{what}={text!r}: write {_SYNTAX[family]}")
    if family == "halfnormal" and len(values) == 2:
        if values[0] != 0:
            raise PriorError(f"{what}={text!r}: a half-normal is centred at 0; write halfnormal(scale)")
        values = values[1:]
    if family == "halfstudent_t" and len(values) == 3:
        if values[1] != 0:
            raise PriorError(f"{what}={text!r}: a half-Student-t is centred at 0; write halfstudent_t(df, scale)")
        values = [values[0], values[2]]
    if family == "uniform":
        if values[0] != 0:
            raise PriorError(f"{what}={text!r}: a scale's uniform prior starts at 0; write uniform(0, upper)")
        values = values[1:]
    if not all(math.isfinite(v) for v in values):
        raise PriorError(f"{what}={text!r}: parameters must be finite numbers")
    positive = values[1:] if family == "normal" else values
    if any(v <= 0 for v in positive):
        raise PriorError(f"{what}={text!r}: {_SYNTAX[family]} needs positive {'scale' if family == 'normal' else 'parameters'}")
    return Prior(family, tuple(values))


@dataclasses.dataclass(frozen=True)
class GLMPriors:
    """The resolved priors of one design: one per coefficient, group-level sd, sigma and Omega.

    Attributes
    ----------
    beta : dict
        term -> normal Prior.
    tau : dict
        group term -> scale Prior.
    sigma : Prior
    omega : Prior
        lkj (used only for correlated terms with q >= 2).
    sources : dict
        Parameter name (``beta[x]``, ``tau[x]``, ``sigma``, ``Omega``) -> "given" or "default".
    """

    beta: Mapping[str, Prior]
    tau: Mapping[str, Prior]
    sigma: Prior
    omega: Prior
    sources: Mapping[str, str]

    def to_stan_data(self) -> dict[str, Any]:
        """The ``glm_priors_data.stan`` block."""
        beta = list(self.beta.values())
        taus = [t.stan_scale() for t in self.tau.values()]
        fam, a, b = self.sigma.stan_scale()
        return {
            "beta_loc": np.array([pr.params[0] for pr in beta], dtype=float),
            "beta_scale": np.array([pr.params[1] for pr in beta], dtype=float),
            "tau_family": np.array([t[0] for t in taus], dtype=np.int64),
            "tau_a": np.array([t[1] for t in taus], dtype=float),
            "tau_b": np.array([t[2] for t in taus], dtype=float),
            "sigma_family": fam,
            "sigma_a": a,
            "sigma_b": b,
            "lkj_eta": float(self.omega.params[0]),
        }

    def table(self, correlated: bool = True) -> pd.DataFrame:
        """One row per parameter: prior and whether it was given or the data-scaled default."""
        rows = [{"parameter": f"beta[{k}]", "prior": str(v), "source": self.sources[f"beta[{k}]"]}
                for k, v in self.beta.items()]
        rows += [{"parameter": f"tau[{k}]", "prior": str(v), "source": self.sources[f"tau[{k}]"]}
                 for k, v in self.tau.items()]
        rows.append({"parameter": "sigma", "prior": str(self.sigma), "source": self.sources["sigma"]})
        if correlated and len(self.tau) > 1:
            rows.append({"parameter": "Omega", "prior": str(self.omega), "source": self.sources["Omega"]})
        return pd.DataFrame(rows).set_index("parameter")

    def describe(self, correlated: bool = True) -> str:
        """One line per parameter, e.g. ``beta[x] ~ normal(0, 2.5)  (default, data-scaled)``."""
        lines = []
        for name, row in self.table(correlated).iterrows():
            note = "" if row["source"] == "given" else "  (default, data-scaled)"
            lines.append(f"{name} ~ {row['prior']}{note}")
        return "\n".join(lines)

    def to_attrs(self, correlated: bool = True) -> dict[str, str]:
        """Flat attributes for InferenceData: ``prior_beta[x] = normal(0, 2.5)`` ..."""
        return {f"prior_{name}": row["prior"] for name, row in self.table(correlated).iterrows()}


def default_priors(term_names: list[str], group_term_names: list[str], stats: Mapping[str, Any]) -> GLMPriors:
    """Data-scaled weakly informative priors (see the module docstring).

    Parameters
    ----------
    stats : mapping
        ``n``, ``y_mean``, ``y_sd``, ``x_mean`` (p), ``x_sd`` (p), ``z_sd`` (q): from the sums.
    """
    sy = float(stats["y_sd"]) if stats["y_sd"] > 0 else 1.0
    beta: dict[str, Prior] = {}
    xm, xs = np.asarray(stats["x_mean"], float), np.asarray(stats["x_sd"], float)
    shift = 0.0
    for k, name in enumerate(term_names):
        if name != "Intercept" and xs[k] > 0:
            shift += (xm[k] / xs[k]) ** 2
    for k, name in enumerate(term_names):
        if name == "Intercept":
            beta[name] = Prior("normal", (float(stats["y_mean"]), 2.5 * sy * math.sqrt(1.0 + shift)))
        else:
            scale = xs[k] if xs[k] > 0 else 1.0
            beta[name] = Prior("normal", (0.0, 2.5 * sy / scale))
    zs = np.asarray(stats["z_sd"], float)
    tau = {}
    for k, name in enumerate(group_term_names):
        scale = 1.0 if name == "Intercept" or not zs[k] > 0 else zs[k]
        tau[name] = Prior("halfstudent_t", (3.0, 2.5 * sy / scale))
    sources = {f"beta[{k}]": "default" for k in beta} | {f"tau[{k}]": "default" for k in tau}
    sources |= {"sigma": "default", "Omega": "default"}
    return GLMPriors(beta, tau, Prior("exponential", (1.0 / sy,)), Prior("lkj", (1.0,)), sources)


def resolve_glm_priors(priors: Any, term_names: list[str], group_term_names: list[str],
                       stats: Mapping[str, Any]) -> GLMPriors:
    """Defaults, overridden by what the user gave.

    Parameters
    ----------
    priors : None, mapping or GLMPriors
        ``{"beta": "normal(0, 10)", "beta[floor]": ..., "tau": ..., "tau[x]": ..., "sigma": ...,
        "Omega": "lkj(2)"}``; values are text or :class:`Prior`.
    term_names, group_term_names : list of str
        The design's X and Z column names.
    stats : mapping
        Data summaries for the defaults (:func:`default_priors`).

    Raises
    ------
    PriorError
        For an unknown key or term (listing the valid ones), unreadable text, or a
        family that does not fit the parameter (e.g. a normal prior for sigma).
    """
    if isinstance(priors, GLMPriors):
        return priors
    base = default_priors(term_names, group_term_names, stats)
    if priors is None:
        return base
    if isinstance(priors, str):
        raise PriorError(f"priors={priors!r}: for a formula give a mapping such as "
                         "{'beta': 'normal(0, 10)', 'sigma': 'exponential(1)'}; the presets "
                         "'notebook' and 'weakly_informative' belong to the notebook's model")
    if not isinstance(priors, Mapping):
        raise PriorError(f"priors={priors!r} is not understood; give a mapping such as {{'beta': 'normal(0, 10)'}}")
    beta, tau = dict(base.beta), dict(base.tau)
    sigma, omega = base.sigma, base.omega
    sources = dict(base.sources)
    valid = (["beta", "tau", "sigma", "Omega"] + [f"beta[{t}]" for t in term_names]
             + [f"tau[{t}]" for t in group_term_names])
    # whole-vector keys first, then per-term keys override them
    keys = sorted(priors, key=lambda k: ("[" in str(k), str(k)))
    for key in keys:
        value = priors[key]
        m = re.match(r"^(beta|tau)\[(.+)\]$", str(key))
        name, term = (m.group(1), m.group(2)) if m else (str(key), None)
        if name not in _KINDS:
            raise PriorError(f"prior key {key!r} is unknown; use one of {', '.join(valid)}")
        prior = parse_prior(value, what=f"priors[{key!r}]")
        if prior.family not in _KINDS[name]:
            allowed = ", ".join(_SYNTAX[f] for f in _KINDS[name])
            raise PriorError(f"priors[{key!r}] = {str(prior)!r}: {name} takes {allowed}")
        if name == "sigma":
            sigma = prior
            sources["sigma"] = "given"
            continue
        if name == "Omega":
            omega = prior
            sources["Omega"] = "given"
            continue
        names = term_names if name == "beta" else group_term_names
        if name == "tau" and not group_term_names:
            raise PriorError(f"prior key {key!r}: this formula has no group terms, so no tau")
        if term is not None and term not in names:
            raise PriorError(f"prior key {key!r}: {term!r} is not a {'common' if name == 'beta' else 'group'} term "
                             f"of this formula; its terms are {names}")
        for t in (names if term is None else [term]):
            (beta if name == "beta" else tau)[t] = prior
            sources[f"{name}[{t}]"] = "given"
    return GLMPriors(beta, tau, sigma, omega, sources)
