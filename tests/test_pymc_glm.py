"""A formula's model in PyMC: the same log density as Stan's programs on the same unconstrained space (both
parameterizations, correlated and independent terms, every prior family), and PyMC's Metropolis recording
that log density at its draws.

That PyMC NUTS (centered, marginal) and nutpie sample the same posterior as Stan's marginal NUTS is
checked in tests/test_compare_formula.py, where compare() runs every sampler on one J = 40 dataset
(one sampling run each, to keep the suite's time down).

Tests that need PyMC are marked ``slow`` and ``requires_pymc`` and are skipped, with the
reason, where PyMC (or nutpie) is not installed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierlin_stan as hs
from hierlin_stan.model.glm import design
from hierlin_stan.samplers import pymc_backend as pb
from hierlin_stan.samplers.glm_logdensity import GLMTarget
from hierlin_stan.samplers.pymc_glm import build_pymc_glm, fit_pymc_formula, tau_variables
from hierlin_stan.samplers.stan_glm import glm_priors

PYMC_OK, PYMC_WHY = pb.pymc_available()
NUTPIE_OK, NUTPIE_WHY = pb.nutpie_available()
requires_pymc = pytest.mark.skipif(not PYMC_OK, reason=f"PyMC cross-check not testable here: {PYMC_WHY}")
requires_nutpie = pytest.mark.skipif(not NUTPIE_OK, reason=f"nutpie (optional peer) not testable here: {NUTPIE_WHY}")
_NO_BLAS_WARNING = pytest.mark.filterwarnings("ignore:.*BLAS:UserWarning")


def pymc_test(func):
    """Mark a test slow and requires_pymc, and skip it (saying why) without PyMC."""
    for mark in (_NO_BLAS_WARNING, requires_pymc, pytest.mark.requires_pymc, pytest.mark.slow):
        func = mark(func)
    return func


MIXED = {"beta": "normal(0, 5)", "beta[x1]": "normal(1, 2)", "tau": "halfnormal(2)",
         "tau[Intercept]": "halfstudent_t(4, 1.5)", "sigma": "exponential(0.7)", "Omega": "lkj(2)"}
UNIFORM = {"beta": "normal(0, 3)", "tau": "uniform(0, 4)", "sigma": "uniform(0, 2.5)", "Omega": "lkj(1.5)"}
CASES = {
    "q2-correlated": ("y ~ x1 + x2 + (1 + x1 | g)", MIXED),
    "q2-independent": ("y ~ x1 + (1 + x1 || g)", MIXED),
    "q1": ("y ~ x1 + (1 | g)", MIXED),
    "q3-correlated": ("y ~ x1 + (1 + x1 + x2 | g)", MIXED),
    "q2-uniform": ("y ~ x1 + (1 + x1 | g)", UNIFORM),
}


def _frame(sizes, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array([f"g{k}" for k in range(len(sizes))])
    g = np.repeat(labels, sizes)
    x1, x2 = rng.normal(size=g.size), rng.uniform(-1, 2, size=g.size)
    x1[g == labels[1]] = 0.0
    codes = np.repeat(np.arange(len(sizes)), sizes)
    u = rng.normal(size=(len(sizes), 3))
    y = 1.0 + 0.5 * x1 - x2 + u[codes, 0] + u[codes, 1] * x1 + u[codes, 2] * x2 + 0.3 * rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g})


def test_tau_variables_group_terms_by_family():
    d = design(_frame([3, 4, 5], seed=1), "y ~ x1 + (1 + x1 + x2 | g)")
    assert tau_variables(glm_priors(d, {"tau": "halfnormal(1)"})) == {"tau": [0, 1, 2]}
    mixed = glm_priors(d, {"tau": "halfnormal(1)", "tau[x1]": "exponential(2)"})
    assert tau_variables(mixed) == {"tau_halfnormal": [0, 2], "tau_exponential": [1]}


def test_unknown_parameterization_is_named():
    d = design(_frame([3, 4, 5], seed=1), "y ~ x1 + (1 | g)")
    with pytest.raises(ValueError, match=r"parameterization='noncentered' is not written in PyMC for formulas; "
                                         r"use one of \['centered', 'marginal'\]"):
        build_pymc_glm(d, "noncentered")
    with pytest.raises(ValueError, match="sampler='hmc' is unknown"):
        fit_pymc_formula(d, sampler="hmc")


@pymc_test
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("parameterization", ["marginal", "centered"])
def test_pymc_log_density_equals_stan_programs(case, parameterization):
    """PyMC's logp (with its transforms' Jacobians) = GLMTarget = Stan's lp__ (tested on both engines), 1e-9."""
    formula, priors = CASES[case]
    d = design(_frame([1, 4, 6, 1, 3, 8, 2], seed=7), formula)
    pr = glm_priors(d, priors)
    model = build_pymc_glm(d, parameterization, pr)
    target = GLMTarget(d, parameterization, pr)
    logp = model.compile_logp(jacobian=True)
    theta = np.random.default_rng(3).uniform(-2.0, 2.0, size=(25, target.dim))
    theta[::4, target.names.index("sigma")] -= 4.0  # small sigma too
    values = {rv.name: model.rvs_to_values[rv].name for rv in model.free_RVs}
    for row in theta:
        point = {}
        for name, value_name in values.items():
            if name == "beta":
                point[value_name] = row[[target.names.index(f"beta[{t}]") for t in d.term_names]]
            elif name == "sigma":
                point[value_name] = np.asarray(row[target.names.index("sigma")])
            elif name.startswith("tau"):
                idx = tau_variables(pr)[name]
                point[value_name] = row[[target.names.index(f"tau[{d.group_term_names[i]}]") for i in idx]]
            elif name == "L_Omega_free":
                point[value_name] = row[[n.startswith("L_Omega") for n in target.names]]
            elif name == "u":
                point[value_name] = row[[n.startswith("u[") for n in target.names]].reshape(d.q, d.J).T
            else:
                raise AssertionError(f"unexpected PyMC variable {name}")
        assert float(logp(point)) == pytest.approx(float(target.log_density(row)), rel=1e-9), (case, parameterization)


