"""bambi as a row of the comparison: our priors in bambi's terms, its posterior mapped to our names, and on an
``||`` model the same posterior as Stan's marginal NUTS (means within 4 combined MCSE), with both speeds shown.

Tests that run bambi are marked ``slow`` and ``requires_pymc`` and are skipped, with the reason,
where bambi is not installed (it comes with the ``pymc`` extra).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

import hierlin_stan as hs
from hierlin_stan.reports.compare_report import assess, display_table, headline
from hierlin_stan.samplers.bambi_backend import bambi_available, bambi_formula, bambi_priors, fit_bambi
from hierlin_stan.samplers.registry import SAMPLERS
from hierlin_stan.samplers.stan_glm import glm_priors

BAMBI_OK, BAMBI_WHY = bambi_available()
requires_bambi = pytest.mark.skipif(not BAMBI_OK, reason=f"bambi not testable here: {BAMBI_WHY}")


def bambi_test(func):
    """Mark a test requires_pymc and skip it (saying why) without bambi."""
    for mark in (pytest.mark.filterwarnings("ignore:.*BLAS:UserWarning"), requires_bambi, pytest.mark.requires_pymc):
        func = mark(func)
    return func


INDEPENDENT = "y ~ x + (1 + x || g)"
TRUTH = {"beta": {"Intercept": 1.0, "x": 0.5}, "tau": {"Intercept": 0.8, "x": 0.4}, "sigma": 0.6}
PRIORS = {"beta": "normal(0, 5)", "beta[x]": "normal(0, 2)", "tau": "halfnormal(2)", "tau[x]": "halfstudent_t(3, 1)",
          "sigma": "exponential(1)"}


@pytest.fixture(scope="module")
def frame():
    return hs.simulate(formula=INDEPENDENT, groups=[10] * 12, truth=TRUTH, x_low=-2, x_high=2, seed=31)


@bambi_test
def test_our_priors_in_bambi_terms_and_what_differs(frame):
    import bambi as bmb

    d = hs.design(frame, INDEPENDENT)
    pr = glm_priors(d, PRIORS)
    priors, differences = bambi_priors(bmb, d, pr, {"Intercept": "1|g", "x": "x|g"},
                                       {"Intercept": "Intercept", "x": "x"})
    assert differences == []
    assert priors["Intercept"].name == "Normal" and priors["Intercept"].args == {"mu": 0.0, "sigma": 5.0}
    assert priors["x"].args == {"mu": 0.0, "sigma": 2.0}
    assert priors["1|g"].args["sigma"].name == "HalfNormal" and priors["1|g"].args["sigma"].args == {"sigma": 2.0}
    assert priors["x|g"].args["sigma"].name == "HalfStudentT" and priors["x|g"].args["sigma"].args == {"nu": 3.0, "sigma": 1.0}
    assert priors["sigma"].name == "Exponential" and priors["sigma"].args == {"lam": 1.0}
    assert bambi_formula(d) == "y ~ 1 + x + (1 + x | g)"  # formulae has no ||: independent is what | means to bambi
    correlated = hs.design(frame, "y ~ x + (1 + x | g)")
    _, diff = bambi_priors(bmb, correlated, glm_priors(correlated, {**PRIORS, "Omega": "lkj(2)"}),
                           {"Intercept": "1|g", "x": "x|g"}, {"Intercept": "Intercept", "x": "x"})
    assert len(diff) == 1 and diff[0].startswith("Omega: bambi's group effects are uncorrelated (no lkj(2) prior)")


@bambi_test
@pytest.mark.slow
def test_bambi_agrees_with_stan_marginal_and_the_table_shows_both_speeds(frame):
    result = hs.compare(frame, formula=INDEPENDENT, samplers=["stan-marginal", "bambi"], priors=PRIORS, seed=4,
                        show_progress=False)
    assert not result.failures, result.failures
    bambi = result.fits["bambi"]
    assert bambi.attrs["sampler"] == "bambi" and bambi.attrs["prior_differences"] == ""
    assert bambi.attrs["bambi_formula"] == "y ~ 1 + x + (1 + x | g)" and bambi.attrs["parameterization"] == "noncentered"
    post = bambi.posterior
    assert list(post["u"]["group"].values) == list(result.design.group_labels)
    cross = result.cross_checks()
    assert cross.loc["bambi", "passed"], cross.loc["bambi"]
    # and the group effects, mapped label by label
    u = hs.cross_check(result.fits["stan-marginal"], bambi, var_names=["u"])
    assert u.attrs["passed"], u[~u["passed"]]
    table = result.table
    for name in ("stan-marginal", "bambi"):
        assert table.loc[name, "min_ess_bulk_per_s"] > 0 and table.loc[name, "sampling_chain_seconds"] > 0
    shown = display_table(result)
    assert set(shown.index) == {"Stan NUTS, marginal", "bambi (PyMC NUTS, non-centered)"}
    ratio = result.speedup("stan-marginal", "bambi")
    assert math.isfinite(ratio) and ratio > 0
    text = " ".join(line for line, _ in headline(result, assess(result)))
    assert "bambi, what a Python user would type" in text
    assert (f"{ratio:,.0f} to 1" if ratio >= 10 else f"{ratio:.3g}") in text


@bambi_test
@pytest.mark.slow
def test_correlated_formula_says_bambi_fits_another_model(frame):
    """For (1 + x | g) bambi has no Omega: the row says so, and the cross-check compares what both have."""
    formula = "y ~ x + (1 + x | g)"
    idata = fit_bambi(frame, formula, chains=2, draws=200, warmup=200, seed=1, priors={**PRIORS, "Omega": "lkj(2)"},
                      show_progress=False)
    assert "Omega" not in idata.posterior and idata.attrs["prior_differences"].startswith("Omega:")
    result = hs.compare(frame, formula=formula, samplers=["stan-marginal"], priors={**PRIORS, "Omega": "lkj(2)"},
                        seed=1, show_progress=False, settings={"stan-marginal": {"draws": 300, "warmup": 300}})
    result.fits["bambi"] = idata
    result.specs["bambi"] = SAMPLERS["bambi"]
    cross = result.cross_checks()
    assert not any(c.startswith("z_Omega") and not np.isnan(cross.loc["bambi", c]) for c in cross.columns)
    shown = display_table(result)
    assert shown.loc["bambi (PyMC NUTS, non-centered)", "model differs"].startswith("Omega:")


@bambi_test
def test_quiet_bambi_fit_prints_nothing(frame, capfd, caplog):
    """show_progress=False (the CLI's --quiet): none of PyMC's "Initializing NUTS" / "Sampling 4 chains" lines.

    Where the root logger has no handler (a script, the CLI) PyMC prints its INFO records to
    stderr itself; under pytest they reach pytest's handler instead, so both are checked."""
    caplog.set_level(logging.INFO)
    idata = fit_bambi(frame, INDEPENDENT, chains=2, draws=50, warmup=50, seed=1, show_progress=False)
    out, err = capfd.readouterr()
    assert idata.posterior.sizes["draw"] == 50
    assert out == "" and err == "", (out, err)
    chatter = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("pymc", "bambi")
               and r.levelno < logging.WARNING]
    assert chatter == []
    assert logging.getLogger("pymc").level == PYMC_LEVEL  # restored after the fit


