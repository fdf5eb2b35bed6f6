"""The PyMC cross-check: same density as Stan, same posterior, same output shape.

Tests that need PyMC carry the ``slow`` and ``requires_pymc`` markers and are
skipped, with the reason and the install line, where PyMC is not installed. The
argument checks and the "PyMC missing" error need no PyMC and always run.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import hierlin_stan as hs
from hierlin_stan import diagnostics
from hierlin_stan.checks.crosscheck import cross_check, cross_check_report
from hierlin_stan.engines import get_engine
from hierlin_stan.model.priors import resolve_priors
from hierlin_stan.samplers import pymc_backend as pb

PYMC_OK, PYMC_WHY = pb.pymc_available()
NUTPIE_OK, NUTPIE_WHY = pb.nutpie_available()
requires_pymc = pytest.mark.skipif(
    not PYMC_OK, reason=f"PyMC cross-check not testable here: {PYMC_WHY}"
)
requires_nutpie = pytest.mark.skipif(
    not NUTPIE_OK, reason=f"nutpie (optional peer) not testable here: {NUTPIE_WHY}"
)
# PyTensor from pip warns at first use that it found no optimised BLAS.
_NO_BLAS_WARNING = pytest.mark.filterwarnings("ignore:.*BLAS:UserWarning")


def pymc_test(func):
    """Mark a test slow and requires_pymc, and skip it (saying why) without PyMC."""
    for mark in (_NO_BLAS_WARNING, requires_pymc, pytest.mark.requires_pymc, pytest.mark.slow):
        func = mark(func)
    return func


HYPER = ("a", "mu_b", "sigma_b", "eps")


def odd_groups() -> hs.Dataset:
    """Groups of 5, 1 and 3 points, one whose x are all 0, and an empty fifth group."""
    return hs.Dataset.from_arrays(
        x=[1.0, 2.5, 3.0, 7.0, 9.0, 4.0, 0.5, 6.0, 8.0, 0.0, 0.0],
        y=[3.1, 6.2, 8.3, 16.0, 19.5, 10.0, 2.9, 12.8, 18.1, 1.5, 2.4],
        group=[1, 1, 1, 1, 1, 2, 3, 3, 3, 4, 4],
        n_groups=5,
    )


def random_points(parameterization: str, n_groups: int, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {
            "a": rng.normal(2, 1),
            "mu_b": rng.normal(2, 0.5),
            "sigma_b": rng.uniform(0.05, 3),
            "eps": rng.uniform(0.05, 3),
        }
        if parameterization == "centered":
            point["b"] = rng.normal(2, 1, size=n_groups)
        elif parameterization == "noncentered":
            point["z"] = rng.normal(0, 1, size=n_groups)
        points.append(point)
    return points


# ------------------------------------------------------------------ without PyMC


def test_bad_sampler_and_parameterization_names_raise():
    ds = hs.simulate(n=10, seed=1)
    with pytest.raises(ValueError, match=r"sampler='hmc'.*\['nuts', 'metropolis', 'nutpie'\]"):
        pb.fit_pymc(ds, "centered", sampler="hmc")
    with pytest.raises(ValueError, match=r"parameterization='centred'.*'centered', 'noncentered', 'marginal'"):
        pb.fit_pymc(ds, "centred")
    with pytest.raises(ValueError, match="parameterization='funnel'"):
        pb.build_pymc_model(ds, "funnel")
    with pytest.raises(ValueError, match="chains=0"):
        pb.fit_pymc(ds, "marginal", chains=0)
    with pytest.raises(ValueError, match="Dataset"):
        pb.fit_pymc({"x": [1, 2]}, "marginal")


def test_missing_pymc_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)  # makes `import pymc` fail
    with pytest.raises(ImportError, match=r'pip install "hierlin_stan\[pymc\]"'):
        pb.build_pymc_model(hs.simulate(n=10, seed=1), "centered")
    ok, why = pb.pymc_available()
    assert not ok and "hierlin_stan[pymc]" in why


@pytest.mark.slow
def test_cross_check_arguments_are_checked(grouped_data, fit_cache):
    stan = fit_cache("pystan", "grouped", grouped_data, "marginal")
    with pytest.raises(ValueError, match="not in idata_b's posterior"):
        cross_check(stan, _as_idata(stan.posterior[["a"]]))
    with pytest.raises(ValueError, match="threshold"):
        cross_check(stan, stan, threshold=0)
    same = cross_check(stan, stan, var_names=("a", "b"))
    assert same.attrs["passed"] and (same["z"] == 0).all() and len(same) == 1 + grouped_data.n_groups


def _as_idata(dataset):
    import arviz as az

    return az.InferenceData(posterior=dataset)


# -------------------------------------------------------------- the log density


@pymc_test
@pytest.mark.parametrize("priors", ["notebook", "weakly_informative"])
@pytest.mark.parametrize("parameterization", ["centered", "noncentered", "marginal"])
def test_log_density_equals_stan(parameterization, priors):
    """PyMC's log density (with Jacobian) equals Stan's lp__ exactly, not just up to a constant.

    PyMC's value variables are unconstrained: ``sigma_b_interval__`` /
    ``eps_interval__`` for the uniform priors (logit of x / scale, the transform and
    Jacobian of Stan's ``<lower=0, upper=scale>``) and ``*_log__`` for the
    half-normal ones (Stan's ``<lower=0>``). Both programs normalise every density
    (Stan writes ``target +=``; PyMC always normalises), so no constant is left
    to cancel and the values themselves are compared.
    """
    ds = odd_groups()
    pri = resolve_priors(priors)
    model = pb.build_pymc_model(ds, parameterization, pri)
    points = random_points(parameterization, ds.n_groups, 12, seed=3)
    stan_lp = get_engine("pystan", verbose=False).log_density_many(
        parameterization, ds.to_stan_data(parameterization, pri.to_stan_data()), points
    )

    suffix = {"uniform": "_interval__", "halfnormal": "_log__"}
    expected_values = {"a", "mu_b", f"sigma_b{suffix[pri.sigma_b_family]}", f"eps{suffix[pri.eps_family]}"}
    expected_values |= {"centered": {"b"}, "noncentered": {"z"}, "marginal": set()}[parameterization]
    assert {v.name for v in model.value_vars} == expected_values

    def unconstrain(point):
        out = {}
        for name, value in point.items():
            family = {"sigma_b": pri.sigma_b_family, "eps": pri.eps_family}.get(name)
            if family == "uniform":
                scale = pri.sigma_b_scale if name == "sigma_b" else pri.eps_scale
                out[name + "_interval__"] = np.log(value) - np.log(scale - value)
            elif family == "halfnormal":
                out[name + "_log__"] = np.log(value)
            else:
                out[name] = np.asarray(value)
        return out

    logp = model.compile_logp(jacobian=True)
    pymc_lp = np.array([logp(unconstrain(p)) for p in points])
    np.testing.assert_allclose(pymc_lp, stan_lp, rtol=1e-10, atol=1e-8)

    # The package's constrained-space evaluator (used for Metropolis' lp), batched.
    batched = pb.log_density_function(model)({k: np.stack([p[k] for p in points]) for k in points[0]})
    np.testing.assert_allclose(batched, stan_lp, rtol=1e-10, atol=1e-8)


@pymc_test
def test_marginal_density_finite_as_eps_vanishes(default_data):
    model = pb.build_pymc_model(default_data, "marginal")
    f = pb.log_density_function(model, jacobian=False)
    lps = [float(f({"a": 2.0, "mu_b": 2.0, "sigma_b": 1.0, "eps": e})) for e in (1e-3, 1e-6, 1e-9)]
    assert np.all(np.isfinite(lps)) and abs(lps[1] - lps[2]) < 1e-6


# ------------------------------------------------------------------------ fits

_PYMC_FITS: dict = {}


def pymc_fit(dataset: hs.Dataset, name: str, parameterization: str, sampler: str = "nuts", seed: int = 5, **kw):
    key = (name, parameterization, sampler, seed, tuple(sorted(kw.items())))
    if key not in _PYMC_FITS:
        _PYMC_FITS[key] = pb.fit_pymc(dataset, parameterization, sampler, seed=seed, show_progress=False, **kw)
    return _PYMC_FITS[key]


@pymc_test
@pytest.mark.parametrize("parameterization", ["centered", "marginal"])
def test_pymc_nuts_agrees_with_stan(grouped_data, fit_cache, parameterization):
    stan = fit_cache("pystan", "grouped", grouped_data, "marginal")
    pymc = pymc_fit(grouped_data, "grouped", parameterization, draws=1000, warmup=500)
    assert diagnostics.sampler_stats(pymc)["max_rhat"] < 1.05
    table = cross_check(stan, pymc, threshold=4.0)
    assert table.attrs["passed"], cross_check_report(table)
    assert table.attrs["threshold"] == 4.0
    assert list(table.columns) == ["mean_a", "mean_b", "mcse_a", "mcse_b", "z", "passed"]
    # the slopes too: b drawn exactly afterwards (marginal) or sampled (centered)
    slopes = cross_check(stan, pymc, var_names=("b",))
    assert slopes.attrs["passed"], cross_check_report(slopes)


@pymc_test
def test_cross_check_detects_a_shift(grouped_data, fit_cache):
    stan = fit_cache("pystan", "grouped", grouped_data, "marginal")
    shifted = hs.Dataset.from_arrays(grouped_data.x, grouped_data.y + 1.0, grouped_data.group, grouped_data.n_groups)
    pymc = pymc_fit(shifted, "grouped+1", "marginal", draws=500, warmup=500)
    table = cross_check(stan, pymc)
    assert not table.attrs["passed"]
    # y + 1 moves the intercept by 1 and leaves the other parameters' posterior unchanged
    assert table.index[~table["passed"]].tolist() == ["a"]
    assert table.loc["a", "z"] < -4
    report = cross_check_report(table)
    assert "**FAILED**" in report and "4 combined MCSE" in report and "| a |" in report


@pymc_test
@pytest.mark.parametrize("parameterization", ["centered", "marginal"])
def test_output_shape_matches_stan(grouped_data, fit_cache, parameterization):
    stan = fit_cache("pystan", "grouped", grouped_data, "marginal")
    pymc = pymc_fit(grouped_data, "grouped", parameterization, draws=1000, warmup=500)
    assert set(pymc.posterior.data_vars) == set(stan.posterior.data_vars) == {*HYPER, "b"}
    for var in stan.posterior.data_vars:
        assert pymc.posterior[var].dims == stan.posterior[var].dims
    np.testing.assert_array_equal(pymc.posterior.coords["group"], stan.posterior.coords["group"])
    assert pymc.posterior["b"].shape == (4, 1000, grouped_data.n_groups)
    assert set(pymc.sample_stats.data_vars) == set(stan.sample_stats.data_vars)
    for stat in stan.sample_stats.data_vars:
        assert pymc.sample_stats[stat].dtype.kind == stan.sample_stats[stat].dtype.kind, stat
    assert set(pymc.groups()) == set(stan.groups())
    attrs = diagnostics.fit_attrs(pymc)
    assert attrs["sampler"] == "pymc-nuts" and attrs["engine"] == "pymc"
    assert attrs["parameterization"] == parameterization and attrs["seed"] == 5
    for key in ("compile_seconds", "warmup_seconds", "sampling_seconds", "pymc", "priors", "true_a", "chains"):
        assert key in attrs, key
    assert attrs["sampling_seconds"] > 0 and attrs["compile_seconds"] > 0
    # chains run in parallel: the work summed over chains exceeds the slowest chain
    assert attrs["sampling_chain_seconds"] > attrs["sampling_seconds"]
    # every shared diagnostic runs on it unchanged
    summ = diagnostics.summary(pymc)
    assert list(summ.index) == list(HYPER) and np.isfinite(summ["ess_bulk_per_s"]).all()
    stats = diagnostics.sampler_stats(pymc)
    assert stats["divergences"] == 0 and stats["min_ebfmi"] > 0.3
    assert "recovery" in diagnostics.verdict(pymc)


@pymc_test
def test_nuts_lp_is_the_log_density_with_jacobian(grouped_data):
    """PyMC's ``lp`` stat is the Jacobian-adjusted density: the quantity Stan calls lp__."""
    pymc = pymc_fit(grouped_data, "grouped", "marginal", draws=1000, warmup=500)
    f = pb.log_density_function(pb.build_pymc_model(grouped_data, "marginal"))
    lp = f({k: pymc.posterior[k].values for k in HYPER})
    np.testing.assert_allclose(pymc.sample_stats["lp"].values, lp, rtol=1e-9)


@pymc_test
def test_metropolis_output(grouped_data, fit_cache):
    stan = fit_cache("pystan", "grouped", grouped_data, "marginal")
    met = pymc_fit(grouped_data, "grouped", "marginal", "metropolis", chains=2, draws=2000, warmup=1000)
    assert set(met.posterior.data_vars) == {*HYPER, "b"}
    assert met.posterior["b"].dims == ("chain", "draw", "group")
    # Metropolis has what it has: the log density at the draws and the acceptance rate
    assert set(met.sample_stats.data_vars) == {"lp", "acceptance_rate"}
    rate = met.sample_stats["acceptance_rate"].values
    assert np.all((rate >= 0) & (rate <= 1)) and 0.05 < rate.mean() < 0.95
    stats = diagnostics.sampler_stats(met)
    assert stats["divergences"] is None and stats["ebfmi"] is None
    assert diagnostics.fit_attrs(met)["sampler"] == "pymc-metropolis"
    # a cross-check of chains that have not mixed would pass on their large MCSE alone
    assert stats["max_rhat"] < 1.05 and stats["min_ess_bulk"] >= 100, stats
    table = cross_check(stan, met)
    assert table.attrs["passed"], cross_check_report(table)


@pymc_test
def test_metropolis_chains_start_from_different_points(grouped_data):
    from hierlin_stan.samplers.pymc_backend import build_pymc_model, jittered_starts

    model = build_pymc_model(grouped_data, "centered")
    starts = jittered_starts(model, [1, 2, 3, 4])
    again = jittered_starts(model, [1, 2, 3, 4])
    assert set(starts[0]) == {v.name for v in model.value_vars}
    for name in starts[0]:
        values = np.array([np.atleast_1d(s[name]) for s in starts])
        assert len({tuple(v) for v in values}) == 4, name  # four distinct starts
        np.testing.assert_array_equal(values, np.array([np.atleast_1d(s[name]) for s in again]))  # seeded


@pymc_test
@requires_nutpie
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_nutpie_marginal(grouped_data, fit_cache):
    stan = fit_cache("pystan", "grouped", grouped_data, "marginal")
    fit = pymc_fit(grouped_data, "grouped", "marginal", "nutpie", draws=1000, warmup=500)
    attrs = diagnostics.fit_attrs(fit)
    assert attrs["sampler"] == "nutpie" and attrs["engine"] == "nutpie" and attrs["nutpie"]
    assert set(fit.sample_stats.data_vars) == set(stan.sample_stats.data_vars)
    assert fit.posterior["b"].shape == (4, 1000, grouped_data.n_groups)
    assert diagnostics.sampler_stats(fit)["divergences"] == 0
    table = cross_check(stan, fit)
    assert table.attrs["passed"], cross_check_report(table)
