"""The general model's marginal and collapsed densities: exact against dense references, and Stan = numpy.

* numpy (per-group sums) = a dense multivariate-normal log density, 1e-10 relative, for sigma
  in 0.01..1, on small random designs with one-point groups, a group whose Z has an
  all-zero column, correlated and independent terms, q = 1, 2, 3;
* down to sigma = 1e-6 against a 50-digit mpmath reference, on data that fit exactly
  (several points per group), where differences of large sums would cancel;
* Stan's log density (both engines; q = 1 and 2 take the vectorised path, q = 3 the loop)
  = numpy's at random points, 1e-9 relative.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pandas as pd
import pytest

from hierlin_stan.engines import get_engine
from hierlin_stan.model.glm import design
from hierlin_stan.model.glm_density import (
    collapsed_loglik,
    dense_loglik,
    log_prior,
    marginal_loglik,
)
from hierlin_stan.samplers.stan_glm import glm_priors, stan_data

FORMULAS = [
    "y ~ x1 + x2 + (1 + x1 | g)",        # q = 2, correlated
    "y ~ x1 + (1 + x1 || g)",            # q = 2, independent
    "y ~ x1 + (1 | g)",                  # q = 1
    "y ~ 1 + x1 + (0 + x1 | g)",         # the notebook's shape
    "y ~ x1 + (1 + x1 + x2 | g)",        # q = 3: the loop form
    "y ~ x1 + x2",                       # no group term
]


def _frame(sizes, seed=0, exact=False, zero_group=True):
    """Rows for groups of the given sizes; group 'b' has x1 = 0 throughout (an all-zero Z column)."""
    rng = np.random.default_rng(seed)
    labels = np.array([f"g{k}" for k in range(len(sizes))])
    g = np.repeat(labels, sizes)
    n = g.size
    x1 = rng.normal(size=n)
    x2 = rng.uniform(-1, 2, size=n)
    if zero_group:
        x1[g == labels[1]] = 0.0
    codes = np.repeat(np.arange(len(sizes)), sizes)
    u = rng.normal(size=(len(sizes), 3))
    y = 1.0 + 0.5 * x1 - x2 + u[codes, 0] + u[codes, 1] * x1 + u[codes, 2] * x2
    if not exact:
        y = y + 0.3 * rng.normal(size=n)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g})


def _sigma_u(q, rng, correlated=True):
    tau = rng.uniform(0.3, 1.5, size=q)
    if correlated and q > 1:
        a = rng.normal(size=(q, q))
        cov = a @ a.T + q * np.eye(q)
        d = np.sqrt(np.diag(cov))
        low = np.linalg.cholesky(cov / np.outer(d, d))
    else:
        low = np.eye(q)
    factor = np.diag(tau) @ low
    return tau, low, factor @ factor.T


def _dense_collapsed(rows, sigma_u, sigma, m0, s0):
    """log N(y | X m0, blockdiag(sigma^2 I + Z_j Sigma Z_j') + X S0 X'), in double precision."""
    from scipy.stats import multivariate_normal

    v = _dense_cov(rows, sigma_u, sigma) + rows.x @ np.diag(s0**2) @ rows.x.T
    return float(multivariate_normal(rows.x @ m0, v).logpdf(rows.y))


def _dense_cov(rows, sigma_u, sigma):
    n = rows.y.size
    same = rows.codes[:, None] == rows.codes[None, :]
    return sigma * sigma * np.eye(n) + same * (rows.z @ sigma_u @ rows.z.T)


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("sigma", [1.0, 0.1, 0.01])
def test_marginal_equals_dense_mvn(formula, sigma):
    d = design(_frame([1, 4, 6, 1, 3, 8, 2]), formula)
    rows = d.rows
    rng = np.random.default_rng(1)
    for _ in range(5):
        _, _, sigma_u = _sigma_u(d.q, rng, d.correlated)
        beta = d.stats.residual.beta_star + rng.normal(size=d.p) * 0.5
        got = marginal_loglik(d.stats, beta, sigma_u, sigma)
        ref = dense_loglik(rows.y, rows.x, rows.z, rows.codes, beta, sigma_u, sigma)
        assert got == pytest.approx(ref, rel=1e-10), (formula, sigma)


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("sigma", [1.0, 0.1])
def test_collapsed_equals_marginal_integrated_over_beta(formula, sigma):
    d = design(_frame([1, 4, 6, 1, 3, 8, 2], seed=3), formula)
    rng = np.random.default_rng(2)
    for _ in range(5):
        _, _, sigma_u = _sigma_u(d.q, rng, d.correlated)
        m0 = rng.normal(size=d.p)
        s0 = rng.uniform(0.5, 3.0, size=d.p)
        got = collapsed_loglik(d.stats, sigma_u, sigma, m0, s0)
        ref = _dense_collapsed(d.rows, sigma_u, sigma, m0, s0)
        assert got == pytest.approx(ref, rel=1e-10), (formula, sigma)


def _mp_logpdf(y, mean, cov):
    """log N(y | mean, cov) with mpmath at 50 digits (y taken exactly from the doubles; mean, cov in mpmath)."""
    n = len(y)
    with mp.workdps(50):
        c = mp.matrix([[cov[i][k] for k in range(n)] for i in range(n)])
        r = mp.matrix([mp.mpf(float(y[i])) - mean[i] for i in range(n)])
        low = mp.cholesky(c)
        w = mp.lu_solve(low, r)  # low is triangular: lu_solve is exact enough at 50 digits
        logdet = 2 * mp.fsum(mp.log(low[i, i]) for i in range(n))
        return float(-(n * mp.log(2 * mp.pi) + logdet + mp.fsum(w[i] ** 2 for i in range(n))) / 2)


def _mp_dense(rows, mean, sigma_u, sigma, extra=None):
    """Dense covariance built in mpmath (so Z Sigma Z' + sigma^2 I loses nothing)."""
    n = rows.y.size
    with mp.workdps(50):
        s2 = mp.mpf(sigma) ** 2
        su = [[mp.mpf(float(v)) for v in row] for row in sigma_u]
        zs = [[mp.mpf(float(v)) for v in row] for row in rows.z]
        cov = [[mp.mpf(0)] * n for _ in range(n)]
        q = len(su)
        for i in range(n):
            for k in range(n):
                v = mp.mpf(0)
                if rows.codes[i] == rows.codes[k]:
                    v = mp.fsum(zs[i][a] * su[a][b] * zs[k][b] for a in range(q) for b in range(q))
                if extra is not None:
                    v += extra[i][k]
                if i == k:
                    v += s2
                cov[i][k] = v
        return _mp_logpdf(rows.y, mean, cov)


@pytest.mark.parametrize("formula", ["y ~ x1 + x2 + (1 + x1 | g)", "y ~ x1 + (1 | g)", "y ~ 1 + x1 + (0 + x1 | g)"])
@pytest.mark.parametrize("sigma", [1e-3, 1e-6])
def test_exact_fit_small_sigma_against_high_precision(formula, sigma):
    """Data that fit exactly (eps = 0, several points per group): 1e-10 relative to 50-digit arithmetic."""
    d = design(_frame([3, 4, 5, 3], seed=5, exact=True, zero_group=False), formula)
    rows = d.rows
    rng = np.random.default_rng(4)
    _, _, sigma_u = _sigma_u(d.q, rng, d.correlated)
    beta = d.stats.residual.beta_star + rng.normal(size=d.p) * sigma
    with mp.workdps(50):
        mean = [mp.fsum(mp.mpf(float(rows.x[i, k])) * mp.mpf(float(beta[k])) for k in range(d.p))
                for i in range(rows.y.size)]
    ref = _mp_dense(rows, mean, sigma_u, sigma)
    got = marginal_loglik(d.stats, beta, sigma_u, sigma)
    assert got == pytest.approx(ref, rel=1e-10)
    # collapsed: beta integrated against N(m0, S0)
    m0 = np.array([0.5] * d.p)
    s0 = np.array([2.0] * d.p)
    with mp.workdps(50):
        xs = [[mp.mpf(float(v)) for v in row] for row in rows.x]
        extra = [[mp.fsum(xs[i][k] * mp.mpf(float(s0[k])) ** 2 * xs[j][k] for k in range(d.p))
                  for j in range(rows.y.size)] for i in range(rows.y.size)]
        mean0 = [mp.fsum(xs[i][k] * mp.mpf(float(m0[k])) for k in range(d.p)) for i in range(rows.y.size)]
    ref_c = _mp_dense(rows, mean0, sigma_u, sigma, extra)
    got_c = collapsed_loglik(d.stats, sigma_u, sigma, m0, s0)
    assert got_c == pytest.approx(ref_c, rel=1e-10)


# ------------------------------------------------------------- Stan = numpy
PRIORS = {"beta": "normal(0, 5)", "beta[x1]": "normal(1, 2)", "tau": "halfnormal(2)", "tau[Intercept]": "halfstudent_t(4, 1.5)",
          "sigma": "exponential(0.7)", "Omega": "lkj(2)"}


def _points(d, rng, n, with_beta):
    pts, truth = [], []
    for k in range(n):
        tau, low, sigma_u = _sigma_u(d.q, rng, d.correlated)
        sigma = float(10 ** rng.uniform(-4, 0.3)) if k % 3 == 0 else float(rng.uniform(0.1, 2))
        beta = d.stats.residual.beta_star + rng.normal(size=d.p) * 0.3
        pt = {"tau": tau.tolist(), "sigma": sigma}
        if d.correlated and d.q > 1:
            pt["L_Omega"] = low.tolist()
        if with_beta:
            pt["beta"] = beta.tolist()
        pts.append(pt)
        truth.append((beta, tau, low, sigma_u, sigma))
    return pts, truth


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["marginal", "collapsed"])
@pytest.mark.parametrize("formula", ["y ~ x1 + x2 + (1 + x1 | g)", "y ~ x1 + (1 + x1 || g)", "y ~ x1 + (1 | g)",
                                     "y ~ x1 + (1 + x1 + x2 | g)"])
def test_stan_log_density_equals_numpy(engine_name, parameterization, formula):
    d = design(_frame([1, 4, 6, 1, 3, 8, 2], seed=7), formula)
    pr = glm_priors(d, {k: v for k, v in PRIORS.items() if d.q or not k.startswith(("tau", "Omega"))})
    data = stan_data(d, pr, parameterization, write_u=False)
    pdata = pr.to_stan_data()
    rng = np.random.default_rng(8)
    pts, truth = _points(d, rng, 12, with_beta=parameterization == "marginal")
    got = get_engine(engine_name, verbose=False).log_density_many(f"glm_{parameterization}", data, pts, jacobian=False)
    for value, (beta, tau, low, sigma_u, sigma) in zip(got, truth):
        if parameterization == "marginal":
            ref = log_prior(pdata, beta, tau, sigma, low, d.correlated) + marginal_loglik(d.stats, beta, sigma_u, sigma)
        else:
            ref = log_prior(pdata, None, tau, sigma, low, d.correlated) + collapsed_loglik(
                d.stats, sigma_u, sigma, pdata["beta_loc"], pdata["beta_scale"])
        assert value == pytest.approx(ref, rel=1e-9, abs=1e-8), (formula, sigma)
    assert all(math.isfinite(v) for v in got)
