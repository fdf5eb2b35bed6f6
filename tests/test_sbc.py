"""Simulation-based calibration: ranks, uniformity tests, executors, resuming, failures."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import hierlin_stan as hs
from hierlin_stan.utils.az import az
from hierlin_stan.cli import main as cli_main
from hierlin_stan.workflows.sbc import PARAMS, SBCResult, rank_record, sbc, simulation_seeds, uniformity

# Small design: 20 points in 4 groups; 4 chains x 200 NUTS draws: well under a second per fit.
DESIGN = {"groups": [5] * 4}
NUTS = {"chains": 4, "draws": 200, "warmup": 200}
SMALL = dict(design=DESIGN, sampler_settings=NUTS, engine="pystan", show_progress=False)
SEED = 11
K_CALIBRATION = 40


# ------------------------------------------------------------- no sampling
def test_simulation_seeds_depend_only_on_seed_and_k():
    assert simulation_seeds(5, 3) == simulation_seeds(5, 3)
    seeds = {simulation_seeds(5, k) for k in range(50)} | {simulation_seeds(6, k) for k in range(50)}
    assert len(seeds) == 100
    assert all(0 <= s <= 2**31 - 1 for pair in seeds for s in pair)


def _idata(values: dict[str, np.ndarray]) -> "az.InferenceData":
    return az.from_dict(posterior=values)


def test_rank_record_thins_by_ess_and_ranks_the_truth():
    rng = np.random.default_rng(1)
    # independent draws: ESS ~ S, so no thinning; truth at the 30 % quantile of N(0, 1)
    post = {p: rng.normal(size=(4, 250)) for p in PARAMS}
    truth = {p: -0.5244 for p in PARAMS}
    rec = rank_record(_idata(post), truth, n_ranks=99)
    assert rec["thin"] <= 2 and not rec["ess_limited"]
    for p in PARAMS:
        assert 0 <= rec["ranks"][p] <= 99
        # binomial(99, 0.3): mean 29.7, sd 4.6
        assert abs(rec["ranks"][p] - 29.7) < 5 * 4.6
    # strongly autocorrelated chains (AR(1), rho = 0.98): thinned by about S / ESS
    ar = np.zeros((4, 2000))
    noise = rng.normal(size=(4, 2000))
    for t in range(1, 2000):
        ar[:, t] = 0.98 * ar[:, t - 1] + noise[:, t]
    rec = rank_record(_idata({p: ar for p in PARAMS}), {p: 0.0 for p in PARAMS}, n_ranks=19)
    ess = float(az.ess(_idata({"a": ar}), var_names=["a"])["a"])
    assert rec["thin"] == math.ceil(8000 / ess)
    assert rec["min_ess_bulk"] == pytest.approx(ess)


def test_rank_record_flags_too_few_effective_draws():
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.normal(size=(2, 300)), axis=1)  # ESS ~ a few
    rec = rank_record(_idata({p: walk for p in PARAMS}), {p: 0.0 for p in PARAMS}, n_ranks=99)
    assert rec["ess_limited"]
    assert 2 * math.ceil(300 / rec["thin"]) >= 99
    with pytest.raises(ValueError, match="n_ranks=999"):
        rank_record(_idata({p: walk for p in PARAMS}), {p: 0.0 for p in PARAMS}, n_ranks=999)


def test_uniformity_tests_have_their_nominal_size():
    """Uniform ranks: chi-square rejects ~1 % at p < 0.01, the ECDF leaves its 95 % band ~5 %."""
    rng = np.random.default_rng(3)
    n_rep, k, n_ranks = 1000, 100, 49
    out_of_band, small_p, family_alarms = 0, 0, 0
    for _ in range(n_rep // 4):
        ranks = pd.DataFrame(rng.integers(0, n_ranks + 1, size=(k, 4)), columns=list(PARAMS))
        u = uniformity(ranks, n_ranks)
        out_of_band += int((~u["ecdf_in_band"]).sum())
        small_p += int((u["p_value"] < 0.01).sum())
        family_alarms += int(not u["calibrated"].all())
    mcse_band = math.sqrt(0.05 * 0.95 / n_rep)
    assert abs(out_of_band / n_rep - 0.05) < 4 * mcse_band + 0.01  # + discreteness of ranks
    assert small_p / n_rep < 0.01 + 4 * math.sqrt(0.01 * 0.99 / n_rep)
    # the verdict over all 4 parameters: false alarms at most 5 % (Bonferroni is conservative)
    n_families = n_rep // 4
    assert family_alarms / n_families < 0.05 + 4 * math.sqrt(0.05 * 0.95 / n_families)
    with pytest.raises(ValueError, match="bins=51 must lie in 2..L"):
        uniformity(ranks, n_ranks, bins=51)
    # and they see a too-narrow posterior (U-shaped ranks)
    u_shaped = np.concatenate([rng.integers(0, 8, 50), rng.integers(42, 50, 50)])
    bad = uniformity(pd.DataFrame({"a": u_shaped}), n_ranks)
    assert bad.loc["a", "p_value"] < 1e-6 and not bad.loc["a", "ecdf_in_band"]


def test_plots_accept_axes_and_return_them(tmp_path):
    import matplotlib.pyplot as plt

    from hierlin_stan.reports.plots_sbc import plot_ecdf_difference, plot_rank_histogram, plot_sbc

    rng = np.random.default_rng(4)
    ranks = pd.DataFrame(rng.integers(0, 100, size=(60, 4)), columns=list(PARAMS))
    fig, (ax1, ax2) = plt.subplots(1, 2)
    assert plot_rank_histogram(ranks["a"], 99, ax=ax1) is ax1
    assert plot_ecdf_difference(ranks["a"], 99, ax=ax2) is ax2
    axes = plot_sbc(ranks, 99, path=tmp_path / "sbc.png")
    assert axes.shape == (2, 4) and (tmp_path / "sbc.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="kind="):
        plot_sbc(ranks, 99, kind="violin")
    plt.close("all")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_sims=0"):
        sbc(0)
    with pytest.raises(ValueError, match="sampler='pymc-nuts-centered'.*stan-marginal"):
        sbc(5, sampler="pymc-nuts-centered")
    with pytest.raises(ValueError, match="executor='spark'"):
        sbc(5, executor="spark")
    with pytest.raises(ValueError, match="scheduler= is only used"):
        sbc(5, scheduler="tcp://localhost:8786")
    with pytest.raises(ValueError, match="n_ranks=3"):
        sbc(5, n_ranks=3)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['J'\]"):
        sbc(5, design={"J": 3})
    with pytest.raises(ValueError, match="group sizes add up to 10 but n=12"):
        sbc(5, design={"n": 12, "groups": [5, 5]})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stepsize'\]"):
        sbc(5, sampler_settings={"stepsize": 0.1})
    with pytest.raises(ValueError, match=r"adapt_delta=1.5 must lie in \(0, 1\), e.g. 0.95"):
        sbc(5, sampler_settings={"adapt_delta": 1.5})
    with pytest.raises(ValueError, match=r"inits has 2 dicts for chains=4"):
        sbc(5, sampler_settings={"inits": [{"a": 1.0}, {"a": 2.0}]})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['metric'\] for metropolis-marginal.*Stan's NUTS"):
        sbc(5, sampler="metropolis-marginal", sampler_settings={"metric": "dense"})
    with pytest.raises(ValueError, match=r"keeps 4 chains x ceil\(50 draws / thin 5\) = 40 draws.*n_ranks=49"):
        sbc(5, sampler="metropolis-marginal", sampler_settings={"draws": 50}, n_ranks=49)
    with pytest.raises(ValueError, match="n_jobs=0"):
        sbc(5, n_jobs=0)
    with pytest.raises(ValueError, match="seed=-1"):
        sbc(5, seed=-1)
    with pytest.warns(UserWarning, match="diffuse.*weakly_informative"):
        with pytest.raises(ValueError, match="sampler='nope'"):
            sbc(5, priors="notebook", sampler="nope")


def test_cli_bad_arguments(capsys):
    assert cli_main(["sbc", "--n-sims", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hierlin: error: n_sims=0") and err.count("\n") == 1
    assert cli_main(["sbc", "--executor", "spark", "--quiet"]) == 2
    assert "executor='spark'" in capsys.readouterr().err


# ------------------------------------------------------------ with Stan
@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> SBCResult:
    """Marginal NUTS, matching priors, K = 40, in-process; records in a folder."""
    out = tmp_path_factory.mktemp("sbc") / "run"
    return sbc(K_CALIBRATION, seed=SEED, n_jobs=1, out=out, **SMALL)


@pytest.mark.slow
def test_marginal_nuts_passes_sbc(calibrated):
    assert len(calibrated.ok) == K_CALIBRATION and calibrated.failures.empty
    u = calibrated.uniformity(prob=0.99)
    # Family-wise over the 4 parameters, a calibrated sampler fails these checks with
    # probability < 4 x (0.001 + 0.01) = 4.4 % (fixed seed: the outcome is deterministic;
    # seed 2024 gave mu_b p = 0.0024 on its first 40 simulations and p = 0.78 on 200).
    assert (u["p_value"] > 1e-3).all(), u
    assert u["ecdf_in_band"].all(), u
    # the verdict controls the false-alarm rate over the 4 parameters at 5 % (Bonferroni)
    assert calibrated.calibrated
    verdict = calibrated.uniformity()
    assert verdict.attrs["level"] == pytest.approx(0.05 / 8)
    table = calibrated.table
    # 4 chains x 200 draws: R-hat itself scatters by ~0.01-0.02; one of the 40 fits may pass 1.05
    # (seed 11 with the marginal program without the c0 + c1 a + c2 a^2 cancellation: 1.053 once), none 1.1
    assert (table["max_rhat"] > 1.05).sum() <= 1 and (table["max_rhat"] < 1.1).all(), table["max_rhat"].describe()
    # J = 4 groups with 200 warm-up iterations: a few fits have a divergence or two, no more
    assert table["divergences"].sum() < 0.005 * K_CALIBRATION * NUTS["chains"] * NUTS["draws"]
    # posterior z-scores of the truth: mean 0, sd 1 across simulations (within MC error)
    for p in PARAMS:
        z = table[f"z_{p}"]
        assert abs(z.mean()) < 4 / math.sqrt(K_CALIBRATION) and 0.6 < z.std() < 1.5


@pytest.mark.slow
def test_results_are_written_incrementally_and_reported(calibrated):
    out = calibrated.out
    lines = (out / "sims.jsonl").read_text().splitlines()
    assert len(lines) == K_CALIBRATION
    first = json.loads(lines[0])
    assert set(first["ranks"]) == set(PARAMS) and "draws" not in first  # ranks and summaries only
    loaded = SBCResult.load(out)
    pd.testing.assert_frame_equal(loaded.ranks, calibrated.ranks)
    html = hs.write_report(calibrated).read_text()
    for name in ("ranks.csv", "simulations.csv", "uniformity.csv", "uniformity.md", "sbc_ranks.png"):
        assert (out / name).is_file(), name
    assert "Uniformity" in html and "data:image/png;base64" in html and "ceil(S / ESS)" in html
    assert pd.read_csv(out / "ranks.csv", index_col="sim").shape == (K_CALIBRATION, 4)


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted(calibrated, tmp_path):
    out = tmp_path / "resume"
    first = sbc(5, seed=SEED, n_jobs=1, out=out, **SMALL)
    assert first.n_run == 5
    # a write torn by a crash: dropped with a warning, then redone
    with open(out / "sims.jsonl", "a") as handle:
        handle.write('{"sim": 5, "status": "ok", "ran')
    with pytest.warns(UserWarning, match="incomplete record"):
        second = sbc(12, seed=SEED, n_jobs=1, out=out, **SMALL)
    assert second.n_run == 7
    pd.testing.assert_frame_equal(second.ranks, calibrated.ranks.loc[:11])
    assert len((out / "sims.jsonl").read_text().splitlines()) == 12
    # nothing left to do
    assert sbc(12, seed=SEED, n_jobs=1, out=out, **SMALL).n_run == 0
    # other settings in the same folder: refused, naming the difference and the fix
    with pytest.raises(ValueError, match=r"other settings \(differing: \['seed'\]\).*overwrite=True"):
        sbc(12, seed=SEED + 1, n_jobs=1, out=out, **SMALL)


_INTERRUPT_AT: set[int] = set()
_METROPOLIS = {"chains": 4, "draws": 1000, "warmup": 1000}


def metropolis_backend(dataset, seed):
    """A real backend (marginal Metropolis) that a test can interrupt like Ctrl-C."""
    if seed in _INTERRUPT_AT:
        raise KeyboardInterrupt
    return hs.metropolis(dataset, "marginal", seed=seed, priors="weakly_informative", keep_b=False,
                         show_progress=False, **_METROPOLIS)


def failing_backend(dataset, seed):
    """Marginal Metropolis that fails on some datasets, as a sampler may."""
    if dataset.truth["eps"] > 2.0:
        raise RuntimeError(f"no convergence for eps = {dataset.truth['eps']:.2f}")
    return metropolis_backend(dataset, seed)


@pytest.mark.slow
def test_interrupted_run_resumes(tmp_path):
    kw = dict(sampler=metropolis_backend, seed=SEED, n_jobs=1, design=DESIGN, engine="pystan", show_progress=False)
    reference = sbc(8, **kw)
    _INTERRUPT_AT.add(simulation_seeds(SEED, 5)[1])
    try:
        with pytest.raises(KeyboardInterrupt):
            sbc(8, out=tmp_path / "run", **kw)
    finally:
        _INTERRUPT_AT.clear()
    assert len((tmp_path / "run" / "sims.jsonl").read_text().splitlines()) == 5
    resumed = sbc(8, out=tmp_path / "run", **kw)
    assert resumed.n_run == 3
    pd.testing.assert_frame_equal(resumed.ranks, reference.ranks)


@pytest.mark.slow
def test_failing_simulation_is_recorded_with_its_error(tmp_path):
    result = sbc(10, sampler=failing_backend, seed=SEED, n_jobs=1, design=DESIGN, engine="pystan",
                 show_progress=False, out=tmp_path / "run")
    failed = [r for r in result.records if r["status"] == "failed"]
    eps = {r["sim"]: r.get("truth", {}).get("eps") for r in result.records}
    expected = sorted(k for k, e in eps.items() if e > 2.0)
    assert expected, "the seed gives no dataset with eps > 2; pick another seed"
    assert sorted(r["sim"] for r in failed) == expected
    assert all(r["stage"] == "fit" and r["error"].startswith("RuntimeError: no convergence") for r in failed)
    assert len(result.records) == 10 and len(result.ranks) == 10 - len(expected)
    assert list(result.failures.index) == expected
    hs.write_report(result)
    assert (tmp_path / "run" / "failures.csv").is_file()
    assert "Failed simulations" in (tmp_path / "run" / "report.html").read_text()
    # failed ones are kept on resume, and rerun when asked
    assert sbc(10, sampler=failing_backend, seed=SEED, n_jobs=1, design=DESIGN, engine="pystan",
               show_progress=False, out=tmp_path / "run").n_run == 0
    assert sbc(10, sampler=failing_backend, seed=SEED, n_jobs=1, design=DESIGN, engine="pystan",
               show_progress=False, out=tmp_path / "run", retry_failed=True).n_run == len(expected)


@pytest.mark.slow
def test_miscalibration_is_detected():
    # inference under a prior far narrower than the simulating one: eps and sigma_b ranks pile up at L
    wrong = sbc(20, seed=SEED, n_jobs=1, fit_priors={"a_scale": 10.0, "mu_b_scale": 5.0, "sigma_b_family": "halfnormal",
                                                     "sigma_b_scale": 0.1, "eps_family": "halfnormal", "eps_scale": 0.1},
                **SMALL)
    u = wrong.uniformity()
    assert u.loc["eps", "p_value"] < 1e-6 and not u.loc["eps", "ecdf_in_band"]
    assert not wrong.calibrated
    # a Metropolis run far too short (50 iterations after 20 of warm-up): chains stuck near their start
    short = sbc(20, sampler="metropolis-marginal", seed=SEED, n_jobs=1, design=DESIGN, engine="pystan",
                sampler_settings={"chains": 4, "draws": 50, "warmup": 20, "thin": 1}, n_ranks=49,
                show_progress=False)
    us = short.uniformity()
    assert (us["p_value"] < 1e-3).any() and not us["ecdf_in_band"].all(), us
    assert sum(r["ess_limited"] for r in short.ok) > 0


@pytest.mark.slow
def test_pool_and_dask_give_identical_ranks(calibrated):
    pytest.importorskip("distributed", reason="executor='dask' needs dask[distributed] (in the dev extra)")
    pool = sbc(6, seed=SEED, n_jobs=2, executor="pool", **SMALL)
    dask = sbc(6, seed=SEED, n_jobs=2, executor="dask", **SMALL)
    assert pool.failures.empty and dask.failures.empty, (pool.failures, dask.failures)
    pd.testing.assert_frame_equal(pool.ranks, dask.ranks)
    pd.testing.assert_frame_equal(pool.ranks, calibrated.ranks.loc[:5])  # and equal to in-process
    assert len({r["pid"] for r in dask.records}) == 2  # both workers did work


@pytest.mark.slow
def test_cli_sbc_writes_report(tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli_main(["sbc", "--n-sims", "4", "--groups", "5,5,5,5", "--draws", "200", "--warmup", "200",
                     "--n-jobs", "1", "--engine", "pystan", "--seed", str(SEED), "--out", str(out), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "p_value" in text and "ran 4 simulation(s)" in text
    assert (out / "report.html").is_file() and (out / "uniformity.md").is_file()
    ranks = pd.read_csv(out / "ranks.csv", index_col="sim")
    assert ranks.shape == (4, 4)
    assert cli_main(["sbc", "--n-sims", "4", "--groups", "5,5,5,5", "--draws", "200", "--warmup", "200",
                     "--n-jobs", "1", "--engine", "pystan", "--seed", str(SEED + 1), "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
