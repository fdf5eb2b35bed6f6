"""From a formula and a table to design pieces: labels, coding, checks, files, chunked sums."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierlin_stan as hs
from hierlin_stan.model.design import DataError
from hierlin_stan.model.glm import design


def _radon_like(seed=0, n_groups=12):
    """Rows shaped like the radon data: string county labels, a 0/1 floor, a county-level uranium."""
    rng = np.random.default_rng(seed)
    counties = np.array([f"COUNTY_{k:03d}" for k in range(n_groups)])
    sizes = rng.integers(1, 15, size=n_groups)
    county = np.repeat(counties, sizes)
    uppm = np.repeat(rng.uniform(0.5, 2.0, size=n_groups), sizes)
    floor = rng.integers(0, 2, size=county.size)
    kind = np.repeat(rng.choice(["rural", "urban"], size=n_groups), sizes)
    y = 1.0 + 0.6 * np.log(uppm) - 0.7 * floor + rng.normal(0, 0.8, size=county.size)
    return pd.DataFrame({"log_radon": y, "floor": floor, "uppm": uppm, "county": county, "kind": kind,
                         "junk": "not a number"})


def test_string_labels_become_groups_in_order_and_stay_labels():
    df = _radon_like()
    d = design(df, "log_radon ~ floor + (1 | county)")
    assert d.J == df["county"].nunique()
    assert list(d.group_labels) == sorted(df["county"].unique())
    assert d.group_sizes().loc["COUNTY_003"] == (df["county"] == "COUNTY_003").sum()


def test_sparse_integer_labels_make_exactly_one_group_each():
    df = _radon_like(n_groups=85)
    ids = {label: (k + 1) * 1000 + 27 for k, label in enumerate(sorted(df["county"].unique()))}
    df["county_id"] = df["county"].map(ids)
    d = design(df, "log_radon ~ floor + (1 | county_id)")
    assert d.J == 85  # not 85,027
    assert list(d.group_labels[:3]) == [1027, 2027, 3027]
    assert d.group_labels.dtype.kind == "i"


def test_categorical_predictors_use_reference_coding_with_the_level_named():
    df = _radon_like()
    d = design(df, "log_radon ~ kind + floor + (1 | county)")
    assert d.term_names == ["Intercept", "kind[urban]", "floor"]
    x = d.rows.x
    assert np.array_equal(x[:, 1], (df["kind"] == "urban").to_numpy(float))
    # without an intercept the first categorical gets every level (R's rule)
    assert design(df, "log_radon ~ 0 + kind + floor").term_names == ["kind[rural]", "kind[urban]", "floor"]
    # C() makes a number categorical; interactions name their parts
    assert design(df, "log_radon ~ C(floor) + kind:uppm").term_names == ["Intercept", "C(floor)[1]",
                                                                          "kind[rural]:uppm", "kind[urban]:uppm"]
    assert design(df, "log_radon ~ floor*uppm").term_names == ["Intercept", "floor", "uppm", "floor:uppm"]


def test_group_level_predictor_goes_in_x_and_is_flagged_in_z():
    df = _radon_like()
    d = design(df, "log_radon ~ floor + log(uppm) + (1 + floor | county)")
    assert d.term_names == ["Intercept", "floor", "log(uppm)"]
    assert d.group_term_names == ["Intercept", "floor"]
    # every common term is informed through the counties only: floor and the intercept vary by county, and
    # log(uppm) is constant within each county (so C2 = 0: nothing left after projecting out each county's Z)
    assert d.stats.residual.null_rank == 3
    with pytest.warns(UserWarning, match="'log\\(uppm\\)' is constant within every group"):
        design(df, "log_radon ~ floor + log(uppm) + (1 + log(uppm) | county)")


def test_missing_values_are_counted_by_column_or_dropped_when_asked():
    df = _radon_like()
    df.loc[[3, 7, 8], "floor"] = np.nan
    df.loc[[8, 20], "county"] = None
    with pytest.raises(DataError) as info:
        design(df, "log_radon ~ floor + (1 | county)")
    msg = str(info.value)
    assert "4 row(s) have missing values" in msg and "'floor' (3)" in msg and "'county' (2)" in msg
    assert "dropna=True" in msg and "row 3" in msg
    with pytest.warns(UserWarning, match="dropped 4 row"):
        d = design(df, "log_radon ~ floor + (1 | county)", dropna=True)
    assert d.dropped_rows == 4 and d.N == len(df) - 4
    # a column the formula does not use may hold anything
    df2 = _radon_like()
    df2.loc[0, "uppm"] = np.nan
    assert design(df2, "log_radon ~ floor + (1 | county)").N == len(df2)


@pytest.mark.parametrize(
    "formula, change, message",
    [
        ("county ~ floor", None, "the response 'county' is not numeric"),
        ("log_radon ~ flor + (1 | county)", None, "has no column 'flor'; did you mean 'floor'"),
        ("log_radon ~ floor + basement + (1 | county)", "basement", "'basement' = 1*Intercept - 1*floor"),
        ("log_radon ~ floor + zero", "zero", "'zero' is zero in every row"),
        ("log_radon ~ floor + kind", "one_kind", "kind has a single level"),
        ("log_radon ~ log(floor)", None, "log(floor) is not finite"),
        ("log_radon ~ floor + (1 | county)", "mixed", "mixes label types"),
        ("log_radon ~ floor + (1 + floor + floor2 | county)", "floor2", "group terms are collinear"),
    ],
)
def test_bad_data_get_one_clear_error(formula, change, message):
    df = _radon_like()
    if change == "basement":
        df["basement"] = 1 - df["floor"]
    elif change == "zero":
        df["zero"] = 0.0
    elif change == "one_kind":
        df["kind"] = "rural"
    elif change == "mixed":
        df["county"] = df["county"].astype(object)
        df.loc[0, "county"] = 5
    elif change == "floor2":
        df["floor2"] = 2 * df["floor"]
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        design(df, formula)


def test_files_are_read_with_only_the_formula_columns(tmp_path):
    df = _radon_like()
    csv = tmp_path / "radon.csv"
    df.to_csv(csv, index=False)
    parquet = tmp_path / "radon.parquet"
    df.to_parquet(parquet, index=False)
    in_memory = design(df, "log_radon ~ floor + (1 + floor | county)")
    for path in (csv, parquet):
        d = design(path, "log_radon ~ floor + (1 + floor | county)")
        assert list(d.group_labels) == list(in_memory.group_labels)
        np.testing.assert_allclose(d.stats.e_star, in_memory.stats.e_star, rtol=1e-12, atol=1e-12)
        assert d.source == str(path)
    with pytest.raises(DataError, match="has no column 'nope'"):
        design(csv, "log_radon ~ nope")
    with pytest.raises(DataError, match="does not exist"):
        design(tmp_path / "missing.csv", "y ~ x")
    with pytest.raises(DataError, match="unknown file type"):
        (tmp_path / "data.xlsx").write_text("x")
        design(tmp_path / "data.xlsx", "y ~ x")


def test_text_deep_in_a_numeric_column_is_named(tmp_path):
    rows = ["y,x,g"] + [f"{k * 0.1},{k},a{k % 3}" for k in range(300_000)] + ["five,1,a1"]
    path = tmp_path / "late_text.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="row 300000 holds 'five'"):
        design(path, "y ~ x + (1 | g)")


def test_sums_do_not_depend_on_the_chunk_size():
    df = _radon_like(seed=3, n_groups=20)
    big = design(df, "log_radon ~ floor + log(uppm) + (1 + floor | county)", keep_rows=False)
    small = design(df, "log_radon ~ floor + log(uppm) + (1 + floor | county)", chunk_rows=7, keep_rows=False)
    assert big.rows is None and small.rows is None
    for a, b in ((big.stats.e_star, small.stats.e_star), (big.stats.blocks.f, small.stats.blocks.f),
                 (big.stats.residual.c2, small.stats.residual.c2)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    assert small.stats.residual.rss_min == pytest.approx(big.stats.residual.rss_min, rel=1e-11)


def test_a_dataset_can_be_given_a_formula():
    ds = hs.simulate(groups=[5] * 6, eps=0.3, seed=2)
    d = design(ds, "y ~ 1 + x + (0 + x | group)")
    assert d.J == 6 and d.term_names == ["Intercept", "x"] and d.group_term_names == ["x"]
    assert list(d.group_labels) == [1, 2, 3, 4, 5, 6]


def test_design_is_exported_and_describes_itself():
    d = hs.design(_radon_like(), "log_radon ~ floor + (1 + floor | county)")
    text = d.describe()
    assert "2 correlated group term(s) [Intercept, floor]" in text and "12 groups of 'county'" in text
    assert repr(d).startswith("Design('log_radon ~ 1 + floor + (1 + floor | county)'")