PYMC_LEVEL = logging.getLogger("pymc").level


@bambi_test
def test_bambi_fits_the_design_rows_with_dropped_missing_values_and_unsorted_categories(frame):
    """dropna=True drops the same rows for bambi as for the design; a pandas Categorical whose first
    category (the design's reference level) is not the first in sorted order goes through the
    design's columns, so bambi cannot pick another reference level."""
    df = frame.copy()
    df["kind"] = pd.Categorical(np.where(np.arange(len(df)) % 3 == 0, "lo", np.where(np.arange(len(df)) % 3 == 1,
                                                                                    "mid", "hi")),
                                categories=["mid", "lo", "hi"])
    df.loc[4, "x"] = np.nan
    formula = "y ~ x + kind + (1 | g)"
    d = hs.design(df, formula, dropna=True)
    assert d.N == len(df) - 1 and list(d.term_names) == ["Intercept", "x", "kind[lo]", "kind[hi]"]
    idata = fit_bambi(df, formula, chains=2, draws=60, warmup=60, seed=2, design=d, show_progress=False)
    assert list(idata.posterior["beta"].coords["term"].values) == list(d.term_names)
    assert idata.attrs["bambi_data"] == "the design's columns"
    plain = fit_bambi(frame, "y ~ x + (1 | g)", chains=2, draws=60, warmup=60, seed=2, show_progress=False)
    assert plain.attrs["bambi_data"] == "the table's columns"
