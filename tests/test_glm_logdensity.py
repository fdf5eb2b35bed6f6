"""The numpy log density of the general programs equals Stan's lp__ on Stan's unconstrained space.

* :class:`GLMTarget` (numpy) = the engine's ``log_density_many(..., jacobian=True)`` of
  ``glm_marginal``, ``glm_collapsed``, ``glm_centered`` and ``glm_noncentered``, 1e-9
  relative, at 100 random unconstrained points per formula: correlated q = 2 and q = 3
  (the LKJ Cholesky transform with 1 and 3 free values), independent q = 2, q = 1, and
  every scale family including uniform (the lower-and-upper-bounded transform); on both
  engines.
* Without Stan: the numpy target equals the reference densities of
  :mod:`hierlin_stan.model.glm_density` plus priors and Jacobians; the transforms invert;
  the exact conditional draws have the right mean and covariance.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hierlin_stan.engines import get_engine
from hierlin_stan.model.glm import design
from hierlin_stan.model.glm_density import (
    beta_conditional,
    collapsed_loglik,
    log_prior,
    marginal_loglik,
    u_conditional,
)
from hierlin_stan.model.glm_draws import draw_beta, draw_u, sigma_factor
from hierlin_stan.samplers.glm_logdensity import GLMTarget, cholesky_corr_constrain, cholesky_corr_free
from hierlin_stan.samplers.stan_glm import glm_priors, stan_data

KINDS = ["marginal", "collapsed", "centered", "noncentered"]
PRIORS = {"beta": "normal(0, 5)", "beta[x1]": "normal(1, 2)", "tau": "halfnormal(2)",
          "tau[Intercept]": "halfstudent_t(4, 1.5)", "sigma": "exponential(0.7)", "Omega": "lkj(2)"}
UNIFORM = {"beta": "normal(0, 3)", "tau": "uniform(0, 4)", "sigma": "uniform(0, 2.5)", "Omega": "lkj(1)"}
CASES = {  # id: (formula, priors)
    "q2-correlated": ("y ~ x1 + x2 + (1 + x1 | g)", PRIORS),
    "q2-independent": ("y ~ x1 + (1 + x1 || g)", PRIORS),
    "q1": ("y ~ x1 + (1 | g)", PRIORS),
    "q3-correlated": ("y ~ x1 + (1 + x1 + x2 | g)", PRIORS),
    "q2-uniform-scales": ("y ~ x1 + (1 + x1 | g)", UNIFORM),
}
N_POINTS = 100


def _frame(sizes, seed=0, noise=0.3, x2_slopes=True):
    """Rows for groups of the given sizes (one-point groups included); group 'g1' has x1 = 0 throughout.

    y has group intercepts, x1 slopes and (``x2_slopes``) x2 slopes, plus normal noise of sd ``noise``.
    """
    rng = np.random.default_rng(seed)
    labels = np.array([f"g{k}" for k in range(len(sizes))])
    g = np.repeat(labels, sizes)
    x1 = rng.normal(size=g.size)
    x2 = rng.uniform(-1, 2, size=g.size)
    x1[g == labels[1]] = 0.0
    codes = np.repeat(np.arange(len(sizes)), sizes)
    u = rng.normal(size=(len(sizes), 3))
    y = (1.0 + 0.5 * x1 - x2 + u[codes, 0] + u[codes, 1] * x1 + x2_slopes * u[codes, 2] * x2
         + noise * rng.normal(size=g.size))
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g})


def _design(case):
    formula, priors = CASES[case]
    d = design(_frame([1, 4, 6, 1, 3, 8, 2], seed=7), formula)
    return d, glm_priors(d, priors)


def _points(target, n, seed, small_sigma=(-7.0, -2.0)):
    """Unconstrained points: uniform(-2.5, 2.5), every third with a small sigma (its log in ``small_sigma``)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-2.5, 2.5, size=(n, target.dim))
    i = target.names.index("sigma")
    theta[::3, i] = rng.uniform(*small_sigma, size=theta[::3].shape[0])
    return theta