FORMULA = "y ~ x + (1 + x | g)"
PRIORS = {"beta": "normal(0, 5)", "tau": "halfnormal(2)", "sigma": "halfnormal(2)", "Omega": "lkj(2)"}


@pytest.fixture(scope="module")
def noisy():
    truth = {"beta": {"Intercept": 1.0, "x": 0.5}, "tau": {"Intercept": 0.8, "x": 0.4}, "sigma": 0.6, "Omega": 0.3}
    return hs.simulate(formula=FORMULA, groups=[10] * 12, truth=truth, x_low=-2, x_high=2, seed=21)


@pymc_test
def test_pymc_metropolis_runs_and_records_lp(noisy):
    """Short run (it mixes slowly on the full posterior): the shape, and lp evaluated at the draws."""
    idata = fit_pymc_formula(noisy, FORMULA, "centered", sampler="metropolis", draws=200, warmup=200, chains=2,
                             seed=7, priors=PRIORS, show_progress=False)
    assert idata.attrs["sampler"] == "pymc-metropolis"
    lp = idata.sample_stats["lp"].values
    assert lp.shape == (2, 200) and np.all(np.isfinite(lp))
    target = GLMTarget(hs.design(noisy, FORMULA), "centered", PRIORS)
    post = idata.posterior
    theta = target.unconstrain({"beta": post["beta"].values[0, -1], "tau": post["tau"].values[0, -1],
                                "sigma": float(post["sigma"].values[0, -1]), "Omega": post["Omega"].values[0, -1],
                                "u": post["u"].values[0, -1]})
    assert lp[0, -1] == pytest.approx(target.log_density(theta), rel=1e-9)
