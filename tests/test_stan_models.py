"""The Stan programs through the real engines: densities, fits, agreement, simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import hierlin_stan as hs
from hierlin_stan.engines import get_engine
from hierlin_stan.model.priors import Priors, resolve_priors

pytestmark = pytest.mark.slow
HYPER = ("a", "mu_b", "sigma_b", "eps")


def dense_marginal_log_density(ds: hs.Dataset, pri: Priors, a, mu_b, sigma_b, eps) -> float:
    """Reference: priors + Jacobians + each group's dense MVN (no tricks)."""
    total = stats.norm.logpdf(a, pri.a_loc, pri.a_scale) + stats.norm.logpdf(mu_b, pri.mu_b_loc, pri.mu_b_scale)
    for value, family, scale in ((sigma_b, pri.sigma_b_family, pri.sigma_b_scale), (eps, pri.eps_family, pri.eps_scale)):
        if family == "uniform":
            total += -np.log(scale) + np.log(value) + np.log(scale - value) - np.log(scale)
        else:
            total += stats.halfnorm.logpdf(value, 0, scale) + np.log(value)
    for j in range(1, ds.n_groups + 1):
        m = ds.group == j
        if not m.any():
            continue
        x = ds.x[m]
        cov = eps**2 * np.eye(x.size) + sigma_b**2 * np.outer(x, x)
        total += stats.multivariate_normal.logpdf(ds.y[m], a + mu_b * x, cov)
    return float(total)


@pytest.mark.parametrize("priors", ["notebook", "weakly_informative"])
def test_marginal_log_density_equals_dense_mvn(engine_name, priors):
    # groups of 5, 1 and 3 points, a group whose x are all 0, a one-point group at
    # x = 0 (its (y - a)^2 / eps^2 term must stay) and an empty group 7
    ds = hs.Dataset.from_arrays(
        x=[1.0, 2.5, 3.0, 7.0, 9.0, 4.0, 0.5, 6.0, 8.0, 0.0, 0.0, 0.0],
        y=[3.1, 6.2, 8.3, 16.0, 19.5, 10.0, 2.9, 12.8, 18.1, 1.5, 2.4, 1.7],
        group=[1, 1, 1, 1, 1, 2, 3, 3, 3, 4, 4, 6],
        n_groups=7,
    )
    pri = resolve_priors(priors)
    engine = get_engine(engine_name)
    rng = np.random.default_rng(0)
    points = [
        {"a": rng.normal(2, 1), "mu_b": rng.normal(2, 0.5), "sigma_b": rng.uniform(0.05, 3), "eps": rng.uniform(0.05, 3)}
        for _ in range(20)
    ]
    stan_lp = engine.log_density_many("marginal", ds.to_stan_data("marginal", pri.to_stan_data()), points)
    ref = [dense_marginal_log_density(ds, pri, **p) for p in points]
    np.testing.assert_allclose(stan_lp, ref, rtol=1e-9)


def test_marginal_log_density_finite_as_eps_vanishes(engine_name, default_data):
    engine = get_engine(engine_name)
    data = default_data.to_stan_data("marginal", Priors().to_stan_data())
    point = {"a": 2.0, "mu_b": 2.0, "sigma_b": 1.0}
    lps = engine.log_density_many("marginal", data, [dict(point, eps=e) for e in (1e-3, 1e-6, 1e-9)], jacobian=False)
    assert np.all(np.isfinite(lps))
    # with one point per group eps only enters through eps^2 + sigma_b^2 x^2 (and its
    # prior is flat): without the Jacobian the density is flat as eps -> 0
    assert abs(lps[1] - lps[2]) < 1e-6


def test_default_data_marginal_fit_is_clean(engine_name, default_data, fit_cache):
    idata = fit_cache(engine_name, "default", default_data, "marginal")
    import arviz as az

    summ = az.summary(idata, var_names=list(HYPER), round_to="none")
    assert int(idata.sample_stats["diverging"].sum()) == 0
    assert summ["r_hat"].max() <= 1.01
    assert summ["ess_bulk"].min() >= 1000
    assert idata.posterior["b"].shape == (4, 1000, 100)
    assert idata.attrs["engine"] == engine_name and idata.attrs["parameterization"] == "marginal"
    for key in ("compile_seconds", "warmup_seconds", "sampling_seconds", "seed", "stan", "true_a"):
        assert key in idata.attrs
    assert idata.attrs["sampling_seconds"] > 0
    # ESS per second divides by the work summed over the 4 chains, not by the slowest chain
    assert idata.attrs["sampling_seconds"] < idata.attrs["sampling_chain_seconds"] <= 4 * idata.attrs["sampling_seconds"]


def test_centered_fit_reports_divergences(engine_name, default_data, fit_cache):
    idata = fit_cache(engine_name, "default", default_data, "centered")
    # the funnel in eps: the centered program diverges on the notebook's data
    assert int(idata.sample_stats["diverging"].sum()) > 0


