"""The collapsed parameterization of the notebook's model, through ``hs.fit``, on both engines.

NUTS samples sigma_b and eps only; a, mu_b and b are drawn exactly afterwards. It is the
default: on the notebook's data shape with the x = 0.0115 point that pins a when eps = 0
(``simulate(n=100, seed=3)``) the marginal program diverges for every seed (23, 55, 49 on
CmdStan for seeds 1-3), the collapsed one must not. CmdStan runs the fused program (C++
gradient) unless ``fused=False``; PyStan the pure one; same seed, engine and variant give
the same draws, and PyStan's pure draws equal CmdStan's pure draws.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hierlin_stan as hs
from hierlin_stan.engines.programs import header_hash
from hierlin_stan.utils.az import az
from tests.conftest import requires_cmdstan

pytestmark = pytest.mark.slow
HYPER = ["a", "mu_b", "sigma_b", "eps"]


@pytest.fixture(scope="module")
def seed3_data() -> hs.Dataset:
    return hs.simulate(n=100, seed=3)


def test_default_fit_has_no_divergences_on_the_notebook_data(engine_name, seed3_data):
    for seed in (1, 2, 3):
        idata = hs.fit(seed3_data, engine=engine_name, seed=seed, show_progress=False)
        summary = az.summary(idata, var_names=HYPER, round_to="none")
        assert idata.attrs["parameterization"] == "collapsed"
        assert int(idata.sample_stats["diverging"].sum()) == 0, seed
        assert summary["r_hat"].max() <= 1.01 and summary["ess_bulk"].min() >= 400, (seed, summary)
        assert list(idata.posterior.data_vars) == ["a", "mu_b", "sigma_b", "eps", "b"]
        assert idata.posterior["b"].shape == (4, 1000, 100)
    fused = engine_name == "cmdstan"
    assert idata.attrs["program"] == ("collapsed_fused" if fused else "collapsed")
    assert idata.attrs["program_variant"] == ("fused" if fused else "pure")
    assert idata.attrs.get("fused_header_hash") == (header_hash() if fused else None)


def _short(data, **kw):
    kw = {"chains": 2, "draws": 200, "warmup": 200, "seed": 5, "show_progress": False, **kw}
    return hs.fit(data, kw.pop("parameterization", "collapsed"), **kw)


@requires_cmdstan
@pytest.mark.requires_cmdstan
def test_same_seed_same_draws_per_variant_and_pystan_equals_cmdstan_pure(grouped_data):
    fused = [_short(grouped_data, engine="cmdstan") for _ in range(2)]
    pure = [_short(grouped_data, engine="cmdstan", fused=False) for _ in range(2)]
    assert [f.attrs["program"] for f in fused + pure] == ["collapsed_fused"] * 2 + ["collapsed"] * 2
    for a, b in (fused, pure):
        for name in ("a", "sigma_b", "b"):
            np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
    # the same Stan, program and seed on PyStan: the same draws as CmdStan's pure program
    py = _short(grouped_data, engine="pystan")
    assert py.attrs["program"] == "collapsed" and py.attrs["program_variant"] == "pure"
    np.testing.assert_allclose(py.posterior["eps"].values, pure[0].posterior["eps"].values, rtol=1e-5)
    other = _short(grouped_data, engine="cmdstan", seed=6)
    assert not np.array_equal(other.posterior["a"].values, fused[0].posterior["a"].values)


def test_fused_option_is_checked_and_recorded(grouped_data):
    with pytest.raises(ValueError, match="fused=True needs the CmdStan engine"):
        _short(grouped_data, engine="pystan", fused=True)
    with pytest.raises(ValueError, match="fused=True: the centered program has no fused C"):
        _short(grouped_data, engine="pystan", parameterization="centered", fused=True)
    with pytest.raises(ValueError, match="fused='yes' must be True, False or None"):
        _short(grouped_data, engine="pystan", fused="yes")


def test_inits_of_sigma_b_and_eps_are_where_the_chain_starts(engine_name, grouped_data):
    """Constrained starting values are converted to the program's own coordinates (sigma_b_u, eps_u)."""
    start = {"sigma_b": 0.37, "eps": 1.9}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ: more chains than draws
        idata = _short(grouped_data, engine=engine_name, draws=1, warmup=1, step_size=1e-8, inits=start)
    np.testing.assert_allclose(idata.posterior["sigma_b"].values, 0.37, rtol=1e-4)
    np.testing.assert_allclose(idata.posterior["eps"].values, 1.9, rtol=1e-4)
    assert idata.attrs["inits"] == '{"eps": 1.9, "sigma_b": 0.37}'
    assert "sigma_b_u" not in idata.posterior and "eps_u" not in idata.posterior
    with pytest.raises(ValueError, match=r"inits\['a'\]: 'a' is not a parameter of the collapsed program \(it is "
                                         r"drawn exactly after sampling"):
        _short(grouped_data, engine=engine_name, inits={"a": 2.0})