# ------------------------------------------------------------------ with Stan
@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_numpy_log_density_equals_stan_lp(engine_name, kind):
    """100 points per formula (500 per program and engine), relative error <= 1e-9."""
    eng = get_engine(engine_name, verbose=False)
    for case in CASES:
        d, pr = _design(case)
        target = GLMTarget(d, kind, pr)
        theta = _points(target, N_POINTS, seed=zlib.crc32(f"{case}/{kind}".encode()))
        mine = target.log_density(theta)
        stan = eng.log_density_many(f"glm_{kind}", stan_data(d, pr, kind, write_u=False),
                                    target.stan_parameters(theta), jacobian=True)
        assert np.all(np.isfinite(stan)) and np.all(np.isfinite(mine)), case
        rel = np.abs(mine - stan) / np.abs(stan)
        assert rel.max() <= 1e-9, (case, kind, float(rel.max()), int(rel.argmax()))


# --------------------------------------------------------------- numpy alone
@pytest.mark.parametrize("case", list(CASES))
def test_target_equals_reference_densities_plus_jacobians(case):
    """The marginal and collapsed targets are the tested references (glm_density) + priors + log|J|."""
    d, pr = _design(case)
    pdata = pr.to_stan_data()
    for kind in ("marginal", "collapsed"):
        target = GLMTarget(d, kind, pr)
        theta = _points(target, 20, seed=3)
        got = target.log_density(theta)
        v = target.constrain(theta)
        for i in range(theta.shape[0]):
            tau, sigma = v["tau"][i], float(v["sigma"][i])
            low_omega = v["L_Omega"][i] if "L_Omega" in v else np.eye(d.q)
            factor = np.diag(tau) @ low_omega
            sigma_u = factor @ factor.T
            free = theta[i, [target.names.index(f"tau[{t}]") for t in d.group_term_names] + [target.names.index("sigma")]]
            upper = np.append(pdata["tau_a"], pdata["sigma_a"])
            uniform = np.append(pdata["tau_family"], pdata["sigma_family"]) == 1
            jac = float(np.where(uniform, np.log(upper) - np.logaddexp(0, -free) - np.logaddexp(0, free), free).sum())
            if "L_Omega" in v:
                jac += float(cholesky_corr_constrain(theta[i:i + 1, [n.startswith("L_Omega") for n in target.names]],
                                                     d.q)[1][0])
            if kind == "marginal":
                beta = v["beta"][i]
                ref = log_prior(pdata, beta, tau, sigma, low_omega, d.correlated) + marginal_loglik(
                    d.stats, beta, sigma_u, sigma)
            else:
                ref = log_prior(pdata, None, tau, sigma, low_omega, d.correlated) + collapsed_loglik(
                    d.stats, sigma_u, sigma, pdata["beta_loc"], pdata["beta_scale"])
            assert got[i] == pytest.approx(ref + jac, rel=1e-10), (case, kind, i)


def test_full_targets_agree_with_each_other_and_scipy():
    """centered at u equals non-centered at z = L^-1 u minus the Jacobian of u = L z; the likelihood is scipy's."""
    d, pr = _design("q2-correlated")
    cen, non = GLMTarget(d, "centered", pr), GLMTarget(d, "noncentered", pr)
    theta = _points(cen, 10, seed=5)
    vc = cen.constrain(theta)
    rows = d.rows
    for i in range(theta.shape[0]):
        low = sigma_factor(vc["tau"][i:i + 1], vc["L_Omega"][i:i + 1])[0]
        z = np.linalg.solve(low, vc["u"][i].T).T
        point = {"beta": vc["beta"][i], "tau": vc["tau"][i], "sigma": vc["sigma"][i], "L_Omega": vc["L_Omega"][i], "z": z}
        lp_non = non.log_density(non.unconstrain(point))
        # p_u(u) = p_z(z) / |det L|^J
        jac = d.J * float(np.log(np.diag(low)).sum())
        assert cen.log_density(theta[i]) == pytest.approx(lp_non - jac, rel=1e-10)
        mu = rows.x @ vc["beta"][i] + np.einsum("nq,nq->n", rows.z, vc["u"][i][rows.codes])
        lik = stats.norm(mu, vc["sigma"][i]).logpdf(rows.y).sum()
        prior_u = stats.multivariate_normal(np.zeros(d.q), low @ low.T).logpdf(vc["u"][i]).sum()
        assert np.isclose(lik + prior_u, cen.log_density(theta[i]) - _rest(cen, theta[i]), rtol=1e-10)


def _rest(target, theta):
    """Priors of beta, tau, sigma, Omega and Jacobians: the centered density minus u's prior and the likelihood."""
    d = target.design
    pdata = target.priors.to_stan_data()
    v = target.constrain(theta)
    low = v["L_Omega"] if "L_Omega" in v else np.eye(d.q)
    free = theta[[target.names.index(f"tau[{t}]") for t in d.group_term_names] + [target.names.index("sigma")]]
    jac = float(free.sum()) + float(cholesky_corr_constrain(
        theta[None, [n.startswith("L_Omega") for n in target.names]], d.q)[1][0])
    return log_prior(pdata, v["beta"], v["tau"], v["sigma"], low, d.correlated) + jac


