"""Prior sets: presets, overrides and validation."""

import pytest

from hierlin_stan.model.priors import Priors, resolve_priors


def test_notebook_priors_are_the_default():
    data = resolve_priors(None).to_stan_data()
    assert data["a_scale"] == 1e4 and data["mu_b_scale"] == 1e4
    assert (data["sigma_b_family"], data["sigma_b_scale"]) == (1, 100.0)
    assert (data["eps_family"], data["eps_scale"]) == (1, 10.0)


def test_presets_and_overrides():
    weak = resolve_priors("weakly_informative")
    assert weak.sigma_b_family == "halfnormal" and weak.to_stan_data()["sigma_b_family"] == 2
    assert resolve_priors({"eps_scale": 5}).eps_scale == 5
    assert "half-normal(0, 2.5)" in weak.describe()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"a_scale": 0}, "a_scale=0 is invalid"),
        ({"mu_b_scale": -2}, "positive"),
        ({"sigma_b_scale": 0}, "upper end of a uniform"),
        ({"eps_family": "cauchy"}, "unknown"),
        ({"a_loc": float("nan")}, "finite"),
    ],
)
def test_bad_priors_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Priors(**kwargs)


def test_resolve_rejects_unknown_names():
    with pytest.raises(ValueError, match="not a preset"):
        resolve_priors("flat")
    with pytest.raises(ValueError, match="unknown prior field"):
        resolve_priors({"sigma": 1})