def test_large_b_is_drawn_in_numpy_when_asked(monkeypatch, grouped_data):
    """Beyond MAX_KEPT_VALUES, keep_b=True draws b in numpy from the same exact conditional as Stan."""
    import hierlin_stan.samplers.stan as stan_sampler

    stan_b = _short(grouped_data, engine="pystan", draws=500)
    monkeypatch.setattr(stan_sampler, "MAX_KEPT_VALUES", 10)
    with pytest.warns(UserWarning, match="not keeping the 10 slopes b"):
        dropped = _short(grouped_data, engine="pystan", draws=500)
    assert "b" not in dropped.posterior and dropped.attrs.get("b_drawn_in") is None
    numpy_b = _short(grouped_data, engine="pystan", draws=500, keep_b=True)
    assert numpy_b.attrs["b_drawn_in"] == "numpy" and stan_b.attrs["b_drawn_in"] == "stan"
    assert numpy_b.posterior["b"].shape == stan_b.posterior["b"].shape
    sa = az.summary(stan_b, var_names=["b"], round_to="none")
    sb = az.summary(numpy_b, var_names=["b"], round_to="none")
    z = (sa["mean"] - sb["mean"]).abs() / np.sqrt(sa["mcse_mean"] ** 2 + sb["mcse_mean"] ** 2)
    assert (z < 4).all(), z
    np.testing.assert_allclose(sa["sd"], sb["sd"], rtol=0.15)


@requires_cmdstan
@pytest.mark.requires_cmdstan
def test_compare_has_a_stan_collapsed_row_that_agrees_with_marginal(grouped_data):
    """``stan-collapsed`` is a sampler of compare (CmdStan: the fused program) and a default one."""
    from hierlin_stan.samplers.registry import DEFAULT_SAMPLERS, SAMPLERS

    assert SAMPLERS["stan-collapsed"].parameterization == "collapsed" and "stan-collapsed" in DEFAULT_SAMPLERS
    small = {"chains": 4, "draws": 500, "warmup": 500}
    result = hs.compare(grouped_data, samplers=["stan-collapsed", "stan-marginal"], seed=2, engine="cmdstan",
                        settings={"stan-collapsed": small, "stan-marginal": small}, show_progress=False)
    table = result.table
    assert list(table.index) == ["stan-collapsed", "stan-marginal"]
    assert table.loc["stan-collapsed", "label"] == "Stan NUTS, collapsed"
    assert table.loc["stan-collapsed", "divergences"] == 0 and table.loc["stan-collapsed", "max_rhat"] <= 1.01
    assert result.fits["stan-collapsed"].attrs["program"] == "collapsed_fused"
    cross = result.cross_checks()
    assert cross.loc["stan-collapsed", "passed"], cross.loc["stan-collapsed"]


@requires_cmdstan
@pytest.mark.requires_cmdstan
def test_collapsed_fused_passes_sbc(tmp_path):
    """SBC of ``stan-collapsed`` on CmdStan (fused program): K = 40 simulations of 20 points in 4 groups.

    Same design, draws and acceptance rules as the marginal SBC in tests/test_sbc.py (a calibrated
    sampler fails them with probability < 4.4 %; the seed is fixed, so the outcome is deterministic).
    """
    import math

    from hierlin_stan.workflows.sbc import PARAMS, sbc

    k = 40
    result = sbc(k, seed=11, n_jobs=1, design={"groups": [5] * 4}, sampler="stan-collapsed", engine="cmdstan",
                 sampler_settings={"chains": 4, "draws": 200, "warmup": 200}, show_progress=False,
                 out=tmp_path / "sbc")
    assert len(result.ok) == k and result.failures.empty
    u = result.uniformity(prob=0.99)
    assert (u["p_value"] > 1e-3).all(), u
    assert u["ecdf_in_band"].all(), u
    assert result.calibrated
    table = result.table
    assert (table["max_rhat"] < 1.05).all()
    # priors drawn from the prior include sigma_b near 0 with 5 points a group: the same bound as the
    # marginal SBC (seed 11 gives 3 divergent transitions in 40 x 4 x 200)
    assert table["divergences"].sum() < 0.005 * k * 4 * 200
    for p in PARAMS:
        z = table[f"z_{p}"]
        assert abs(z.mean()) < 4 / math.sqrt(k) and 0.6 < z.std() < 1.5, (p, z.describe())
