"""The numpy Metropolis on a formula's posterior: the general InferenceData shape, reproducible, and the same
posterior as Stan's marginal NUTS (full, marginal and collapsed targets)."""

from __future__ import annotations

import numpy as np
import pytest

import hierlin_stan as hs
from hierlin_stan.samplers.glm_metropolis import metropolis_formula

FORMULA = "y ~ x + (1 + x | g)"
TRUTH = {"beta": {"Intercept": 1.0, "x": 0.5}, "tau": {"Intercept": 0.8, "x": 0.4}, "sigma": 0.6, "Omega": 0.3}
PRIORS = {"beta": "normal(0, 5)", "tau": "halfnormal(2)", "sigma": "halfnormal(2)", "Omega": "lkj(2)"}
RUNS = {  # target: (draws, warmup, thin)
    "marginal": (8000, 3000, 2),
    "collapsed": (8000, 3000, 2),
    "full": (20000, 10000, 5),
}


@pytest.fixture(scope="module")
def frame():
    """J = 12 groups of 10, noisy: every target mixes well enough for a cross-check."""
    return hs.simulate(formula=FORMULA, groups=[10] * 12, truth=TRUTH, x_low=-2, x_high=2, seed=21)


def test_bad_arguments_are_named(frame):
    with pytest.raises(ValueError, match=r"target='centered' is unknown for a formula; use one of \['full', 'marginal', 'collapsed'\]"):
        hs.metropolis(frame, "centered", formula=FORMULA)
    with pytest.raises(ValueError, match="metropolis on a formula needs formula="):
        metropolis_formula(frame, None)
    with pytest.raises(ValueError, match="draws=0 must be an integer >= 1"):
        hs.metropolis(frame, "marginal", formula=FORMULA, draws=0)
    with pytest.raises(ValueError, match="adapt='none' is unknown"):
        hs.metropolis(frame, "marginal", formula=FORMULA, adapt="none")


@pytest.mark.parametrize("target", ["marginal", "collapsed", "full"])
def test_general_shape_and_same_seed_same_draws(frame, target):
    kw = dict(formula=FORMULA, chains=2, draws=300, warmup=300, seed=4, priors=PRIORS, show_progress=False)
    idata = hs.metropolis(frame, target, **kw)
    post = idata.posterior
    assert post["beta"].dims == ("chain", "draw", "term") and list(post["term"].values) == ["Intercept", "x"]
    assert post["tau"].dims == ("chain", "draw", "group_term")
    assert post["Omega"].shape == (2, 300, 2, 2) and np.allclose(post["Omega"].values[..., 0, 0], 1.0)
    assert post["u"].dims == ("chain", "draw", "group", "group_term") and post["u"].shape[2] == 12
    np.testing.assert_allclose(post["coef"].values, post["u"].values + post["beta"].values[:, :, None, :])
    assert idata.attrs["sampler"] == "metropolis" and idata.attrs["engine"] == "numpy"
    assert idata.attrs["program"] == {"full": "glm_centered", "marginal": "glm_marginal",
                                      "collapsed": "glm_collapsed"}[target]
    assert idata.attrs["prior_sigma"] == "halfnormal(2)"
    assert set(idata.sample_stats.data_vars) == {"lp", "acceptance_rate"}
    again = hs.metropolis(frame, target, **kw)
    np.testing.assert_array_equal(again.posterior["beta"].values, post["beta"].values)
    np.testing.assert_array_equal(again.posterior["u"].values, post["u"].values)
    st = hs.diagnostics.sampler_stats(idata)  # the diagnostics work unchanged
    assert st["sampler"] == "metropolis" and st["divergences"] is None and st["min_ess_bulk"] > 0
    dropped = hs.metropolis(frame, target, keep_b=False, **kw)
    assert ("u" in dropped.posterior) == (target == "full")


def test_lp_stat_is_the_target_log_density(frame):
    """sample_stats.lp is the log density (Stan's lp__) at each kept draw."""
    from hierlin_stan.samplers.glm_logdensity import GLMTarget

    idata = hs.metropolis(frame, "collapsed", formula=FORMULA, chains=2, draws=50, warmup=100, seed=1, priors=PRIORS,
                          show_progress=False)
    target = GLMTarget(hs.design(frame, FORMULA), "collapsed", PRIORS)
    post = idata.posterior
    theta = target.unconstrain({"tau": post["tau"].values.reshape(-1, 2), "sigma": post["sigma"].values.reshape(-1),
                                "Omega": post["Omega"].values.reshape(-1, 2, 2)})
    np.testing.assert_allclose(target.log_density(theta), idata.sample_stats["lp"].values.reshape(-1), rtol=1e-10)


@pytest.mark.slow
def test_every_target_agrees_with_stan_marginal(frame):
    ref = hs.fit(frame, "marginal", formula=FORMULA, priors=PRIORS, seed=2, draws=2000, show_progress=False)
    for target, (draws, warmup, thin) in RUNS.items():
        idata = hs.metropolis(frame, target, formula=FORMULA, priors=PRIORS, seed=3, draws=draws, warmup=warmup,
                              thin=thin, show_progress=False)
        st = hs.diagnostics.sampler_stats(idata)
        assert st["max_rhat"] < 1.03 and st["min_ess_bulk"] > 150, (target, st)
        table = hs.cross_check(ref, idata)
        assert table.attrs["passed"], (target, table)
        assert len(table) == 6  # beta x 2, tau x 2, sigma, the correlation
