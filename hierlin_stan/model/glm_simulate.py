"""Simulate data from the general model (numpy): the data of a formula, with known truth.

    df = hs.simulate(formula="y ~ x + (1 + x | g)", groups=[20] * 30,
                     truth={"beta": {"Intercept": 1, "x": 2}, "tau": [1.0, 0.5], "sigma": 0.5,
                            "Omega": 0.5}, seed=1)
    df.attrs["hierlin_truth"]     # beta, tau, sigma, Omega, u (by label): what a fit should recover

The predictors come from ``data`` (its rows are kept, the response is replaced) or are
drawn: each numeric predictor column x ~ U(x_low, x_high), groups of the given sizes with
labels ``g01, g02, ...``. Then u_j ~ MVN(0, diag(tau) Omega diag(tau)) and
y = X beta + Z u_g + N(0, sigma). :func:`hierlin_stan.simulate_stan` is the Stan twin
(``glm_simulate.stan``, fixed_param), equal in distribution.
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .design import DataError, DesignSpec, build_spec
from .formula import Formula, parse_formula
from .sizes import group_sizes

__all__ = ["simulate_formula", "resolve_truth", "simulation_frame", "default_truth", "inverse_response"]


def default_truth(spec: DesignSpec) -> dict[str, Any]:
    """Intercept 2, other coefficients 1, every tau 1, sigma 0.5, Omega the identity."""
    return {
        "beta": {t: (2.0 if t == "Intercept" else 1.0) for t in spec.term_names},
        "tau": {t: 1.0 for t in spec.group_term_names},
        "sigma": 0.5,
        "Omega": np.eye(spec.q).tolist(),
    }


def resolve_truth(truth: Mapping[str, Any] | None, spec: DesignSpec) -> dict[str, Any]:
    """Complete and check true values for a design.

    ``beta`` and ``tau`` are mappings by term name or sequences in term order (missing
    terms take the defaults of :func:`default_truth`); ``sigma`` a number >= 0; ``Omega`` a
    q x q correlation matrix or, for q = 2, the correlation as a number.

    Raises
    ------
    ValueError
        For unknown keys or terms, wrong lengths, negative scales, an invalid correlation matrix.
    """
    out = default_truth(spec)
    if truth is None:
        return out
    unknown = sorted(set(truth) - {"beta", "tau", "sigma", "Omega"})
    if unknown:
        raise ValueError(f"truth has unknown key(s) {unknown}; give beta, tau, sigma, Omega")
    for key, names in (("beta", spec.term_names), ("tau", spec.group_term_names)):
        if key not in truth:
            continue
        value = truth[key]
        if isinstance(value, Mapping):
            bad = sorted(set(value) - set(names))
            if bad:
                raise ValueError(f"truth[{key!r}] names {bad}, which are not terms of the formula; its terms are {names}")
            out[key].update({k: float(v) for k, v in value.items()})
        else:
            values = np.atleast_1d(np.asarray(value, dtype=float))
            if values.size != len(names):
                raise ValueError(f"truth[{key!r}] has {values.size} value(s) but the formula has {len(names)} "
                                 f"{'common' if key == 'beta' else 'group'} term(s) {names}")
            out[key] = dict(zip(names, values.tolist()))
    if any(v < 0 for v in out["tau"].values()):
        raise ValueError(f"truth['tau'] = {out['tau']}: standard deviations must be >= 0")
    if "sigma" in truth:
        sigma = truth["sigma"]
        if not isinstance(sigma, numbers.Real) or not np.isfinite(sigma) or sigma < 0:
            raise ValueError(f"truth['sigma'] = {sigma!r} must be a number >= 0 (a standard deviation)")
        out["sigma"] = float(sigma)
    if "Omega" in truth:
        omega = truth["Omega"]
        q = spec.q
        if isinstance(omega, numbers.Real):
            if q != 2:
                raise ValueError(f"truth['Omega'] = {omega} is a single correlation, which needs exactly 2 group terms "
                                 f"(the formula has {q}); give a {q} x {q} matrix")
            omega = [[1.0, float(omega)], [float(omega), 1.0]]
        mat = np.asarray(omega, dtype=float)
        if mat.shape != (q, q) or not np.allclose(mat, mat.T) or not np.allclose(np.diag(mat), 1.0):
            raise ValueError(f"truth['Omega'] must be a symmetric {q} x {q} correlation matrix with unit diagonal")
        if q and np.linalg.eigvalsh(mat).min() < -1e-12:
            raise ValueError("truth['Omega'] is not positive semi-definite")
        if not spec.correlated and q > 1 and not np.allclose(mat, np.eye(q)):
            raise ValueError("truth['Omega'] has correlations but the formula's group terms are independent (||); "
                             "use | to simulate correlated effects")
        out["Omega"] = mat.tolist()
    return out


def simulation_frame(formula: Formula, data: pd.DataFrame | None, n: int | None, groups: Any,
                     x_low: float, x_high: float, rng: np.random.Generator) -> pd.DataFrame:
    """The predictor rows: ``data``'s, or drawn (numeric predictors uniform, groups of given sizes)."""
    resp = formula.response.column
    if data is not None:
        frame = data.copy()
        frame[resp] = 0.0
        return frame
    sizes = _sizes(n, groups, formula)
    frame = pd.DataFrame(index=np.arange(sum(sizes)))
    for term in formula.terms + (formula.group.terms if formula.group else ()):
        for f in term.factors:
            if f.column in frame:
                continue
            if f.categorical:
                raise DataError(f"{f.name} is categorical: give data= holding its column (its levels cannot be made up)")
            low, high = (max(x_low, 1e-3), max(x_high, 1e-3 + 1)) if f.function in ("log", "log2", "log10", "sqrt") \
                else (x_low, x_high)
            frame[f.column] = rng.uniform(low, high, size=len(frame))
    if formula.group is not None:
        width = len(str(len(sizes)))
        labels = [f"g{k + 1:0{width}d}" for k in range(len(sizes))]
        frame[formula.group.factor] = np.repeat(labels, sizes)
    frame[resp] = 0.0
    return frame