def _agree(idata_a, idata_b, names, k=4.0):
    import arviz as az

    sa = az.summary(idata_a, var_names=names, round_to="none")
    sb = az.summary(idata_b, var_names=names, round_to="none")
    diff = (sa["mean"] - sb["mean"]).abs()
    tol = k * np.sqrt(sa["mcse_mean"] ** 2 + sb["mcse_mean"] ** 2)
    return diff, tol


@pytest.mark.parametrize("reference, other", [("marginal", "centered"), ("marginal", "noncentered"),
                                              ("collapsed", "marginal"), ("collapsed", "centered")])
def test_parameterizations_agree_on_grouped_data(engine_name, grouped_data, fit_cache, reference, other):
    marg = fit_cache(engine_name, "grouped", grouped_data, reference)
    alt = fit_cache(engine_name, "grouped", grouped_data, other)
    diff, tol = _agree(marg, alt, list(HYPER))
    assert (diff <= tol).all(), f"means differ by {diff.to_dict()} > 4 combined MCSE {tol.to_dict()}"
    # the integrated programs' exact b draws match the sampled b
    diff_b, tol_b = _agree(marg, alt, ["b"])
    assert (diff_b <= tol_b).all(), f"b means differ: {diff_b.to_dict()} vs {tol_b.to_dict()}"


def test_same_seed_same_draws_other_seed_differs(engine_name, grouped_data):
    kw = dict(engine=engine_name, chains=2, draws=200, warmup=200, show_progress=False)
    one = hs.fit(grouped_data, seed=5, **kw)
    two = hs.fit(grouped_data, seed=5, **kw)
    three = hs.fit(grouped_data, seed=6, **kw)
    np.testing.assert_array_equal(one.posterior["a"].values, two.posterior["a"].values)
    np.testing.assert_array_equal(one.posterior["b"].values, two.posterior["b"].values)
    assert not np.array_equal(one.posterior["a"].values, three.posterior["a"].values)


def test_y_rep_on_request(engine_name, grouped_data):
    idata = hs.fit(grouped_data, engine=engine_name, chains=1, draws=100, warmup=200, seed=1,
                   y_rep=True, show_progress=False)
    assert idata.posterior["y_rep"].shape == (1, 100, grouped_data.n)
    # replicated data scatter around the observed: mean residual small relative to spread
    resid = idata.posterior["y_rep"].mean(("chain", "draw")).values - grouped_data.y
    assert abs(resid.mean()) < 3 * resid.std() / np.sqrt(grouped_data.n) + 0.5


def test_fixed_param_matches_numpy_simulator(engine_name):
    kw = dict(n=40, groups=[10, 30], eps=0.7, sigma_b=1.3, a=-1.0, mu_b=0.5)
    stan_sets = hs.simulate_stan(200, seed=3, engine=engine_name, **kw)
    np_sets = [hs.simulate(seed=1000 + k, **kw) for k in range(200)]
    for name, get in (
        ("x", lambda d: d.x),
        ("b", lambda d: d.true_b),
        ("noise", lambda d: d.y - (d.truth["a"] + d.true_b[d.group - 1] * d.x)),
        ("y", lambda d: d.y),
    ):
        s = np.concatenate([get(d) for d in stan_sets])
        n = np.concatenate([get(d) for d in np_sets])
        p = stats.ks_2samp(s, n).pvalue
        assert p > 1e-3, f"{name}: Stan and numpy simulations differ (KS p = {p:.2g})"
    assert all(d.truth == {"a": -1.0, "mu_b": 0.5, "sigma_b": 1.3, "eps": 0.7} for d in stan_sets)


def test_fixed_param_draws_hyperparameters_from_prior(engine_name):
    pri = Priors.weakly_informative()
    sets = hs.simulate_stan(400, n=4, from_prior=True, priors=pri, seed=9, engine=engine_name)
    sigma_b = np.array([d.truth["sigma_b"] for d in sets])
    a = np.array([d.truth["a"] for d in sets])
    assert stats.kstest(sigma_b, stats.halfnorm(scale=pri.sigma_b_scale).cdf).pvalue > 1e-3
    assert stats.kstest(a, stats.norm(pri.a_loc, pri.a_scale).cdf).pvalue > 1e-3


def test_engine_auto_says_what_it_chose(capsys):
    engine = get_engine("auto", verbose=True)
    err = capsys.readouterr().err
    assert f"engine=auto -> {engine.name}" in err
    from tests.conftest import CMDSTAN_OK

    assert engine.name == ("cmdstan" if CMDSTAN_OK else "pystan")


def test_fit_inside_a_running_event_loop_as_in_jupyter(grouped_data):
    # Jupyter runs cells inside an asyncio loop; PyStan's client needs nest_asyncio there.
    import asyncio

    async def notebook_cell():
        return hs.fit(grouped_data, engine="pystan", chains=2, draws=100, warmup=150, seed=3, show_progress=False)

    idata = asyncio.run(notebook_cell())
    plain = hs.fit(grouped_data, engine="pystan", chains=2, draws=100, warmup=150, seed=3, show_progress=False)
    np.testing.assert_array_equal(idata.posterior["a"].values, plain.posterior["a"].values)
