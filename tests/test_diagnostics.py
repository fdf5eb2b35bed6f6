"""Tests of hierlin_stan.checks.diagnostics on InferenceData built from known draws."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

from hierlin_stan.checks.diagnostics import (
    HYPER,
    ess_per_second,
    recovery,
    sampler_stats,
    summary,
    verdict,
)

CHAINS, DRAWS, GROUPS = 4, 500, 3
CENTER = {"a": 2.0, "mu_b": 2.0, "sigma_b": 1.0, "eps": 0.5}
SCALE = {"a": 0.1, "mu_b": 0.2, "sigma_b": 0.1, "eps": 0.05}
TRUTH = {"a": 2.0, "mu_b": 2.0, "sigma_b": 1.0, "eps": 0.0}


def make_idata(
    seed: int = 0,
    *,
    nuts: bool = True,
    divergent: int = 0,
    deep: int = 0,
    energy: np.ndarray | None = None,
    chain_shift: float = 0.0,
    attrs: dict | None = None,
) -> az.InferenceData:
    """Independent normal draws around CENTER, with planted sampler statistics."""
    rng = np.random.default_rng(seed)
    post = {k: CENTER[k] + SCALE[k] * rng.normal(size=(CHAINS, DRAWS)) for k in HYPER}
    post["a"][0] += chain_shift  # chain 0 off: R-hat must notice
    post["b"] = rng.normal(2.0, 1.0, size=(CHAINS, DRAWS, GROUPS))
    stats = {"lp": rng.normal(size=(CHAINS, DRAWS)), "acceptance_rate": rng.uniform(size=(CHAINS, DRAWS))}
    if nuts:
        diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
        diverging.flat[rng.choice(diverging.size, size=divergent, replace=False)] = True
        depth = np.full((CHAINS, DRAWS), 4)
        depth.flat[:deep] = 10
        stats.update(
            diverging=diverging,
            energy=rng.normal(size=(CHAINS, DRAWS)) if energy is None else energy,
            tree_depth=depth,
            step_size=np.full((CHAINS, DRAWS), 0.1),
            n_steps=np.full((CHAINS, DRAWS), 15),
        )
    base = {"sampler": "nuts" if nuts else "metropolis", "engine": "pystan",
            "parameterization": "centered", "seed": seed, "sampling_seconds": 2.5,
            **{f"true_{k}": v for k, v in TRUTH.items()}}
    if attrs is not None:
        base = attrs
    x = rng.uniform(0, 10, 6)
    group = np.array([0, 1, 2, 0, 1, 2])
    return az.from_dict(
        posterior=post,
        sample_stats=stats,
        observed_data={"y": 2 + 2 * x},
        constant_data={"x": x, "group": group},
        dims={"b": ["group"], "y": ["obs"], "x": ["obs"], "group": ["obs"]},
        coords={"group": np.arange(GROUPS)},
        attrs=base,
    )


@pytest.fixture(scope="module")
def idata() -> az.InferenceData:
    return make_idata()


# ----------------------------------------------------------------------------- summary


def test_summary_rows_columns_and_ess_per_second(idata):
    table = summary(idata)
    assert list(table.index) == list(HYPER)
    for col in ("mean", "sd", "hdi_5%", "hdi_95%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"):
        assert col in table.columns
    np.testing.assert_allclose(table["ess_bulk_per_s"], table["ess_bulk"] / 2.5)
    # Means are those of the planted draws (unrounded).
    for k in HYPER:
        draws = idata.posterior[k].values
        assert table.loc[k, "mean"] == pytest.approx(draws.mean(), rel=1e-12)
        assert abs(table.loc[k, "mean"] - CENTER[k]) < 4 * SCALE[k] / np.sqrt(CHAINS * DRAWS)


def test_summary_hdi_prob_and_vector_variable(idata):
    table = summary(idata, var_names=["b"], hdi_prob=0.5)
    assert len(table) == GROUPS
    assert "hdi_25%" in table.columns and "hdi_75%" in table.columns


def test_summary_without_sampling_time_gives_nan():
    bare = make_idata(attrs={})
    assert summary(bare)["ess_bulk_per_s"].isna().all()
    assert np.isnan(ess_per_second(bare))


def test_summary_unknown_variable_names_it(idata):
    with pytest.raises(ValueError, match="nope"):
        summary(idata, var_names=["a", "nope"])


def test_ess_per_second_is_min_bulk_ess_over_seconds(idata):
    table = summary(idata)
    assert ess_per_second(idata) == pytest.approx(table["ess_bulk"].min() / 2.5)


def test_ess_per_second_divides_by_the_work_summed_over_chains(idata):
    # 4 chains of 2.5 s each in parallel: the slowest chain took 2.5 s, the work was 10 chain-seconds
    idata = idata.copy()
    idata.attrs["sampling_chain_seconds"] = 10.0
    table = summary(idata)
    assert ess_per_second(idata) == pytest.approx(table["ess_bulk"].min() / 10.0)
    assert table["ess_bulk_per_s"].tolist() == pytest.approx((table["ess_bulk"] / 10.0).tolist())
    stats = sampler_stats(idata)
    assert stats["sampling_seconds"] == 2.5 and stats["sampling_chain_seconds"] == 10.0
    assert stats["min_ess_bulk_per_s"] == pytest.approx(table["ess_bulk"].min() / 10.0)


# ------------------------------------------------------------------------ sampler_stats


def test_sampler_stats_counts_planted_divergences_and_depth_hits():
    stats = sampler_stats(make_idata(divergent=7, deep=3))
    assert stats["divergences"] == 7
    assert stats["divergence_rate"] == pytest.approx(7 / (CHAINS * DRAWS))
    assert stats["tree_depth_max_hits"] == 3
    assert stats["n_chains"] == CHAINS and stats["n_draws"] == DRAWS
    assert (stats["sampler"], stats["engine"], stats["parameterization"]) == ("nuts", "pystan", "centered")
    assert stats["sampling_seconds"] == 2.5
    assert stats["min_ess_bulk_per_s"] == pytest.approx(stats["min_ess_bulk"] / 2.5)
    assert stats["max_rhat"] < 1.01
    assert stats["min_ess_bulk"] > 1000  # independent draws


def test_sampler_stats_ebfmi_matches_definition():
    rng = np.random.default_rng(5)
    energy = np.cumsum(rng.normal(size=(CHAINS, DRAWS)), axis=1)  # random walk: tiny E-BFMI
    stats = sampler_stats(make_idata(energy=energy))
    expected = np.mean(np.diff(energy, axis=1) ** 2, axis=1) / np.var(energy, axis=1, ddof=1)
    np.testing.assert_allclose(stats["ebfmi"], expected)
    assert len(stats["ebfmi"]) == CHAINS
    assert stats["min_ebfmi"] == pytest.approx(expected.min())
    assert stats["min_ebfmi"] < 0.3


def test_sampler_stats_metropolis_without_nuts_statistics():
    stats = sampler_stats(make_idata(nuts=False))
    assert stats["divergences"] is None
    assert stats["divergence_rate"] is None
    assert stats["ebfmi"] is None and stats["min_ebfmi"] is None
    assert stats["tree_depth_max_hits"] is None
    assert stats["sampler"] == "metropolis"
    assert np.isfinite(stats["max_rhat"]) and stats["min_ess_bulk"] > 0


def test_sampler_stats_without_attrs():
    stats = sampler_stats(make_idata(attrs={}))
    assert stats["sampler"] is None and stats["sampling_seconds"] is None
    assert np.isnan(stats["min_ess_bulk_per_s"])


def test_sampler_stats_rhat_sees_a_stuck_chain():
    stats = sampler_stats(make_idata(chain_shift=1.0))
    assert stats["max_rhat"] > 1.1
    assert stats["max_rhat_var"] == "a"


# ----------------------------------------------------------------------------- recovery


def test_recovery_truth_inside_the_draws(idata):
    rec = recovery(idata)  # truth from attrs; eps truth 0 -> no eps row
    assert list(rec.index) == ["a", "mu_b", "sigma_b"]
    assert list(rec.columns) == ["truth", "mean", "sd", "z", "lower", "upper", "covered"]
    assert rec["covered"].all()
    for k in rec.index:
        draws = idata.posterior[k].values.ravel()
        lo, hi = np.quantile(draws, [0.05, 0.95])
        assert rec.loc[k, "lower"] == pytest.approx(lo)
        assert rec.loc[k, "upper"] == pytest.approx(hi)
        assert rec.loc[k, "z"] == pytest.approx((draws.mean() - TRUTH[k]) / draws.std(ddof=1))
        assert abs(rec.loc[k, "z"]) < 0.2


def test_recovery_truth_far_outside(idata):
    truth = {"a": 2.0 + 10 * SCALE["a"], "mu_b": 2.0, "sigma_b": 1.0 - 10 * SCALE["sigma_b"]}
    rec = recovery(idata, truth=truth)
    assert not rec.loc["a", "covered"] and not rec.loc["sigma_b", "covered"]
    assert rec.loc["mu_b", "covered"]
    assert rec.loc["a", "z"] == pytest.approx(-10, abs=0.3)
    assert rec.loc["sigma_b", "z"] == pytest.approx(10, abs=0.3)


def test_recovery_eps_row_only_when_true_eps_positive(idata):
    with_eps = recovery(idata, truth={**TRUTH, "eps": 0.5})
    assert list(with_eps.index) == ["a", "mu_b", "sigma_b", "eps"]
    assert with_eps.loc["eps", "covered"]
    without = recovery(idata, truth={**TRUTH, "eps": 0.0})
    assert "eps" not in without.index


def test_recovery_prob_sets_interval_width(idata):
    narrow = recovery(idata, prob=0.5)
    wide = recovery(idata, prob=0.99)
    assert (wide["upper"] - wide["lower"] > narrow["upper"] - narrow["lower"]).all()
    with pytest.raises(ValueError, match="prob"):
        recovery(idata, prob=1.5)


def test_recovery_accepts_object_with_truth_attribute():
    class FakeDataset:
        truth = {"a": 50.0, "mu_b": 2.0, "sigma_b": 1.0, "eps": 0.0}

    rec = recovery(make_idata(), truth=FakeDataset())
    assert rec.loc["a", "truth"] == 50.0 and not rec.loc["a", "covered"]


def test_recovery_without_truth_raises_helpful_error():
    bare = make_idata(attrs={"sampler": "nuts"})
    with pytest.raises(ValueError, match=r"truth=\{'a'"):
        recovery(bare)
    with pytest.raises(ValueError, match="truth"):
        recovery(bare, truth={"alpha": 1.0})


# ------------------------------------------------------------------------------ verdict


def test_verdict_reports_planted_divergences_and_suggests_marginal():
    text = verdict(make_idata(divergent=12))
    assert "12 divergent transitions" in text
    assert "marginal" in text
    assert "problem" in text.splitlines()[0].lower()


def test_verdict_clean_fit_has_no_divergence_problem(idata):
    text = verdict(idata)
    assert "[OK] no divergent transitions" in text
    assert not any("diverg" in l.lower() for l in text.splitlines() if not l.startswith("[OK]"))
    assert "marginal" not in text
    assert "[PROBLEM]" not in text and "[WARNING]" not in text
    assert "all checks passed" in text.splitlines()[0]
    assert "R-hat" in text and "ESS" in text and "E-BFMI" in text
    assert "a, mu_b, sigma_b inside" in text


def test_verdict_metropolis_says_divergences_not_available():
    text = verdict(make_idata(nuts=False))
    line = next(l for l in text.splitlines() if "divergen" in l.lower())
    assert line.startswith("[n/a]")
    assert "E-BFMI" in text and "[n/a] E-BFMI" in text


def test_verdict_flags_rhat_ess_ebfmi_and_missed_recovery():
    rng = np.random.default_rng(9)
    energy = np.cumsum(rng.normal(size=(CHAINS, DRAWS)), axis=1)
    text = verdict(make_idata(chain_shift=1.0, energy=energy), truth={"a": 2.0, "mu_b": 2.0, "sigma_b": 3.0})
    lines = text.splitlines()
    assert any(l.startswith("[PROBLEM]") and "R-hat" in l and "1.01" in l for l in lines)
    assert any(l.startswith("[WARNING]") and "E-BFMI" in l for l in lines)
    rec_line = next(l for l in lines if "recovery" in l)
    assert rec_line.startswith("[PROBLEM]") and "sigma_b" in rec_line.split("inside")[0]


def test_verdict_flags_low_ess():
    rng = np.random.default_rng(3)
    # Strongly autocorrelated eps: AR(1) with rho = 0.99 -> bulk-ESS well under 400.
    ar = np.zeros((CHAINS, DRAWS))
    for t in range(1, DRAWS):
        ar[:, t] = 0.99 * ar[:, t - 1] + rng.normal(size=CHAINS)
    base = make_idata()
    base.posterior["eps"].values[:] = 0.5 + 0.01 * ar
    text = verdict(base)
    assert any(l.startswith("[PROBLEM]") and "bulk-ESS" in l and "(eps)" in l for l in text.splitlines())


def test_verdict_without_truth_says_recovery_not_checked():
    text = verdict(make_idata(attrs={"sampler": "nuts"}))
    assert "[n/a] recovery not checked" in text