def _sizes(n: int | None, groups: Any, formula: Formula) -> list[int]:
    """Group sizes: as :func:`hierlin_stan.simulate` reads ``n`` and ``groups``; 10 groups by default."""
    if groups is None:
        if formula.group is None:
            return [100 if n is None else int(n)]
        groups = 10
    return group_sizes(n, groups)


def simulate_formula(formula: str, data: pd.DataFrame | None = None, truth: Mapping[str, Any] | None = None,
                     n: int | None = None, groups: int | Sequence[int] | None = None, x_low: float = 0.0,
                     x_high: float = 10.0, seed: int | None = None) -> pd.DataFrame:
    """Simulate the response of ``formula``; see :func:`hierlin_stan.simulate`.

    Returns
    -------
    pandas.DataFrame
        The predictors, group labels and simulated response; ``attrs["hierlin_truth"]``
        holds beta, tau, sigma, Omega (by term) and u (by group label), and the formula.
    """
    form = parse_formula(formula)
    rng = np.random.default_rng(seed)
    frame = simulation_frame(form, data, n, groups, x_low, x_high, rng)
    spec = build_spec(form, frame)
    t = resolve_truth(truth, spec)
    y_dummy, x, z, codes = spec.matrices(frame)
    beta = np.array([t["beta"][k] for k in spec.term_names])
    tau = np.array([t["tau"][k] for k in spec.group_term_names])
    omega = np.asarray(t["Omega"], float) if spec.q else np.zeros((0, 0))
    cov = np.outer(tau, tau) * omega if spec.q else np.zeros((0, 0))
    u = rng.multivariate_normal(np.zeros(spec.q), cov, size=spec.n_groups, method="eigh") if spec.q \
        else np.zeros((spec.n_groups, 0))
    y = x @ beta + np.einsum("nq,nq->n", z, u[codes])
    if t["sigma"] > 0:
        y = y + rng.normal(0.0, t["sigma"], size=y.size)
    frame[form.response.column] = inverse_response(form, y)
    t["u"] = {str(label): u[k].tolist() for k, label in enumerate(spec.group_labels)}
    t["formula"] = formula
    frame.attrs["hierlin_truth"] = t
    return frame


def inverse_response(form: Formula, y: np.ndarray) -> np.ndarray:
    """The response column whose transform is y (log(y) ~ ...: the column is exp(y))."""
    inverse = {None: lambda v: v, "log": np.exp, "log2": lambda v: 2.0**v, "log10": lambda v: 10.0**v,
               "log1p": np.expm1, "exp": np.log, "sqrt": np.square}
    fn = form.response.function
    if fn not in inverse:
        raise DataError(f"cannot simulate a response written as {form.response.name}")
    if fn in ("exp",) and np.any(y <= 0):
        raise DataError("simulated values of exp(y) are not all positive; simulate y itself")
    if fn == "sqrt" and np.any(y < 0):
        raise DataError("simulated values of sqrt(y) are negative; simulate y itself")
    return inverse[fn](y)