@pytest.mark.parametrize("q", [2, 3, 4])
def test_cholesky_corr_transform_inverts_and_gives_correlations(q):
    rng = np.random.default_rng(q)
    y = rng.normal(size=(50, q * (q - 1) // 2)) * 1.5
    low, _ = cholesky_corr_constrain(y, q)
    omega = np.einsum("kab,kcb->kac", low, low)
    assert np.allclose(np.diagonal(omega, axis1=1, axis2=2), 1.0)
    assert np.all(np.linalg.eigvalsh(omega) > 0)
    assert np.allclose(np.triu(low, 1), 0.0)
    np.testing.assert_allclose(cholesky_corr_free(low), y, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_unconstrain_inverts_constrain_and_names_bad_values(kind):
    d, pr = _design("q2-uniform-scales")
    target = GLMTarget(d, kind, pr)
    theta = _points(target, 7, seed=11)
    v = target.constrain(theta)
    np.testing.assert_allclose(target.unconstrain(v), theta, rtol=1e-9, atol=1e-9)
    assert target.unconstrain({k: x[0] for k, x in v.items()}).shape == (target.dim,)
    bad = {k: x[0] for k, x in v.items()}
    bad["sigma"] = 3.0  # above uniform(0, 2.5)
    with pytest.raises(ValueError, match=r"sigma=3.0 is outside its support: it must be in \(0, 2.5\)"):
        target.unconstrain(bad)
    with pytest.raises(ValueError, match=r"theta has shape \(3,\); the .* target needs"):
        target.log_density(np.zeros(3))


def test_names_follow_stan_order():
    d, pr = _design("q2-correlated")
    names = GLMTarget(d, "centered", pr).names
    assert names[:6] == ("beta[Intercept]", "beta[x1]", "beta[x2]", "tau[Intercept]", "tau[x1]", "sigma")
    assert names[6] == "L_Omega[1]"
    # matrix[J, q] u: column-major, as Stan's unconstrained vector
    assert names[7:9] == ("u[g0, Intercept]", "u[g1, Intercept]") and names[7 + d.J] == "u[g0, x1]"
    assert GLMTarget(d, "collapsed", pr).names == ("tau[Intercept]", "tau[x1]", "sigma", "L_Omega[1]")


def test_conditional_draws_match_their_distributions():
    """draw_u and draw_beta (vectorised) have the mean and covariance of glm_density's formulas."""
    d, pr = _design("q2-correlated")
    pdata = pr.to_stan_data()
    rng = np.random.default_rng(0)
    n = 20_000
    tau = np.array([0.8, 0.4])
    low_omega = np.linalg.cholesky(np.array([[1.0, 0.3], [0.3, 1.0]]))
    sigma = 0.35
    low = sigma_factor(np.tile(tau, (n, 1)), np.tile(low_omega, (n, 1, 1)))
    beta = d.stats.residual.beta_star + 0.1
    u = draw_u(d.stats, np.tile(beta, (n, 1)), low, np.full(n, sigma), rng)
    mean, cov = u_conditional(d.stats, beta, low[0], sigma)
    for j in range(d.J):
        sd = np.sqrt(np.diag(cov[j]))
        assert np.all(np.abs(u[:, j].mean(axis=0) - mean[j]) < 5 * sd / math.sqrt(n))
        _assert_cov(u[:, j], cov[j])
    b = draw_beta(d.stats, low, np.full(n, sigma), pdata["beta_loc"], pdata["beta_scale"], rng)
    bmean, bcov = beta_conditional(d.stats, low[0] @ low[0].T, sigma, pdata["beta_loc"], pdata["beta_scale"])
    bsd = np.sqrt(np.diag(bcov))
    assert np.all(np.abs(b.mean(axis=0) - bmean) < 5 * bsd / math.sqrt(n))
    _assert_cov(b, bcov)


def _assert_cov(draws, cov):
    """Sample covariance within 5 standard errors of ``cov``: se(c_ab) = sqrt((c_aa c_bb + c_ab^2) / n)."""
    n = draws.shape[0]
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(draws.T) - cov) < 5 * se), (np.cov(draws.T), cov)
