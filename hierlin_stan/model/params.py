"""Names of the parameters a fit writes, for the two kinds of model.

* the notebook's model: ``a``, ``mu_b``, ``sigma_b``, ``eps`` (and the slopes ``b``);
* a formula (the general model): ``beta`` (term), ``tau`` (group_term), ``sigma``,
  ``Omega`` (group_term, group_term_2) for correlated terms, ``u`` and ``coef``
  (group, group_term).

Diagnostics, recovery, plots and calibration read the names from here (or from the
InferenceData), never typed out.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

__all__ = ["NOTEBOOK_KEYS", "GLM_KEYS", "is_general", "key_variables", "scalar_names", "pretty"]

#: The notebook's hyperparameters, in display order.
NOTEBOOK_KEYS: tuple[str, ...] = ("a", "mu_b", "sigma_b", "eps")
#: The general model's population-level parameters, in display order.
GLM_KEYS: tuple[str, ...] = ("beta", "tau", "sigma", "Omega")


def is_general(names: Iterable[str]) -> bool:
    """Whether posterior variable ``names`` are the general model's (``beta`` present)."""
    return "beta" in set(names)


def key_variables(idata: Any) -> list[str]:
    """The population-level variables of a fit: NOTEBOOK_KEYS or GLM_KEYS, as present."""
    names = list(idata.posterior.data_vars)
    keys = GLM_KEYS if is_general(names) else NOTEBOOK_KEYS
    return [k for k in keys if k in names]


def scalar_names(idata: Any, var_names: Iterable[str] | None = None) -> list[tuple[str, str, dict]]:
    """Every scalar of the key variables: (display name, variable, selection).

    ``beta[floor]`` -> ("beta[floor]", "beta", {"term": "floor"}); the diagonal and the
    upper triangle of ``Omega`` are left out (constant 1, and mirror images).
    """
    post = idata.posterior
    out: list[tuple[str, str, dict]] = []
    for var in (key_variables(idata) if var_names is None else list(var_names)):
        da = post[var]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            out.append((var, var, {}))
            continue
        if var == "Omega" and len(extra) == 2:
            rows, cols = (list(np.asarray(da[d].values)) for d in extra)
            for i, r in enumerate(rows):
                for c in cols[:i]:
                    out.append((f"Omega[{r}, {c}]", var, {extra[0]: r, extra[1]: c}))
            continue
        dim = extra[0]
        for label in np.asarray(da[dim].values):
            out.append((f"{var}[{label}]", var, {dim: label}))
    return out


_PRETTY = {"a": r"$a$", "mu_b": r"$\mu_b$", "sigma_b": r"$\sigma_b$", "eps": r"$\epsilon$", "sigma": r"$\sigma$"}


def pretty(name: str) -> str:
    """A label for plots: Greek letters for the notebook's names, ``β[x]``-style for the general ones."""
    if name in _PRETTY:
        return _PRETTY[name]
    for var, sym in (("beta", "β"), ("tau", "τ"), ("Omega", "Ω"), ("coef", "coef"), ("u", "u")):
        if name.startswith(var + "["):
            return sym + name[len(var):]
    return name


def scalar_draws(idata: Any, display: str) -> np.ndarray:
    """All draws (chains concatenated) of one scalar by display name: ``a``, ``beta[x]``, ``Omega[x, Intercept]``."""
    post = idata.posterior
    if display in post.data_vars and not [d for d in post[display].dims if d not in ("chain", "draw")]:
        return np.asarray(post[display].values, dtype=float).reshape(-1)
    for name, var, sel in scalar_names(idata, [v for v in post.data_vars if display.startswith(v + "[")] or None):
        if name == display:
            return np.asarray(post[var].sel(**sel).values, dtype=float).reshape(-1)
    raise ValueError(f"{display!r} is not a scalar of this fit's posterior")
