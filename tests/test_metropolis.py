"""The numpy adaptive Metropolis sampler: correctness, reproducibility, agreement with NUTS, output shape."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

from hierlin_stan import diagnostics, plots  # noqa: E402
from hierlin_stan.samplers.logdensity import Target  # noqa: E402
from hierlin_stan.samplers.metropolis import _rwm, _schedule, metropolis  # noqa: E402

HYPER = ["a", "mu_b", "sigma_b", "eps"]


def gaussian(mean: np.ndarray, cov: np.ndarray):
    """Batched log density of N(mean, cov) (unnormalised)."""
    prec = np.linalg.inv(cov)

    def logp(theta: np.ndarray) -> np.ndarray:
        d = theta - mean
        return -0.5 * np.einsum("ij,jk,ik->i", d, prec, d)

    return logp


def mcse_of_mean(values: np.ndarray) -> float:
    """MCSE of the mean of ``values`` (chain, draw), from ArviZ's bulk ESS."""
    ess = float(az.ess(values, method="mean"))
    return float(values.std(ddof=1) / np.sqrt(ess))


@pytest.fixture(scope="module")
def gaussian_run():
    rng = np.random.default_rng(0)
    dim = 5
    a = rng.normal(size=(dim, dim))
    cov = a @ a.T + 0.5 * np.eye(dim)
    cov[0] *= 30.0  # badly scaled and correlated: the adaptation has work to do
    cov[:, 0] *= 30.0
    mean = rng.normal(0, 3, size=dim)
    init = rng.uniform(-2, 2, size=(4, dim))
    result = _rwm(gaussian(mean, cov), init, warmup=5000, draws=20000, rng=np.random.default_rng(1))
    return mean, cov, result


def test_rwm_recovers_gaussian_mean_and_covariance(gaussian_run):
    mean, cov, result = gaussian_run
    draws = result.draws  # (chain, draw, dim)
    dim = mean.size
    assert draws.shape == (4, 20000, dim)
    for i in range(dim):
        x = draws[:, :, i]
        err = abs(x.mean() - mean[i])
        assert err < 4 * mcse_of_mean(x), f"mean[{i}] off by {err}"
    for i in range(dim):
        for j in range(i, dim):
            prod = (draws[:, :, i] - mean[i]) * (draws[:, :, j] - mean[j])
            err = abs(prod.mean() - cov[i, j])
            assert err < 4 * mcse_of_mean(prod), f"cov[{i},{j}] off by {err} (true {cov[i, j]:.3g})"
    # the adapted proposal learnt the target's shape, and the scale its acceptance
    np.testing.assert_allclose(np.diag(result.cov), np.diag(cov), rtol=0.35)
    assert 0.18 < result.mean_accept_prob < 0.30
    assert result.cov_updates >= 3
    # sampling phase: the proposal is frozen, lp is the log density at the kept draw
    np.testing.assert_allclose(result.lp, gaussian(mean, cov)(draws.reshape(-1, dim)).reshape(4, -1), rtol=1e-12)


def test_rwm_thinning_keeps_every_thin_th_draw():
    logp = gaussian(np.zeros(2), np.eye(2))
    init = np.zeros((3, 2))
    full = _rwm(logp, init, warmup=200, draws=1000, thin=1, rng=np.random.default_rng(7), block=128)
    thin = _rwm(logp, init, warmup=200, draws=1000, thin=3, rng=np.random.default_rng(7), block=128)
    assert thin.draws.shape == (3, 334, 2)
    np.testing.assert_array_equal(thin.draws, full.draws[:, ::3])
    np.testing.assert_array_equal(thin.lp, full.lp[:, ::3])
    np.testing.assert_array_equal(thin.accept_prob, full.accept_prob[:, ::3])


def test_rwm_rejects_nonfinite_proposals():
    # a half-space target: every accepted state stays inside it
    def logp(theta):
        return np.where(theta[:, 0] > 0, -0.5 * np.sum(theta**2, axis=1), -np.inf)

    result = _rwm(logp, np.full((2, 2), 0.5), warmup=300, draws=2000, rng=np.random.default_rng(3))
    assert np.all(result.draws[:, :, 0] > 0) and np.all(np.isfinite(result.lp))


