"""The numpy log densities against Stan's own lp__ (real PyStan engine), and their transforms."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import hierlin_stan as hs
from hierlin_stan.samplers import logdensity
from hierlin_stan.engines import get_engine
from hierlin_stan.samplers.logdensity import KINDS, Target
from hierlin_stan.model.priors import Priors

PRIORS = ["notebook", "weakly_informative"]
# sigma_b half-normal, eps uniform: the code path where the two scales differ
MIXED = Priors(sigma_b_family="halfnormal", sigma_b_scale=3.0, eps_family="uniform", eps_scale=8.0)


def odd_data() -> hs.Dataset:
    """Groups of 5, 1 and 3 points, a group whose x are all 0, a one-point group at x = 0, an empty group."""
    return hs.Dataset.from_arrays(
        x=[1.0, 2.5, 3.0, 7.0, 9.0, 4.0, 0.5, 6.0, 8.0, 0.0, 0.0, 0.0],
        y=[3.1, 6.2, 8.3, 16.0, 19.5, 10.0, 2.9, 12.8, 18.1, 1.5, 2.4, 1.7],
        group=[1, 1, 1, 1, 1, 2, 3, 3, 3, 4, 4, 5],
        n_groups=6,
    )


def random_points(target: Target, rng: np.random.Generator, n_uniform: int = 100, n_near: int = 20) -> np.ndarray:
    """Uniform(-2, 2) points (Stan's inits), plus points near the posterior.

    Near the posterior the terms of the log density nearly cancel (small residuals,
    small eps): the harder test of rounding.
    """
    pts = rng.uniform(-2.0, 2.0, size=(n_uniform, target.dim))
    near = np.empty((n_near, target.dim))
    near[:, 0] = rng.normal(2.0, 0.3, n_near)
    near[:, 1] = rng.normal(2.0, 0.2, n_near)
    params = {
        "a": near[:, 0],
        "mu_b": near[:, 1],
        "sigma_b": rng.uniform(0.5, 1.5, n_near),
        "eps": np.exp(rng.uniform(np.log(0.02), np.log(1.0), n_near)),
    }
    ds = target.dataset
    true_b = ds.true_b if ds.true_b is not None else np.full(ds.n_groups, 2.0)
    b = true_b + rng.normal(0.0, 0.05, size=(n_near, ds.n_groups))
    if target.kind == "centered":
        params["b"] = b
    elif target.kind == "noncentered":
        params["z"] = (b - params["mu_b"][:, None]) / params["sigma_b"][:, None]
    return np.vstack([pts, target.unconstrain(params)])


def stan_points(target: Target, theta: np.ndarray) -> list[dict]:
    """The constrained version of each row, as the engines take them."""
    values = target.constrain(theta)
    return [
        {
            name: (values[name][i].tolist() if values[name].ndim == 2 else float(values[name][i]))
            for name in target.param_names
        }
        for i in range(theta.shape[0])
    ]


def assert_matches_stan(target: Target, theta: np.ndarray, engine_name: str = "pystan") -> None:
    engine = get_engine(engine_name, verbose=False)
    stan_lp = engine.log_density_many(target.kind, target.stan_data(), stan_points(target, theta), jacobian=True)
    assert np.all(np.isfinite(stan_lp))
    np.testing.assert_allclose(target.log_density(theta), stan_lp, rtol=1e-9, atol=0)
    batch = target.batch_log_density(theta.shape[0])
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(batch(theta), stan_lp, rtol=1e-9, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("priors", PRIORS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data_name", ["default", "grouped"])
def test_log_density_equals_stan(kind, priors, data_name, default_data, grouped_data):
    dataset = default_data if data_name == "default" else grouped_data
    target = Target(dataset, kind, priors)
    theta = random_points(target, np.random.default_rng(zlib.crc32(f"{kind} {priors} {data_name}".encode())))
    assert theta.shape == (120, target.dim)
    assert_matches_stan(target, theta)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_log_density_equals_stan_odd_groups_and_mixed_priors(kind):
    for priors in ("notebook", MIXED):
        target = Target(odd_data(), kind, priors)
        theta = random_points(target, np.random.default_rng(3), n_uniform=40, n_near=10)
        assert_matches_stan(target, theta)


@pytest.mark.slow
def test_direct_kernel_equals_stan_when_problem_is_large(monkeypatch, default_data):
    # Large problems use the O(N) formulas instead of the dense residual matrix.
    monkeypatch.setattr(logdensity, "_FUSED_MAX", 0)
    target = Target(default_data, "centered")
    batch = target.batch_log_density(4)
    assert type(batch) is logdensity.BatchLogDensity
    theta = random_points(target, np.random.default_rng(4), n_uniform=20, n_near=20)
    assert_matches_stan(target, theta)


@pytest.mark.slow
def test_log_density_equals_stan_on_every_engine(engine_name, grouped_data):
    # The same Stan C++ behind CmdStan and PyStan: a few points per engine.
    for kind in ("centered", "marginal"):
        target = Target(grouped_data, kind, "weakly_informative")
        theta = random_points(target, np.random.default_rng(5), n_uniform=3, n_near=2)
        assert_matches_stan(target, theta, engine_name)


@pytest.mark.parametrize("priors", PRIORS + [MIXED])
@pytest.mark.parametrize("kind", KINDS)
def test_constrain_unconstrain_round_trip(kind, priors, grouped_data):
    target = Target(grouped_data, kind, priors)
    theta = np.random.default_rng(6).uniform(-6, 6, size=(50, target.dim))
    values = target.constrain(theta)
    assert set(values) >= set(target.param_names)
    assert np.all(values["sigma_b"] > 0) and np.all(values["eps"] > 0)
    if priors == "notebook":
        assert np.all(values["sigma_b"] < 100) and np.all(values["eps"] < 10)
    back = target.unconstrain(values)
    np.testing.assert_allclose(back, theta, rtol=1e-9, atol=1e-9)
    # one point: scalars in, one row out
    single = target.constrain(theta[0])
    assert isinstance(single["a"], float)
    np.testing.assert_allclose(target.unconstrain(single), theta[0], rtol=1e-9, atol=1e-9)
    assert isinstance(target.log_density(theta[0]), float)


def test_transforms_are_stans(grouped_data):
    # uniform(0, U): U inv_logit(u); half-normal: exp(u)
    nb = Target(grouped_data, "marginal", "notebook")
    c = nb.constrain(np.array([0.0, 0.0, 0.0, np.log(3.0)]))
    assert c["sigma_b"] == pytest.approx(50.0) and c["eps"] == pytest.approx(10 * 0.75)
    wi = Target(grouped_data, "marginal", "weakly_informative")
    c = wi.constrain(np.array([0.0, 0.0, np.log(2.0), -1.0]))
    assert c["sigma_b"] == pytest.approx(2.0) and c["eps"] == pytest.approx(np.exp(-1.0))
    assert nb.names == ("a", "mu_b", "sigma_b", "eps")
    full = Target(grouped_data, "centered")
    assert full.dim == 4 + grouped_data.n_groups and full.names[4] == "b[1]" and full.names[-1] == "b[10]"
    assert Target(grouped_data, "noncentered").names[4] == "z[1]"


def test_marginal_matches_direct_sum_over_groups(grouped_data):
    # Independent of Stan: integrating b out of the centered density numerically
    # (Gauss-Hermite in each b_j) gives the marginal density, Jacobians and all.
    pri = "weakly_informative"
    marg = Target(grouped_data, "marginal", pri)
    cent = Target(grouped_data, "centered", pri)
    a, mu_b, sigma_b, eps = 1.8, 2.1, 0.9, 0.6
    theta = np.array([a, mu_b, np.log(sigma_b), np.log(eps)])
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    # b_j = m_j + s_j * node around each conditional mean (textbook conjugate form)
    sums = grouped_data.group_sums()
    precision = 1 / sigma_b**2 + sums["sum_xx"] / eps**2
    cond_mean = (mu_b / sigma_b**2 + (sums["sum_xy"] - a * sums["sum_x"]) / eps**2) / precision
    cond_sd = 1 / np.sqrt(precision)
    j = grouped_data.n_groups
    total = 0.0
    base = np.tile(np.concatenate([theta, cond_mean]), (nodes.size, 1))
    lp_base = cent.log_density(base[:1])[0]
    for g in range(j):
        pts = base.copy()
        pts[:, 4 + g] = cond_mean[g] + cond_sd[g] * nodes
        # ratio to the base point isolates group g's contribution
        vals = cent.log_density(pts) - lp_base + nodes**2 / 2
        total += np.log(np.sum(weights * np.exp(vals)) * cond_sd[g])
    np.testing.assert_allclose(marg.log_density(theta), lp_base + total, rtol=1e-8)


def test_draw_b_is_the_conditional_posterior(grouped_data):
    target = Target(grouped_data, "marginal", "weakly_informative")
    a, mu_b, sigma_b, eps = 1.7, 2.2, 0.8, 0.4
    theta = target.unconstrain({"a": a, "mu_b": mu_b, "sigma_b": sigma_b, "eps": eps})
    draws = target.draw_b(np.tile(theta, (20000, 1)), np.random.default_rng(1))
    assert draws.shape == (20000, grouped_data.n_groups)
    # textbook conjugate form (not the stable one the code uses)
    sums = grouped_data.group_sums()
    precision = 1 / sigma_b**2 + sums["sum_xx"] / eps**2
    mean = (mu_b / sigma_b**2 + (sums["sum_xy"] - a * sums["sum_x"]) / eps**2) / precision
    sd = 1 / np.sqrt(precision)
    mcse = sd / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * mcse)
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.03)
    # odd groups: the all-zero-x group and the empty group keep the prior N(mu_b, sigma_b)
    odd = Target(odd_data(), "marginal")
    th = odd.unconstrain({"a": a, "mu_b": mu_b, "sigma_b": sigma_b, "eps": eps})
    b = odd.draw_b(np.tile(th, (20000, 1)), np.random.default_rng(2))
    for g in (3, 4):
        assert abs(b[:, g].mean() - mu_b) < 5 * sigma_b / np.sqrt(20000)
        assert b[:, g].std() == pytest.approx(sigma_b, rel=0.03)


def test_draw_b_stable_as_eps_vanishes(default_data):
    # one point per group and eps -> 0: b_i -> (y_i - a) / x_i exactly
    target = Target(default_data, "marginal")
    theta = target.unconstrain({"a": 2.0, "mu_b": 2.0, "sigma_b": 1.0, "eps": 1e-12})
    b = target.draw_b(theta, np.random.default_rng(0))
    assert b.shape == (default_data.n,)
    np.testing.assert_allclose(b, (default_data.y - 2.0) / default_data.x, rtol=1e-8)
    assert np.isfinite(target.log_density(theta))


def test_errors_name_the_bad_value(grouped_data):
    with pytest.raises(ValueError, match="kind='full'.*centered"):
        Target(grouped_data, "full")
    with pytest.raises(ValueError, match="Dataset"):
        Target({"x": [1, 2]}, "marginal")
    target = Target(grouped_data, "marginal")
    with pytest.raises(ValueError, match=r"shape \(3, 5\).*\(k, 4\)"):
        target.log_density(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="eps=12.0 is outside its support.*\\(0, 10\\)"):
        target.unconstrain({"a": 0, "mu_b": 0, "sigma_b": 1, "eps": 12.0})
    with pytest.raises(ValueError, match="sigma_b=-1.0"):
        target.unconstrain({"a": 0, "mu_b": 0, "sigma_b": -1.0, "eps": 1})
    with pytest.raises(ValueError, match="lacks \\['b'\\]"):
        Target(grouped_data, "centered").unconstrain({"a": 0, "mu_b": 0, "sigma_b": 1, "eps": 1})
    with pytest.raises(ValueError, match="draw_b is for the marginal target"):
        Target(grouped_data, "centered").draw_b(np.zeros(14), np.random.default_rng(0))
    with pytest.raises(ValueError, match="k=0"):
        target.batch_log_density(0)
