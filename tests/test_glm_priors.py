"""Priors of formula fits: the text users write, data-scaled defaults, and one clear error per mistake."""

from __future__ import annotations

import numpy as np
import pytest

from hierlin_stan.model.glm_priors import Prior, PriorError, default_priors, parse_prior, resolve_glm_priors

TERMS = ["Intercept", "floor", "log_uppm"]
GROUP_TERMS = ["Intercept", "floor"]
STATS = {"n": 919, "y_mean": 1.2, "y_sd": 0.8, "x_mean": np.array([1.0, 0.17, 0.0]),
         "x_sd": np.array([0.0, 0.4, 0.35]), "z_sd": np.array([0.0, 0.4])}


@pytest.mark.parametrize(
    "text, family, params",
    [
        ("normal(0, 10)", "normal", (0.0, 10.0)),
        ("normal(-1.5,2)", "normal", (-1.5, 2.0)),
        ("halfnormal(1)", "halfnormal", (1.0,)),
        ("half_normal(0, 2)", "halfnormal", (2.0,)),
        ("halfstudent_t(3, 2.5)", "halfstudent_t", (3.0, 2.5)),
        ("half_t(4, 0, 1)", "halfstudent_t", (4.0, 1.0)),
        ("exponential(1)", "exponential", (1.0,)),
        ("uniform(0, 100)", "uniform", (100.0,)),
        ("lkj(2)", "lkj", (2.0,)),
        ("LKJ(1.5)", "lkj", (1.5,)),
    ],
)
def test_prior_text_is_read(text, family, params):
    prior = parse_prior(text)
    assert prior == Prior(family, params)
    assert parse_prior(str(prior)) == prior  # the printed form reads back


@pytest.mark.parametrize(
    "text, message",
    [
        ("cauchy(0, 1)", "distribution 'cauchy' is unknown; accepted: normal(loc, scale), halfnormal(scale)"),
        ("normal(0)", "write normal(loc, scale)"),
        ("normal(0, -1)", "needs positive scale"),
        ("normal(0, x)", "the parameters must be numbers"),
        ("halfnormal(1, 2)", "a half-normal is centred at 0"),
        ("uniform(1, 5)", "starts at 0; write uniform(0, upper)"),
        ("exponential(0)", "needs positive parameters"),
        ("normal 0 1", "is not a distribution"),
        (3.0, "must be text such as 'normal(0, 10)'"),
    ],
)
def test_bad_prior_text_is_named(text, message):
    with pytest.raises(PriorError) as info:
        parse_prior(text, what="priors['beta']")
    assert message in str(info.value)
    assert "priors['beta']" in str(info.value)


def test_defaults_are_data_scaled():
    pr = default_priors(TERMS, GROUP_TERMS, STATS)
    assert pr.beta["floor"] == Prior("normal", (0.0, 2.5 * 0.8 / 0.4))
    loc, scale = pr.beta["Intercept"].params
    assert loc == pytest.approx(1.2) and scale == pytest.approx(2.5 * 0.8 * np.sqrt(1 + (0.17 / 0.4) ** 2))
    assert pr.tau["Intercept"] == Prior("halfstudent_t", (3.0, 2.0))
    assert pr.tau["floor"] == Prior("halfstudent_t", (3.0, 5.0))
    assert pr.sigma == Prior("exponential", (1.25,))
    assert pr.omega == Prior("lkj", (1.0,))
    assert set(pr.sources.values()) == {"default"}


def test_given_priors_override_defaults_per_term_after_all():
    pr = resolve_glm_priors({"beta[floor]": "normal(0, 1)", "beta": "normal(0, 10)", "tau": "halfnormal(1)",
                             "sigma": "halfnormal(2)", "Omega": "lkj(2)"}, TERMS, GROUP_TERMS, STATS)
    assert pr.beta["floor"] == Prior("normal", (0.0, 1.0))  # the per-term key wins over "beta"
    assert pr.beta["Intercept"] == pr.beta["log_uppm"] == Prior("normal", (0.0, 10.0))
    assert pr.tau["floor"] == Prior("halfnormal", (1.0,)) and pr.sigma == Prior("halfnormal", (2.0,))
    assert pr.sources["beta[floor]"] == "given" and pr.sources["Omega"] == "given"
    data = pr.to_stan_data()
    np.testing.assert_array_equal(data["beta_scale"], [10.0, 1.0, 10.0])
    assert list(data["tau_family"]) == [2, 2] and data["sigma_family"] == 2 and data["lkj_eta"] == 2.0
    table = pr.table()
    assert list(table.index) == ["beta[Intercept]", "beta[floor]", "beta[log_uppm]", "tau[Intercept]", "tau[floor]",
                                 "sigma", "Omega"]
    assert "beta[floor] ~ normal(0, 1)" in pr.describe()


@pytest.mark.parametrize(
    "priors, message",
    [
        ({"gamma": "normal(0, 1)"}, "prior key 'gamma' is unknown; use one of beta, tau, sigma, Omega"),
        ({"beta[flor]": "normal(0, 1)"}, "'flor' is not a common term of this formula; its terms are"),
        ({"tau[log_uppm]": "halfnormal(1)"}, "'log_uppm' is not a group term"),
        ({"sigma": "normal(0, 1)"}, "sigma takes halfnormal(scale), halfstudent_t(df, scale), exponential(rate)"),
        ({"beta": "halfnormal(1)"}, "beta takes normal(loc, scale)"),
        ({"Omega": "normal(0, 1)"}, "Omega takes lkj(eta)"),
        ("weakly_informative", "belong to the notebook's model"),
    ],
)
def test_bad_prior_mappings_are_named(priors, message):
    with pytest.raises(PriorError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_glm_priors(priors, TERMS, GROUP_TERMS, STATS)


def test_tau_without_group_terms():
    with pytest.raises(PriorError, match="no group terms, so no tau"):
        resolve_glm_priors({"tau": "halfnormal(1)"}, ["Intercept", "x"], [], STATS)