def test_schedule_windows_fit_inside_warmup():
    for warmup in (150, 1000, 20000, 123457):
        init_end, ends = _schedule(warmup)
        assert 0 < init_end < ends[0] and ends == sorted(ends)
        assert ends[-1] == warmup - int(0.1 * warmup)
    assert _schedule(100) == (100, [])


def test_same_seed_same_draws_other_seed_differs(grouped_data):
    kw = dict(draws=400, warmup=300, chains=2, show_progress=False)
    for target in ("marginal", "full"):
        one = metropolis(grouped_data, target, seed=5, **kw)
        two = metropolis(grouped_data, target, seed=5, **kw)
        three = metropolis(grouped_data, target, seed=6, **kw)
        for name in HYPER + ["b"]:
            np.testing.assert_array_equal(one.posterior[name].values, two.posterior[name].values)
        np.testing.assert_array_equal(one.sample_stats["lp"].values, two.sample_stats["lp"].values)
        assert not np.array_equal(one.posterior["a"].values, three.posterior["a"].values)
        assert not np.array_equal(one.posterior["b"].values, three.posterior["b"].values)


@pytest.mark.slow
def test_marginal_metropolis_agrees_with_nuts(engine_name, default_data, fit_cache):
    nuts = fit_cache(engine_name, "default", default_data, "marginal")
    mh = metropolis(default_data, "marginal", draws=40000, warmup=10000, seed=3, show_progress=False)
    s_nuts = az.summary(nuts, var_names=HYPER, round_to="none")
    s_mh = az.summary(mh, var_names=HYPER, round_to="none")
    assert s_mh["r_hat"].max() < 1.01 and s_mh["ess_bulk"].min() > 2000
    diff = (s_nuts["mean"] - s_mh["mean"]).abs()
    tol = 4 * np.sqrt(s_nuts["mcse_mean"] ** 2 + s_mh["mcse_mean"] ** 2)
    assert (diff <= tol).all(), f"means differ by {diff.to_dict()} > 4 combined MCSE {tol.to_dict()}"
    # the exact b draws after Metropolis agree with NUTS's generated b (every 8th
    # Metropolis draw: the MCSE stays valid and the summary of 100 slopes fast)
    sb_nuts = az.summary(nuts, var_names=["b"], round_to="none")
    sb_mh = az.summary(mh.posterior[["b"]].isel(draw=slice(None, None, 8)), round_to="none")
    z = (sb_nuts["mean"] - sb_mh["mean"]).abs() / np.sqrt(sb_nuts["mcse_mean"] ** 2 + sb_mh["mcse_mean"] ** 2)
    assert z.max() <= 4, f"b means differ by {z.max():.2f} combined MCSE ({z.idxmax()})"


@pytest.fixture(scope="module")
def full_idata(default_data):
    return metropolis(default_data, "full", draws=600, warmup=1000, thin=2, seed=11, show_progress=False)


def test_output_has_the_package_shape(full_idata, default_data, tmp_path):
    idata = az.from_netcdf(full_idata.to_netcdf(str(tmp_path / "mh.nc")))  # attrs are netCDF-safe
    post = idata.posterior
    assert set(post.data_vars) == {"a", "mu_b", "sigma_b", "eps", "b"}
    for name in HYPER:
        assert post[name].dims == ("chain", "draw") and post[name].shape == (4, 300)
    assert post["b"].dims == ("chain", "draw", "group") and post["b"].shape == (4, 300, default_data.n_groups)
    np.testing.assert_array_equal(post["group"].values, np.arange(1, default_data.n_groups + 1))
    assert set(idata.sample_stats.data_vars) == {"lp", "acceptance_rate"}
    acc = idata.sample_stats["acceptance_rate"].values
    assert acc.shape == (4, 300) and np.all((acc >= 0) & (acc <= 1))
    np.testing.assert_array_equal(idata.observed_data["y"].values, default_data.y)
    np.testing.assert_array_equal(idata.constant_data["x"].values, default_data.x)
    attrs = idata.attrs
    expected = {
        "sampler": "metropolis", "engine": "numpy", "parameterization": "full", "seed": 11,
        "chains": 4, "draws": 600, "warmup": 1000, "thin": 2, "compile_seconds": 0.0,
        "true_a": 2.0, "true_sigma_b": 1.0,
    }
    for key, value in expected.items():
        assert attrs[key] == value, key
    for key in ("warmup_seconds", "sampling_seconds", "wall_seconds", "iterations_per_second",
                "proposal_scale", "acceptance_mean", "priors", "hierlin_stan_version"):
        assert key in attrs, key
    assert attrs["sampling_seconds"] > 0 and attrs["iterations_per_second"] > 0
    # one vectorised loop advances every chain: its time is all chains' work
    assert attrs["sampling_chain_seconds"] == attrs["sampling_seconds"]
    assert 0 < attrs["acceptance_mean"] < 1 and attrs["proposal_scale"] > 0
    assert attrs["acceptance_mean"] == pytest.approx(float(acc.mean()), abs=0.1)


