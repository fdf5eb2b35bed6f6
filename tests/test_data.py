"""Dataset building, validation and round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hierlin_stan as hs
from hierlin_stan.model.dataset import Dataset


def test_simulate_defaults_reproduce_the_notebook():
    ds = hs.simulate(seed=1)
    assert ds.n == 100 and ds.n_groups == 100 and ds.one_slope_per_point
    assert ds.truth == {"a": 2.0, "mu_b": 2.0, "sigma_b": 1.0, "eps": 0.0}
    assert 0 <= ds.x.min() and ds.x.max() <= 10
    # eps = 0: y is exactly a + b x
    np.testing.assert_allclose(ds.y, 2.0 + ds.true_b * ds.x, rtol=0, atol=1e-12)


def test_simulate_seed_reproducible_and_distinct():
    a, b, c = hs.simulate(seed=5), hs.simulate(seed=5), hs.simulate(seed=6)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)


def test_simulate_grouped_sizes_and_noise():
    ds = hs.simulate(groups=[3, 5, 2], eps=0.5, seed=2)
    assert ds.n == 10 and ds.n_groups == 3
    assert np.bincount(ds.group)[1:].tolist() == [3, 5, 2]
    resid = ds.y - (2.0 + ds.true_b[ds.group - 1] * ds.x)
    assert np.all(resid != 0)
    assert hs.simulate(n=10, groups=3).n_groups == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"groups": [3, 5], "n": 9}, "add up to 8"),
        ({"n": 1}, "n=1"),
        ({"sigma_b": -1}, "sigma_b=-1 must be >= 0"),
        ({"eps": -0.5}, "eps=-0.5 must be >= 0"),
        ({"x_low": 5, "x_high": 5}, "x_high"),
        ({"groups": 0}, "groups=0"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hs.simulate(**kwargs)


@pytest.mark.parametrize(
    "x, y, group, message",
    [
        ([1, np.nan, 3], [1, 2, 3], None, r"x\[1\] = nan is not finite"),
        ([1, 2, 3], [1, np.inf, 3], None, r"y\[1\] = inf"),
        ([1, 2, 3], [1, 2], None, "x has 3 values but y has 2"),
        ([], [], None, "empty"),
        ([1.0], [2.0], None, "only one observation"),
        ([1, 2, 3], [1, 2, 3], [1, 2], "group has 2 labels"),
        ([1, 2, 3], [1, 2, 3], [1, 0, 2], "group label 0 is out of range"),
        ([1, 2, 3], [1, 2, 3], [1, 1.5, 2], "1.5 is not an integer"),
        ([1, 2, 3], [1, 2, 3], ["a", "b", "c"], "integers"),
        ([1, 2, 3], [1, 2, 3], [1, None, 2], "group label of observation 1 is missing"),
        (["p", "q"], [1, 2], None, "x must be numbers"),
    ],
)
def test_from_arrays_names_the_problem(x, y, group, message):
    with pytest.raises(ValueError, match=message):
        Dataset.from_arrays(x, y, group)


def test_group_out_of_range_for_given_n_groups():
    with pytest.raises(ValueError, match="group label 3 is out of range for n_groups=2"):
        Dataset.from_arrays([1, 2, 3], [1, 2, 3], [1, 2, 3], n_groups=2)


def test_group_sums_match_direct_computation():
    ds = hs.simulate(groups=[4, 1, 6], eps=1.0, seed=3)
    sums = ds.group_sums()
    for j in range(3):
        m = ds.group == j + 1
        assert sums["n_group"][j] == m.sum()
        np.testing.assert_allclose(sums["sum_xy"][j], np.sum(ds.x[m] * ds.y[m]))
        np.testing.assert_allclose(sums["sum_yy"][j], np.sum(ds.y[m] ** 2))


def test_stan_data_shapes_per_parameterization():
    ds = hs.simulate(groups=[2, 3], eps=1.0, seed=3)
    pri = hs.Priors().to_stan_data()
    centered = ds.to_stan_data("centered", pri)
    assert centered["N"] == 5 and centered["J"] == 2 and list(centered["g"]) == [1, 1, 2, 2, 2]
    marginal = ds.to_stan_data("marginal", pri)
    assert "x" not in marginal and marginal["N_rep"] == 0 and len(marginal["sum_x"]) == 2
    assert ds.to_stan_data("marginal", pri, write_y_rep=True)["N_rep"] == 5


def test_csv_round_trip(tmp_path):
    ds = hs.simulate(groups=[3, 4], eps=0.3, seed=4)
    path = ds.to_csv(tmp_path / "d.csv")
    back = Dataset.from_csv(path, x="x", y="y", group="group")
    np.testing.assert_array_equal(back.x, ds.x)
    np.testing.assert_array_equal(back.y, ds.y)
    np.testing.assert_array_equal(back.group, ds.group)


def test_csv_errors_name_column_and_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("xx,y\n1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"no column 'x'; did you mean 'xx'\? \(columns: xx, y\)"):
        Dataset.from_csv(path)
    path.write_text("x,y\n1,2\n3,oops\n")
    with pytest.raises(ValueError, match=r"line 3, column 'y': 'oops' is not a number"):
        Dataset.from_csv(path)
    with pytest.raises(ValueError, match="does not exist"):
        Dataset.from_csv(tmp_path / "missing.csv")


def test_csv_group_labels_are_names_not_indices(tmp_path):
    """Names and sparse ids make one group each, numbered in sorted order, and the labels are kept."""
    path = tmp_path / "named.csv"
    path.write_text("x,y,county\n1,2,AITKIN\n2,3,ANOKA\n3,5,AITKIN\n4,4,BECKER\n")
    ds = Dataset.from_csv(path, group="county")
    assert ds.n_groups == 3 and list(ds.labels) == ["AITKIN", "ANOKA", "BECKER"]
    assert list(ds.group) == [1, 2, 1, 3] and list(ds.group_labels) == ["AITKIN", "ANOKA", "AITKIN", "BECKER"]
    path.write_text("x,y,id\n1,2,85027\n2,3,1027\n3,5,85027\n")
    ds = Dataset.from_csv(path, group="id")
    assert ds.n_groups == 2 and list(ds.labels) == [1027, 85027]
    back = Dataset.from_csv(ds.to_csv(tmp_path / "again.csv"), group="group")
    assert list(back.labels) == [1027, 85027] and list(back.group) == list(ds.group)
    assert list(Dataset.from_json(ds.to_json(tmp_path / "d.json")).labels) == [1027, 85027]


def test_json_round_trip_keeps_truth(tmp_path):
    ds = hs.simulate(groups=[3, 4], eps=0.3, seed=4)
    path = ds.to_json(tmp_path / "d.json")
    doc = json.loads(path.read_text())
    assert doc["N"] == 7 and doc["J"] == 2 and doc["true_eps"] == 0.3
    back = Dataset.from_json(path)
    assert back.truth == ds.truth and back.n_groups == 2
    np.testing.assert_array_equal(back.y, ds.y)
    np.testing.assert_array_equal(back.true_b, ds.true_b)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite, st.integers(1, 5)), min_size=2, max_size=30))
def test_property_json_round_trip_is_exact(tmp_path_factory, rows):
    x, y, g = (list(t) for t in zip(*rows))
    ds = Dataset.from_arrays(x, y, g)
    path = ds.to_json(tmp_path_factory.mktemp("rt") / "d.json")
    back = Dataset.from_json(path)
    np.testing.assert_array_equal(back.x, ds.x)
    np.testing.assert_array_equal(back.y, ds.y)
    np.testing.assert_array_equal(back.group, ds.group)
    assert back.n_groups == ds.n_groups


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.one_of(finite, st.just(float("nan")), st.just(float("inf"))), min_size=0, max_size=8),
    st.lists(finite, min_size=0, max_size=8),
)
def test_property_validation_accepts_only_clean_data(x, y):
    clean = len(x) == len(y) >= 2 and all(np.isfinite(x))
    if clean:
        assert Dataset.from_arrays(x, y).n == len(x)
    else:
        with pytest.raises(ValueError):
            Dataset.from_arrays(x, y)
