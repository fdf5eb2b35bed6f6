"""A formula's model in PyMC, with the Stan programs' priors and unconstrained space: PyMC NUTS, Metropolis, nutpie.

:func:`build_pymc_glm` writes the general model

    y = X beta + Z u_g + e,  e ~ N(0, sigma),  u_j ~ MVN(0, diag(tau) Omega diag(tau))

in PyMC with exactly the priors of ``glm_*.stan`` (normal beta; half-normal,
half-Student-t, exponential or uniform tau and sigma, each tau with its own prior; LKJ(eta)
on Omega) and the same unconstrained space as Stan, so the PyMC log density (with the
Jacobians of its transforms) equals Stan's ``lp__`` at the same point:

* tau and sigma: PyMC's ``HalfNormal``, ``HalfStudentT``, ``Exponential`` (log transform,
  as Stan's ``<lower=0>``) or ``Uniform(0, U)`` (its interval transform: the logit of Stan's
  ``<lower=0, upper=U>``). Terms whose priors share a family share one vector variable
  (``tau`` when all do, else ``tau_<family>``).
* Omega: PyMC's ``LKJCorr`` samples each correlation on its own interval, so for three or
  more terms its unconstrained space holds matrices that are not positive definite. The
  model uses Stan's ``cholesky_factor_corr`` transform instead: ``L_Omega_free`` (q(q-1)/2
  unbounded values, ``pm.Flat``) becomes the Cholesky factor L_Omega through canonical
  partial correlations (tanh), and one ``pm.Potential`` adds ``lkj_corr_cholesky_lpdf(L_Omega |
  eta)`` with its constant and the transform's log Jacobian.
* ``centered``: u_j ~ MVN(0, diag(tau) Omega diag(tau)) (``Normal(0, tau)`` for independent
  terms), dims (group, group_term); ``y ~ Normal(X beta + rowsum(Z * u[g]), sigma)``. For
  correlated terms u is ``pm.Flat`` and one ``pm.Potential`` ``u_prior`` holds its multivariate
  normal density, written out by forward substitution over the q terms (vectorised over groups):
  the same density as ``pm.MvNormal(chol=diag(tau) L_Omega)``, whose gradient runs PyTensor's
  SolveTriangular in Python and made one gradient about 20 times slower (measured: 200
  iterations of one chain took 82 s against 6 s for the marginal model, J = 12).
* ``marginal``: u integrated out; one ``pm.Potential`` ``y_marginal`` holds the marginal
  log likelihood of ``glm_marginal.stan`` from the per-group sums, vectorised over groups
  (closed forms for one or two group terms, a batched Cholesky beyond). u is drawn exactly
  afterwards (:func:`hierlin_stan.model.glm_draws.draw_u`).

:func:`fit_pymc_formula` samples it with PyMC's NUTS, PyMC's Metropolis or nutpie and
returns the general InferenceData shape (:func:`hierlin_stan.samplers.stan_glm.glm_inference_data`).
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.glm import Design, design as make_design
from ..model.glm_density import lkj_constant
from ..model.glm_draws import draw_u, sigma_factor
from ..model.glm_priors import GLMPriors, Prior
from ..utils.checks import positive_int
from ..utils.seeds import resolve_seed
from .glm_logdensity import cholesky_corr_constrain
from .pymc_backend import (
    SAMPLERS,
    _f64,
    _import_nutpie,
    _import_pymc,
    _sample_nutpie,
    _sample_pymc,
    log_density_function,
    run_attrs,
)
from .stan_glm import glm_inference_data, glm_priors

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    import pymc as pm

__all__ = ["PYMC_GLM_PARAMETERIZATIONS", "build_pymc_glm", "fit_pymc_formula", "tau_variables"]

#: Parameterizations of the general model written in PyMC.
PYMC_GLM_PARAMETERIZATIONS: tuple[str, ...] = ("centered", "marginal")


def tau_variables(priors: GLMPriors) -> dict[str, list[int]]:
    """PyMC variable holding each group term's tau: name -> indices into tau.

    One vector ``tau`` when every term's prior has the same family, else one
    ``tau_<family>`` per family (a vector of that family's terms, in term order).
    """
    families: dict[str, list[int]] = {}
    for k, prior in enumerate(priors.tau.values()):
        families.setdefault(prior.family, []).append(k)
    if len(families) <= 1:
        return {"tau": list(range(len(priors.tau)))} if priors.tau else {}
    return {f"tau_{family}": idx for family, idx in families.items()}


def _scale_rv(pm: Any, name: str, priors: list[Prior], vector: dict[str, Any] | None = None) -> Any:
    """One PyMC variable for scale priors of one family: a scalar, or a vector when ``vector`` gives its dims/shape."""
    family = priors[0].family

    def col(i: int) -> np.ndarray:
        values = np.array([p.params[i] for p in priors], dtype=np.float64)
        return values if vector is not None else np.asarray(values[0], dtype=np.float64)

    kw = vector or {}
    if family == "halfnormal":
        return pm.HalfNormal(name, sigma=col(0), **kw)
    if family == "halfstudent_t":
        return pm.HalfStudentT(name, nu=col(0), sigma=col(1), **kw)
    if family == "exponential":
        return pm.Exponential(name, lam=col(0), **kw)
    return pm.Uniform(name, lower=_f64(0.0), upper=col(0), **kw)


def _cholesky_corr(pt: Any, free: Any, q: int) -> tuple[Any, Any]:
    """Stan's cholesky_corr_constrain in PyTensor: (L_Omega, log Jacobian) from q(q-1)/2 free values."""
    z = pt.tanh(free)
    ay = pt.abs(free)
    log_jac = pt.sum(_f64(2.0) * (_f64(math.log(2.0)) - ay - pt.log1p(pt.exp(_f64(-2.0) * ay))))
    rows = [[_f64(1.0)] + [_f64(0.0)] * (q - 1)]
    pos = 0
    for i in range(1, q):
        row = [z[pos]]
        pos += 1
        sum_sqs = pt.square(row[0])
        for _ in range(1, i):
            log_jac = log_jac + _f64(0.5) * pt.log1p(-sum_sqs)
            value = z[pos] * pt.sqrt(_f64(1.0) - sum_sqs)
            pos += 1
            sum_sqs = sum_sqs + pt.square(value)
            row.append(value)
        row.append(pt.sqrt(_f64(1.0) - sum_sqs))
        row += [_f64(0.0)] * (q - 1 - i)
        rows.append(row)
    low = pt.stack([pt.stack([pt.as_tensor_variable(v) for v in r]) for r in rows])
    return low, log_jac


def _vector_data(m: np.ndarray) -> dict[str, np.ndarray]:
    """For q = 2: coefficients of (S11, S12, S22) in each A_j entry, and det(M_j)^2 (glm_vector_data.stan)."""
    m11, m12, m21, m22 = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    return {
        "MA11": np.column_stack([m11**2, 2 * m11 * m12, m12**2]),
        "MA12": np.column_stack([m11 * m21, m11 * m22 + m12 * m21, m12 * m22]),
        "MA22": np.column_stack([m21**2, 2 * m21 * m22, m22**2]),
        "detM2": (m11 * m22 - m12 * m21) ** 2,
    }


def _marginal_loglik(pt: Any, d: Design, beta: Any, tau: Any, low_omega: Any, sigma: Any) -> Any:
    """glm_marginal.stan's log likelihood in PyTensor (vectorised over groups)."""
    st = d.stats
    j, p, q = st.shape
    s2 = pt.square(sigma)
    delta = beta - st.residual.beta_star if p else None
    quad = _f64(st.residual.rss_min)
    if p:
        quad = quad + pt.dot(delta, pt.dot(np.asarray(st.residual.c2, np.float64), delta))
    quad = quad / s2
    logdet = _f64(d.N - j * q) * pt.log(s2)
    if q:
        dvec = np.asarray(st.e_star, np.float64)
        if p:
            dvec = dvec - pt.tensordot(np.asarray(st.blocks.f, np.float64), delta, axes=[[2], [0]])  # (J, q)
        if q == 1:
            m2 = np.asarray(st.blocks.m[:, 0, 0] ** 2, np.float64)
            a = s2 + m2 * pt.square(tau[0])
            logdet = logdet + pt.sum(pt.log(a))
            quad = quad + pt.sum(pt.square(dvec[:, 0]) / a)
        elif q == 2:
            vd = {k: np.asarray(v, np.float64) for k, v in _vector_data(st.blocks.m).items()}
            rho = low_omega[1, 0] if low_omega is not None else _f64(0.0)
            l22 = low_omega[1, 1] if low_omega is not None else _f64(1.0)
            svec = pt.stack([pt.square(tau[0]), rho * tau[0] * tau[1], pt.square(tau[1])])
            sdet = pt.square(tau[0] * tau[1] * l22)
            b11 = pt.dot(vd["MA11"], svec)
            b22 = pt.dot(vd["MA22"], svec)
            a12 = pt.dot(vd["MA12"], svec)
            det = s2 * (s2 + b11 + b22) + vd["detM2"] * sdet   # no cancellation (DESIGN.md)
            d1, d2 = dvec[:, 0], dvec[:, 1]
            logdet = logdet + pt.sum(pt.log(det))
            quad = quad + pt.sum(((s2 + b22) * pt.square(d1) - _f64(2.0) * a12 * d1 * d2
                                  + (s2 + b11) * pt.square(d2)) / det)
        else:
            factor = tau[:, None] * (low_omega if low_omega is not None else np.eye(q))
            sig = pt.dot(factor, factor.T)
            mm = np.asarray(st.blocks.m, np.float64)
            a = pt.einsum("jab,bc,jdc->jad", mm, sig, mm) + s2 * np.eye(q)
            la = pt.linalg.cholesky(a)
            v = pt.linalg.solve_triangular(la, dvec[:, :, None], lower=True)
            logdet = logdet + _f64(2.0) * pt.sum(pt.log(pt.diagonal(la, axis1=1, axis2=2)))
            quad = quad + pt.sum(pt.square(v))
    return _f64(-0.5) * (_f64(d.N * math.log(2.0 * math.pi)) + logdet + quad)


def _mvnormal_cholesky_logp(pt: Any, u: Any, tau: Any, low_omega: Any, q: int) -> Any:
    """sum_j log MVN(u_j | 0, L L^T), L = diag(tau) L_Omega, by forward substitution over the q terms.

    Stan's ``multi_normal_cholesky_lpdf`` with its constant: ``-J q/2 log(2 pi) - J sum(log diag L)
    - 1/2 sum_j |L^-1 u_j|^2``; q is small, so the solve is q x q elementwise steps on (J,) vectors.
    """
    chol = tau[:, None] * low_omega
    v = []
    quad = _f64(0.0)
    for i in range(q):
        acc = u[:, i]
        for k in range(i):
            acc = acc - chol[i, k] * v[k]
        v.append(acc / chol[i, i])
        quad = quad + pt.sum(pt.square(v[i]))
    j = u.shape[0]
    logdiag = pt.sum(pt.log(pt.stack([chol[i, i] for i in range(q)])))
    return -_f64(0.5) * quad - pt.cast(j, "float64") * (logdiag + _f64(0.5 * q * math.log(2.0 * math.pi)))


def build_pymc_glm(d: Design, parameterization: str = "centered", priors: GLMPriors | None = None) -> "pm.Model":
    """Write a formula's model in PyMC (see the module docstring).

    Parameters
    ----------
    d : Design
        The formula and data (:func:`hierlin_stan.design`); ``centered`` needs its rows.
    parameterization : {"centered", "marginal"}
    priors : GLMPriors, optional
        Default: the data-scaled defaults of the design.

    Returns
    -------
    pymc.Model
        Free variables ``beta`` (term), the tau variables of :func:`tau_variables`,
        ``sigma``, ``L_Omega_free`` (correlated terms), ``u`` (group, group_term; centered).

    Raises
    ------
    ValueError
        For an unknown parameterization.
    ImportError
        When PyMC is not installed (naming the extra).
    """
    if parameterization not in PYMC_GLM_PARAMETERIZATIONS:
        raise ValueError(f"parameterization={parameterization!r} is not written in PyMC for formulas; use one of "
                         f"{list(PYMC_GLM_PARAMETERIZATIONS)}")
    prior = glm_priors(d, priors)
    pm = _import_pymc()
    import pytensor.tensor as pt

    j, p, q = d.stats.shape
    correlated = bool(d.correlated and q > 1)
    coords: dict[str, Any] = {"term": d.term_names, "group_term": d.group_term_names,
                              "group": [str(g) for g in d.group_labels]}
    if correlated:
        coords["corr"] = [f"{a}:{b}" for i, a in enumerate(d.group_term_names) for b in d.group_term_names[:i]]
    rows = d.row_data() if parameterization == "centered" else None
    if rows is not None:
        coords["obs"] = np.arange(rows.y.size)
    pdata = prior.to_stan_data()
    with pm.Model(coords=coords) as model:
        beta = pm.Normal("beta", mu=np.asarray(pdata["beta_loc"], np.float64),
                         sigma=np.asarray(pdata["beta_scale"], np.float64), dims="term") if p else None
        tau = None
        if q:
            parts: dict[int, Any] = {}
            tau_priors = list(prior.tau.values())
            for name, idx in tau_variables(prior).items():
                shape = {"dims": "group_term"} if name == "tau" else {"shape": (len(idx),)}
                rv = _scale_rv(pm, name, [tau_priors[i] for i in idx], shape)
                for pos, i in enumerate(idx):
                    parts[i] = rv[pos]
            tau = pt.stack([parts[i] for i in range(q)])
        sigma = _scale_rv(pm, "sigma", [prior.sigma])
        low_omega = None
        if correlated:
            free = pm.Flat("L_Omega_free", dims="corr")
            low_omega, log_jac = _cholesky_corr(pt, free, q)
            eta = float(pdata["lkj_eta"])
            logd = pt.log(pt.diagonal(low_omega)[1:])
            weights = np.asarray((q - np.arange(2, q + 1)) + 2.0 * eta - 2.0, np.float64)
            pm.Potential("L_Omega_lkj", _f64(lkj_constant(eta, q)) + pt.dot(logd, weights) + log_jac)
        if parameterization == "marginal":
            pm.Potential("y_marginal", _marginal_loglik(pt, d, beta, tau, low_omega, sigma))
        else:
            mu = pt.dot(np.asarray(rows.x, np.float64), beta) if p else pt.zeros(rows.y.size)
            if q:
                if correlated:
                    u = pm.Flat("u", dims=("group", "group_term"))
                    pm.Potential("u_prior", _mvnormal_cholesky_logp(pt, u, tau, low_omega, q))
                else:
                    u = pm.Normal("u", mu=_f64(0.0), sigma=tau, dims=("group", "group_term"))
                mu = mu + pt.sum(np.asarray(rows.z, np.float64) * u[rows.codes], axis=1)
            pm.Normal("y", mu=mu, sigma=sigma, observed=np.asarray(rows.y, np.float64), dims="obs")
    return model


def _free_names(model: "pm.Model") -> list[str]:
    return [rv.name for rv in model.free_RVs]


def fit_pymc_formula(
    data: Any,
    formula: str | None = None,
    parameterization: str = "centered",
    sampler: str = "nuts",
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int | None = None,
    priors: Any = None,
    show_progress: bool = True,
    keep_u: bool | None = None,
    dropna: bool = False,
) -> "az.InferenceData":
    """Sample a formula's posterior with PyMC NUTS, PyMC Metropolis or nutpie.

    Parameters
    ----------
    data : DataFrame, path, Dataset or Design
    formula : str
        Ignored when ``data`` is a Design.
    parameterization : {"centered", "marginal"}
        See :func:`build_pymc_glm`; ``marginal`` draws u exactly afterwards (numpy).
    sampler : {"nuts", "metropolis", "nutpie"}
        PyMC's NUTS (``init="jitter+adapt_diag"``), PyMC's Metropolis (its defaults, each
        chain jittered), or nutpie's NUTS.
    chains, draws, warmup : int
        Per chain; ``cores = min(chains, CPU count)``.
    seed : int, optional
    priors : mapping or GLMPriors, optional
        As for :func:`hierlin_stan.fit` with a formula.
    show_progress : bool
    keep_u : bool, optional
        (marginal) draw and keep u; default True.
    dropna : bool

    Returns
    -------
    arviz.InferenceData
        The general shape (beta, tau, sigma, Omega, u, coef), sample_stats under the
        package's names (Metropolis: ``lp`` evaluated at the draws, ``acceptance_rate``),
        attrs as :func:`hierlin_stan.samplers.pymc_backend.fit_pymc` records them.

    Raises
    ------
    ValueError
        Unknown parameterization or sampler, bad counts.
    ImportError
        PyMC (or nutpie) not installed.
    """
    if parameterization not in PYMC_GLM_PARAMETERIZATIONS:
        raise ValueError(f"parameterization={parameterization!r} is not written in PyMC for formulas; use one of "
                         f"{list(PYMC_GLM_PARAMETERIZATIONS)}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is unknown; use one of {list(SAMPLERS)}")
    chains, draws, warmup = (positive_int(v, n) for v, n in ((chains, "chains"), (draws, "draws"), (warmup, "warmup")))
    seed = resolve_seed(seed)
    if not isinstance(data, Design) and formula is None:
        raise ValueError("PyMC on a formula needs formula=..., e.g. 'y ~ x + (1 + x | g)'")
    d = data if isinstance(data, Design) else make_design(data, formula, dropna=dropna)
    prior = glm_priors(d, priors)
    pm = _import_pymc()
    if sampler == "nutpie":
        _import_nutpie()
    wall = time.perf_counter()
    model = build_pymc_glm(d, parameterization, prior)
    names = _free_names(model)
    cores = min(chains, os.cpu_count() or 1)
    if sampler == "nutpie":
        raw, stats, timing = _sample_nutpie(model, chains, draws, warmup, seed, cores, show_progress, names=names)
    else:
        raw, stats, timing = _sample_pymc(pm, model, sampler, chains, draws, warmup, seed, cores, show_progress,
                                          names=names)
    if "lp" not in stats:
        # PyMC's Metropolis does not record the log density: evaluate it at the draws.
        stats["lp"] = log_density_function(model, jacobian=True)({k: raw[k] for k in names})
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x75]))
    variables = _general_posterior(d, prior, raw, parameterization, keep_u is not False, rng)
    timing["wall_seconds"] = time.perf_counter() - wall
    attrs = run_attrs(pm, sampler, parameterization, seed, chains, draws, warmup, cores, timing)
    return glm_inference_data(variables, stats, d, prior, attrs)