def test_lp_is_stans_log_density_at_the_draw(full_idata, default_data):
    # the stored lp is the log density of the stored (constrained) draw
    target = Target(default_data, "centered")
    post = full_idata.posterior
    params = {k: post[k].values.reshape(-1) for k in HYPER}
    params["b"] = post["b"].values.reshape(-1, default_data.n_groups)
    lp = target.log_density(target.unconstrain(params))
    np.testing.assert_allclose(lp, full_idata.sample_stats["lp"].values.reshape(-1), rtol=1e-10)


def test_diagnostics_and_plots_run_on_metropolis_output(full_idata):
    table = diagnostics.summary(full_idata)
    assert list(table.index) == HYPER and np.all(table["ess_bulk_per_s"] > 0)
    stats = diagnostics.sampler_stats(full_idata)
    assert stats["sampler"] == "metropolis" and stats["divergences"] is None and stats["ebfmi"] is None
    assert stats["n_chains"] == 4 and stats["n_draws"] == 300
    rec = diagnostics.recovery(full_idata)
    assert list(rec.index) == ["a", "mu_b", "sigma_b"]
    assert "metropolis" in diagnostics.verdict(full_idata)
    axes = plots.plot_trace(full_idata)
    assert axes.shape == (4, 2)
    plt.close("all")


def test_marginal_output_and_keep_b(grouped_data):
    kw = dict(draws=200, warmup=200, chains=3, seed=2, show_progress=False)
    idata = metropolis(grouped_data, "marginal", **kw)
    assert idata.posterior["b"].shape == (3, 200, grouped_data.n_groups)
    assert idata.attrs["parameterization"] == "marginal" and idata.attrs["keep_b"] == 1
    no_b = metropolis(grouped_data, "marginal", keep_b=False, **kw)
    assert "b" not in no_b.posterior
    np.testing.assert_array_equal(no_b.posterior["a"].values, idata.posterior["a"].values)
    diag = metropolis(grouped_data, "marginal", adapt="diag", **kw)
    assert diag.attrs["adaptation"].startswith("diag")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "centered"}, r"target='centered' is unknown; use one of \['full', 'marginal'\]"),
        ({"chains": 0}, r"chains=0 must be an integer >= 1"),
        ({"draws": 1.5}, r"draws=1.5 must be an integer >= 1"),
        ({"warmup": -3}, r"warmup=-3 must be an integer >= 1"),
        ({"thin": "2"}, r"thin='2' must be an integer >= 1"),
        ({"seed": -1}, r"seed=-1 is out of range"),
        ({"seed": 1.5}, r"seed=1.5 is not an integer"),
        ({"priors": "vague"}, r"priors='vague' is not a preset"),
        ({"adapt": "dense"}, r"adapt='dense' is unknown; use one of \['full', 'diag'\]"),
        ({"keep_b": "yes"}, r"keep_b='yes' must be True, False or None"),
    ],
)
def test_bad_arguments_raise_value_errors(grouped_data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        metropolis(grouped_data, **{"draws": 10, "warmup": 10, "show_progress": False, **kwargs})


def test_bad_dataset_raises():
    with pytest.raises(ValueError, match="dataset must be a hierlin_stan.Dataset"):
        metropolis([1.0, 2.0], "marginal")
