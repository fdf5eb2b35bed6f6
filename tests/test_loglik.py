"""The log likelihoods written for LOO: per group (group effects integrated out) equals a dense
multivariate normal per group; per observation equals scipy's normal; both land in InferenceData
with the names, dims and coordinates ArviZ's loo reads, and the size limit is explained.

No sampling here: the draws are random parameter values put into a fit-shaped InferenceData.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hierlin_stan.model.glm import design
from hierlin_stan.model.glm_density import marginal_loglik
from hierlin_stan.model.glm_loglik import (Grouping, covariance_draws, group_loglik, group_residuals,
                                           model_grouping, pointwise_loglik)
from hierlin_stan.samplers import log_likelihood as ll_mod
from hierlin_stan.samplers.log_likelihood import add_log_likelihood
from hierlin_stan.samplers.stan_glm import glm_inference_data, glm_priors
from hierlin_stan.utils.az import az

FORMULAS = [
    "y ~ x1 + x2 + (1 + x1 | g)",   # q = 2, correlated
    "y ~ x1 + (1 + x1 || g)",       # q = 2, independent
    "y ~ x1 + (1 | g)",             # q = 1
    "y ~ x1 + (1 + x1 + x2 | g)",   # q = 3
    "y ~ x1 + x2",                  # no group term: per group of another grouping
]


def _frame(sizes, seed=0, exact=False):
    """Groups of the given sizes (one-point groups allowed); group 1 has x1 = 0 throughout."""
    rng = np.random.default_rng(seed)
    labels = np.array([f"g{k:02d}" for k in range(len(sizes))])
    g = np.repeat(labels, sizes)
    n = g.size
    x1 = rng.normal(size=n)
    x2 = rng.uniform(-1, 2, size=n)
    x1[g == labels[1]] = 0.0
    codes = np.repeat(np.arange(len(sizes)), sizes)
    u = rng.normal(size=(len(sizes), 3))
    y = 1.0 + 0.5 * x1 - x2 + u[codes, 0] + u[codes, 1] * x1 + u[codes, 2] * x2
    if not exact:
        y = y + 0.3 * rng.normal(size=n)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g})


def _draws(d, n_draws, rng, sigma_range=(0.05, 1.0)):
    """Random beta, sigma, tau, Omega (correlated: from random covariances) per draw."""
    p, q = d.p, d.q
    beta = rng.normal(size=(n_draws, p))
    sigma = rng.uniform(*sigma_range, size=n_draws)
    tau = rng.uniform(0.3, 1.5, size=(n_draws, q))
    omega = None
    if d.correlated and q > 1:
        omega = np.empty((n_draws, q, q))
        for s in range(n_draws):
            a = rng.normal(size=(q, q))
            cov = a @ a.T + q * np.eye(q)
            sd = np.sqrt(np.diag(cov))
            omega[s] = cov / np.outer(sd, sd)
    return beta, sigma, tau, omega


def _dense_group(rows, labels, j, beta, sigma_u, sigma):
    """log MVN(y_j | X_j beta, sigma^2 I + Z_j Sigma Z_j') for group j, dense."""
    sel = rows.codes == j if labels is None else labels == j
    zj = rows.z[sel]
    cov = sigma * sigma * np.eye(int(sel.sum())) + zj @ sigma_u @ zj.T
    return float(stats.multivariate_normal(rows.x[sel] @ beta, cov).logpdf(rows.y[sel]))


@pytest.mark.parametrize("formula", FORMULAS)
def test_group_loglik_equals_dense_mvn_per_group(formula):
    # sizes: one-point groups (k_j = n_j), a two-point group (= q for q = 2), the all-zero-x1 group
    df = _frame([6, 5, 1, 2, 9, 1, 4, 12], seed=3)
    d = design(df, formula)
    rng = np.random.default_rng(8)
    beta, sigma, tau, omega = _draws(d, 7, rng)
    if d.q:
        sigma_u = covariance_draws(tau, omega)
        got = group_loglik(d, beta, sigma, sigma_u)
        labels, j_count = None, d.J
    else:  # a pooled model, per group of column g: the grouping a comparison would give it
        sigma_u = np.zeros((7, 0, 0))
        names, codes = np.unique(df["g"].to_numpy(), return_inverse=True)
        grouping = Grouping("g", names, codes)
        got = group_loglik(d, beta, sigma, None, group_residuals(d, grouping))
        labels, j_count = codes, names.size
    assert got.shape == (7, j_count)
    rows = d.row_data()
    for s in range(7):
        want = np.array([_dense_group(rows, labels, j, beta[s], sigma_u[s], sigma[s]) for j in range(j_count)])
        np.testing.assert_allclose(got[s], want, rtol=1e-10, atol=1e-10)
        if d.q:  # and the groups sum to the marginal likelihood the Stan program uses
            total = marginal_loglik(d.stats, beta[s], sigma_u[s], float(sigma[s]))
            assert abs(got[s].sum() - total) <= 1e-10 * abs(total)


def test_group_loglik_stays_finite_and_exact_for_small_sigma():
    """Data that fit exactly and a small sigma: the per-group residual quadratic does not cancel badly."""
    df = _frame([6, 5, 1, 8, 7], seed=5, exact=True)
    d = design(df, "y ~ x1 + x2 + (1 + x1 + x2 | g)")
    rng = np.random.default_rng(2)
    beta, sigma, tau, omega = _draws(d, 4, rng, sigma_range=(0.01, 0.02))
    beta = d.stats.residual.beta_star + 1e-3 * rng.normal(size=beta.shape)
    sigma_u = covariance_draws(tau, omega)
    got = group_loglik(d, beta, sigma, sigma_u)
    rows = d.row_data()
    for s in range(4):
        want = np.array([_dense_group(rows, None, j, beta[s], sigma_u[s], sigma[s]) for j in range(d.J)])
        np.testing.assert_allclose(got[s], want, rtol=1e-8)


def test_pointwise_loglik_equals_scipy_normal():
    df = _frame([6, 5, 1, 9], seed=1)
    d = design(df, "y ~ x1 + (1 + x1 | g)")
    rng = np.random.default_rng(4)
    beta, sigma, *_ = _draws(d, 5, rng)
    u = rng.normal(size=(5, d.J, d.q))
    got = pointwise_loglik(d, beta, sigma, u)
    rows = d.row_data()
    for s in range(5):
        mu = rows.x @ beta[s] + (u[s][rows.codes] * rows.z).sum(axis=1)
        np.testing.assert_allclose(got[s], stats.norm(mu, sigma[s]).logpdf(rows.y), rtol=1e-12)
    with pytest.raises(ValueError, match="keep_u=True"):
        pointwise_loglik(d, beta, sigma, None)


def _fake_fit(d, chains=2, draws=50, seed=0, keep_u=True):
    """A fit-shaped InferenceData of d with random draws (what glm_inference_data builds from Stan's output)."""
    rng = np.random.default_rng(seed)
    beta, sigma, tau, omega = _draws(d, chains * draws, rng)
    variables = {"beta": beta.reshape(chains, draws, d.p), "sigma": sigma.reshape(chains, draws),
                 "tau": tau.reshape(chains, draws, d.q)}
    if omega is not None:
        variables["Omega"] = omega.reshape(chains, draws, d.q, d.q)
    if keep_u:
        variables["u"] = rng.normal(size=(chains, draws, d.J, d.q))
    return glm_inference_data(variables, {}, d, glm_priors(d, None), {"sampler": "test"})


def test_log_likelihood_group_names_dims_and_loo():
    df = _frame([6, 5, 1, 9, 7, 8], seed=2)
    d = design(df, "y ~ x1 + (1 + x1 | g)")
    idata = _fake_fit(d)
    written = add_log_likelihood(idata, d)
    assert written == ["y", "y_group"]
    ll = idata.log_likelihood
    assert ll["y"].dims == ("chain", "draw", "obs") and ll["y"].shape == (2, 50, d.N)
    assert ll["y_group"].dims == ("chain", "draw", "group")
    assert list(ll["y_group"]["group"].values) == list(d.group_labels)
    assert "leave-one-group-out" in idata.attrs["log_likelihood"]
    assert np.isfinite(ll["y"].values).all() and np.isfinite(ll["y_group"].values).all()
    # ArviZ reads either, by name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random draws, not a posterior: k are what they are
        obs = az.loo(idata, var_name="y")
        grp = az.loo(idata, var_name="y_group")
    assert obs.n_data_points == d.N and grp.n_data_points == d.J


def test_log_likelihood_pooled_model_per_group_is_the_sum_of_its_observations():
    df = _frame([6, 5, 1, 9], seed=6)
    d = design(df, "y ~ x1 + x2")
    idata = _fake_fit(d, keep_u=False)
    names, codes = np.unique(df["g"].to_numpy(), return_inverse=True)
    assert add_log_likelihood(idata, d, grouping=Grouping("g", names, codes)) == ["y", "y_group"]
    per_obs = idata.log_likelihood["y"].values
    sums = np.stack([per_obs[..., codes == j].sum(axis=-1) for j in range(names.size)], axis=-1)
    np.testing.assert_allclose(idata.log_likelihood["y_group"].values, sums, rtol=1e-10)
    # without a grouping a pooled model has no groups: only y, and asking for y_group says why
    bare = _fake_fit(d, keep_u=False)
    assert add_log_likelihood(bare, d) == ["y"]
    with pytest.raises(ValueError, match="no grouping factor.*by='group'"):
        add_log_likelihood(bare, d, "y_group")


def test_log_likelihood_size_limit_warns_and_explicit_requests(monkeypatch):
    df = _frame([6, 5, 1, 9], seed=2)
    d = design(df, "y ~ x1 + (1 | g)")
    monkeypatch.setattr(ll_mod, "MAX_LOGLIK_VALUES", 500)  # 100 draws x 21 obs = 2100 > 500 >= 100 x 4 groups
    idata = _fake_fit(d)
    with pytest.warns(UserWarning, match=r"not writing the log likelihood 'y' \(100 draws x 21 observations.*"
                                         r"log_likelihood='y'.*'y_group'"):
        assert add_log_likelihood(idata, d) == ["y_group"]
    assert add_log_likelihood(idata, d, "y") == ["y"]  # asked by name: any size, merged with what is there
    assert set(idata.log_likelihood.data_vars) == {"y", "y_group"}
    no_u = _fake_fit(d, keep_u=False)
    with pytest.raises(ValueError, match="keep_u=True"):
        add_log_likelihood(no_u, d, "y")
    assert add_log_likelihood(no_u, d, True) == ["y_group"]  # True: what is possible
    with pytest.raises(ValueError, match="log_likelihood='yes' is not understood"):
        add_log_likelihood(no_u, d, "yes")


def test_grouping_of_another_factor_is_refused():
    df = _frame([6, 5, 1, 9], seed=2)
    d = design(df, "y ~ x1 + (1 | g)")
    own = model_grouping(d)
    assert list(own.labels) == list(d.group_labels) and own.codes.size == d.N
    other = Grouping("h", own.labels, own.codes)
    with pytest.raises(ValueError, match="groups by 'g'.*cannot be taken by 'h'"):
        group_residuals(d, other)