def _general_posterior(d: Design, prior: GLMPriors, raw: dict[str, np.ndarray], parameterization: str,
                       keep_u: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """beta, tau, sigma, Omega, u (chain, draw, ...) from the PyMC variables."""
    j, p, q = d.stats.shape
    chains, draws = raw["sigma"].shape[:2]
    out: dict[str, np.ndarray] = {"sigma": raw["sigma"]}
    out["beta"] = raw["beta"] if p else np.zeros((chains, draws, 0))
    tau = np.zeros((chains, draws, q))
    for name, idx in tau_variables(prior).items():
        values = raw[name]
        tau[..., idx] = values
    out["tau"] = tau
    low_omega = None
    if d.correlated and q > 1:
        flat = raw["L_Omega_free"].reshape(chains * draws, -1)
        low_omega, _ = cholesky_corr_constrain(flat, q)
        out["Omega"] = np.einsum("kab,kcb->kac", low_omega, low_omega).reshape(chains, draws, q, q)
    if parameterization == "centered" and q:
        out["u"] = raw["u"]
    elif keep_u and q:
        low = sigma_factor(tau.reshape(-1, q), low_omega)
        u = draw_u(d.stats, out["beta"].reshape(-1, p), low, out["sigma"].reshape(-1), rng)
        out["u"] = u.reshape(chains, draws, j, q)
    return out
