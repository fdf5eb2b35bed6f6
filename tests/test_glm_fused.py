"""The formula programs' fused C++ likelihoods (glm_*_fused.stan + hierlin_fused.hpp) = the pure Stan ones.

* lp__ and its gradient through CmdStan's log_prob method (jacobian=True), 1e-10 relative,
  at >= 100 random unconstrained points per program: one, two and three group terms
  (correlated, independent; three run group by group) and none, uniform scale priors (the
  bounded transform), no common terms (p = 0), a
  group with an all-zero group column (rank-deficient block), one-point groups, data that
  fit exactly, and every third point with sigma ~ 1e-6.
* PyStan (pure program) and CmdStan (fused) give the same lp to 1e-12 relative.
* A fit on CmdStan runs the fused twin (attrs say so), also for q = 3; same seed, same
  variant: the same draws; fused and pure posteriors agree within 4 combined MCSE.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

import hierlin_stan as hs
from hierlin_stan.engines import get_engine
from hierlin_stan.model.glm import design
from hierlin_stan.samplers.glm_logdensity import GLMTarget
from hierlin_stan.samplers.stan_glm import glm_priors, stan_data
from tests.conftest import requires_cmdstan
from tests.test_fused import assert_close, check_fused_equals_pure
from tests.test_glm_logdensity import _frame, _points

REL = 1e-10
PRIORS = {"beta": "normal(0, 5)", "beta[x1]": "normal(1, 2)", "tau": "halfnormal(2)",
          "tau[Intercept]": "halfstudent_t(4, 1.5)", "sigma": "exponential(0.7)", "Omega": "lkj(2)"}
UNIFORM = {"beta": "normal(0, 3)", "tau": "uniform(0, 4)", "sigma": "uniform(0, 2.5)", "Omega": "lkj(1)"}
CASES = {  # id: (formula, priors, noise sd)
    "q2-correlated": ("y ~ x1 + x2 + (1 + x1 | g)", PRIORS, 0.3),
    "q2-independent": ("y ~ x1 + (1 + x1 || g)", PRIORS, 0.3),
    "q1": ("y ~ x1 + x2 + (1 | g)", PRIORS, 0.3),
    "q1-slope": ("y ~ 1 + x1 + (0 + x1 | g)", {"beta": "normal(0, 5)", "tau": "halfstudent_t(4, 1.5)"}, 0.3),
    "q2-uniform-scales": ("y ~ x1 + (1 + x1 | g)", UNIFORM, 0.3),
    "q2-no-common-terms": ("y ~ 0 + (1 + x1 | g)", {"tau": "halfnormal(2)", "sigma": "halfnormal(1)"}, 0.3),
    "q2-exact-fit": ("y ~ x1 + x2 + (1 + x1 | g)", PRIORS, 0.0),
    "q3-correlated": ("y ~ x1 + (1 + x1 + x2 | g)", PRIORS, 0.3),
    "q3-independent": ("y ~ x1 + x2 + (1 + x1 + x2 || g)", UNIFORM, 0.3),
    "q0-no-group-terms": ("y ~ x1 + x2", {"beta": "normal(0, 5)", "sigma": "halfnormal(1)"}, 0.3),
}


SIZES = [1, 4, 6, 1, 3, 8, 2, 5, 1, 7, 3, 2]
#: log sigma of every third point: sigma ~ 1e-6
SMALL_SIGMA = (-14.5, -13.0)


def _case(case):
    formula, priors, noise = CASES[case]
    d = design(_frame(SIZES, seed=7, noise=noise, x2_slopes=False), formula)
    return d, glm_priors(d, priors)


@requires_cmdstan
@pytest.mark.requires_cmdstan
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["marginal", "collapsed"])
def test_fused_equals_pure_value_and_gradient(kind, tmp_path):
    total = 0
    for case in CASES:
        d, pr = _case(case)
        target = GLMTarget(d, kind, pr)
        theta = _points(target, 16, seed=zlib.crc32(f"fused/{case}/{kind}".encode()), small_sigma=SMALL_SIGMA)
        points = target.stan_parameters(theta)
        data = stan_data(d, pr, kind, write_u=False)
        total += check_fused_equals_pure(f"glm_{kind}", data, points, tmp_path, target.dim, what=(kind, case))
    assert total >= 100


@requires_cmdstan
@pytest.mark.requires_cmdstan
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["marginal", "collapsed"])
def test_pystan_pure_equals_cmdstan_fused(kind):
    pystan, cmdstan = get_engine("pystan", verbose=False), get_engine("cmdstan", verbose=False)
    for case in ("q2-correlated", "q1", "q3-correlated"):
        d, pr = _case(case)
        target = GLMTarget(d, kind, pr)
        theta = _points(target, 6, seed=zlib.crc32(f"pystan/{case}/{kind}".encode()), small_sigma=SMALL_SIGMA)
        data = stan_data(d, pr, kind, write_u=False)
        points = target.stan_parameters(theta)
        assert_close(pystan.log_density_many(f"glm_{kind}", data, points),
                     cmdstan.log_density_many(f"glm_{kind}_fused", data, points), rel=1e-12, what=(kind, case))


@requires_cmdstan
@pytest.mark.requires_cmdstan
@pytest.mark.slow
def test_fits_run_the_fused_twin_same_draws_same_posterior():
    frame = _frame([6] * 30, seed=3, noise=0.4)
    kw = dict(formula="y ~ x1 + (1 + x1 | g)", engine="cmdstan", chains=2, draws=500, warmup=500, seed=5,
              show_progress=False, log_likelihood=False)
    fused = hs.fit(frame, **kw)
    again = hs.fit(frame, **kw)
    pure = hs.fit(frame, fused=False, **kw)
    assert fused.attrs["program"] == "glm_marginal_fused" and fused.attrs["program_variant"] == "fused"
    assert pure.attrs["program"] == "glm_marginal" and pure.attrs["program_variant"] == "pure"
    for name in ("beta", "tau", "sigma", "Omega"):
        np.testing.assert_array_equal(fused.posterior[name].values, again.posterior[name].values)
    sf, sp = (hs.diagnostics.summary(x) for x in (fused, pure))
    common = sf.index.intersection(sp.index)
    assert len(common) >= 6
    z = (sf.loc[common, "mean"] - sp.loc[common, "mean"]) / np.hypot(sf.loc[common, "mcse_mean"],
                                                                      sp.loc[common, "mcse_mean"])
    assert (z.abs() <= 4).all(), z
    q3 = hs.fit(frame, formula="y ~ x1 + (1 + x1 + x2 | g)", engine="cmdstan", chains=1, draws=50, warmup=50,
                seed=1, show_progress=False, log_likelihood=False)
    assert q3.attrs["program"] == "glm_marginal_fused" and q3.attrs["program_variant"] == "fused"
    with pytest.raises(ValueError, match="needs the CmdStan engine"):
        hs.fit(frame, formula="y ~ x1 + (1 + x1 | g)", engine="pystan", fused=True, show_progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["marginal", "collapsed"])
def test_exact_draws_follow_their_conditionals(engine_name, kind):
    """u (and, collapsed, beta) drawn in Stan's generated quantities, standardised by the numpy conditionals
    (glm_density.u_conditional / beta_conditional) at each posterior draw, are N(0, 1): mean within 4/sqrt(n),
    variance within 4 sqrt(2/n) of 1 (n standardised values; exact draws are independent given the parameters)."""
    from hierlin_stan.model.glm_density import beta_conditional, u_conditional

    for formula in ("y ~ x1 + (1 + x1 | g)", "y ~ x1 + x2 + (1 | g)"):
        frame = _frame(SIZES * 2, seed=11)
        idata = hs.fit(frame, formula=formula, parameterization=kind, engine=engine_name, chains=2, draws=150,
                       warmup=150, seed=4, keep_b=True, show_progress=False, log_likelihood=False)
        d = design(frame, formula)
        pdata = glm_priors(d, None).to_stan_data()
        post = idata.posterior.stack(s=("chain", "draw"))
        zs, zb = [], []
        for s in range(post.sizes["s"]):
            tau = np.atleast_1d(post["tau"].values[..., s])
            omega = post["Omega"].values[..., s] if "Omega" in post else np.eye(d.q)
            low = np.diag(tau) @ np.linalg.cholesky(omega)
            sigma, beta = float(post["sigma"].values[s]), post["beta"].values[:, s]
            mean, cov = u_conditional(d.stats, beta, low, sigma)
            resid = post["u"].values[..., s] - mean
            zs.append(np.linalg.solve(np.linalg.cholesky(cov), resid[..., None])[..., 0].ravel())
            if kind == "collapsed":
                bmean, bcov = beta_conditional(d.stats, low @ low.T, sigma, pdata["beta_loc"], pdata["beta_scale"])
                zb.append(np.linalg.solve(np.linalg.cholesky(bcov), beta - bmean))
        for z in (np.concatenate(zs), np.concatenate(zb) if zb else None):
            if z is None:
                continue
            n = z.size
            assert abs(z.mean()) <= 4 / np.sqrt(n), (formula, kind, z.mean(), n)
            assert abs(z.var() - 1) <= 4 * np.sqrt(2 / n), (formula, kind, z.var(), n)
