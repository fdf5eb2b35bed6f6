"""SBC on any formula: datasets simulated from the priors with glm_simulate.stan, every beta, tau, sigma and
correlation ranked; calibrated for marginal NUTS, a wrong fitting prior flagged, the same executors, resume,
report and command line as the notebook's SBC.

The issue's check is K = 200; that takes several minutes of CPU, too long for every CI run. It was run
once by hand (``hierlin sbc --formula 'y ~ x + (1 + x | g)' --n-sims 200 ...``, the numbers are in the
lead's closing note of issue 11). Here K = 40 (as the notebook's SBC test): a calibration test with
less power, which still fails for a sampler with a wrong prior (the last test, K = 30, p < 1e-6).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import hierlin_stan as hs
from hierlin_stan.cli import main as cli_main
from hierlin_stan.workflows.sbc import DEFAULT_FORMULA_PRIORS, SBCResult, sbc

FORMULA = "y ~ x + (1 + x | g)"
DESIGN = {"groups": [5] * 8}
NUTS = {"chains": 4, "draws": 250, "warmup": 250}
PARAMS = ["beta[Intercept]", "beta[x]", "tau[Intercept]", "tau[x]", "sigma", "Omega[x, Intercept]"]
SEED = 2026
K = 40


# ------------------------------------------------------------- no sampling
def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"priors for a formula's SBC must give \['Omega'\] too"):
        sbc(5, formula=FORMULA, priors={"beta": "normal(0, 1)", "tau": "halfnormal(1)", "sigma": "halfnormal(1)"})
    with pytest.raises(ValueError, match=r"priors='weakly_informative': a formula's priors are a mapping"):
        sbc(5, formula=FORMULA, priors="weakly_informative")
    with pytest.raises(ValueError, match=r"fit_priors: prior key 'gamma' is unknown"):
        sbc(5, formula=FORMULA, fit_priors={"gamma": "normal(0, 1)"})
    with pytest.raises(ValueError, match=r"sampler='metropolis-collapsed' cannot be calibrated here \(it runs formulas only"):
        sbc(5, sampler="metropolis-collapsed")
    with pytest.raises(ValueError, match=r"sampler='bambi' cannot be calibrated here; choose one of \['stan-marginal'"):
        sbc(5, formula=FORMULA, sampler="bambi")
    with pytest.raises(ValueError, match=r"design has unknown key\(s\) \['J'\]"):
        sbc(5, formula=FORMULA, design={"J": 3})
    with pytest.raises(ValueError, match="the formula is empty"):
        sbc(5, formula="")
    with pytest.raises(ValueError, match=r"C\(k\) is categorical; a formula's SBC simulates numeric predictors only"):
        sbc(5, formula="y ~ x + C(k) + (1 | g)")


def test_cli_formula_flags_are_checked(capsys):
    assert cli_main(["sbc", "--formula", FORMULA, "--priors", "notebook", "--quiet"]) == 2
    assert "with --formula give distributions" in capsys.readouterr().err
    assert cli_main(["sbc", "--fit-prior", "sigma=halfnormal(1)", "--quiet"]) == 2
    assert "--fit-prior goes with --formula" in capsys.readouterr().err


# ------------------------------------------------------------ with Stan
@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> SBCResult:
    """Marginal NUTS on (1 + x | g), matching priors, K simulations on two pool workers; records in a folder."""
    out = tmp_path_factory.mktemp("sbc_formula") / "run"
    return sbc(K, formula=FORMULA, design=DESIGN, sampler_settings=NUTS, seed=SEED, n_jobs=2, out=out,
               show_progress=False)


@pytest.mark.slow
def test_marginal_nuts_is_calibrated_on_a_formula(calibrated):
    """K = 40, six scalars; the verdict's family-wise false-alarm rate is 5 % (Bonferroni over 2 x 6 tests).

    With a fixed seed the outcome is deterministic; a calibrated sampler fails the p > 1e-3 and
    99 % ECDF-band checks below with probability < 6 x (0.001 + 0.01) = 6.6 %.
    """
    assert len(calibrated.ok) == K and calibrated.failures.empty
    assert calibrated.params == PARAMS
    u = calibrated.uniformity(prob=0.99)
    assert (u["p_value"] > 1e-3).all() and u["ecdf_in_band"].all(), u
    verdict = calibrated.uniformity()
    assert verdict.attrs["level"] == pytest.approx(0.05 / 12)
    assert calibrated.calibrated, verdict
    table = calibrated.table
    assert (table["max_rhat"] < 1.05).all()
    assert table["ess_limited"].sum() == 0
    # posterior z-scores of the truth: mean 0, sd about 1 across simulations (within MC error)
    for p in PARAMS:
        z = table[f"z_{p}"]
        assert abs(z.mean()) < 4 / math.sqrt(K) + 0.05 and 0.6 < z.std() < 1.5, (p, z.mean(), z.std())


@pytest.mark.slow
def test_formula_records_resume_and_report(calibrated):
    out = calibrated.out
    config = json.loads((out / "sbc.json").read_text())
    assert config["params"] == PARAMS and config["generator"]["formula"] == FORMULA
    assert config["generator"]["priors"] == DEFAULT_FORMULA_PRIORS
    first = json.loads((out / "sims.jsonl").read_text().splitlines()[0])
    assert set(first["ranks"]) == set(PARAMS) and set(first["truth"]) == set(PARAMS)
    assert -1 <= first["truth"]["Omega[x, Intercept]"] <= 1 and first["truth"]["sigma"] > 0
    # the same call again finds everything done
    again = sbc(K, formula=FORMULA, design=DESIGN, sampler_settings=NUTS, seed=SEED, n_jobs=2, out=out,
                show_progress=False)
    assert again.n_run == 0
    pd.testing.assert_frame_equal(again.ranks, calibrated.ranks)
    html = hs.write_report(calibrated).read_text()
    assert FORMULA in html and "Omega[x, Intercept]" in html and "beta ~ normal(0, 2)" in html
    assert pd.read_csv(out / "ranks.csv", index_col="sim").shape == (K, len(PARAMS))
    assert (out / "sbc_ranks.png").stat().st_size > 20_000


@pytest.mark.slow
def test_executors_give_identical_ranks_on_a_formula(calibrated):
    pytest.importorskip("distributed", reason="executor='dask' needs dask[distributed] (in the dev extra)")
    kw = dict(formula=FORMULA, design=DESIGN, sampler_settings=NUTS, seed=SEED, show_progress=False)
    inproc = sbc(4, n_jobs=1, **kw)
    dask = sbc(4, n_jobs=2, executor="dask", **kw)
    pd.testing.assert_frame_equal(inproc.ranks, calibrated.ranks.loc[:3])
    pd.testing.assert_frame_equal(dask.ranks, calibrated.ranks.loc[:3])


@pytest.mark.slow
def test_a_wrong_fitting_prior_is_flagged():
    """Fitting with sigma ~ halfnormal(0.1) data simulated with sigma ~ halfnormal(1): sigma's ranks pile up at L."""
    wrong = sbc(30, formula=FORMULA, design=DESIGN, sampler_settings=NUTS, seed=SEED, n_jobs=1,
                fit_priors={"sigma": "halfnormal(0.1)"}, show_progress=False)
    assert wrong.config["backend"]["fit_priors"]["sigma"] == "halfnormal(0.1)"
    u = wrong.uniformity()
    assert u.loc["sigma", "p_value"] < 1e-6 and not u.loc["sigma", "ecdf_in_band"], u
    assert np.median(wrong.ranks["sigma"]) > 90
    assert not wrong.calibrated


@pytest.mark.slow
def test_cli_sbc_on_a_formula(tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli_main(["sbc", "--formula", FORMULA, "--n-sims", "4", "--groups", "5,5,5,5", "--draws", "200",
                     "--warmup", "200", "--n-jobs", "1", "--seed", "3", "--prior", "tau=halfnormal(0.5)",
                     "--sampler", "stan-collapsed", "--out", str(out), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Omega[x, Intercept]" in text and "ran 4 simulation(s)" in text and f"on {FORMULA}" in text
    config = json.loads((out / "sbc.json").read_text())
    assert config["generator"]["priors"]["tau"] == "halfnormal(0.5)"  # given
    assert config["generator"]["priors"]["beta"] == "normal(0, 2)"    # default for what is not given
    assert config["backend"]["sampler"] == "stan-collapsed"
    assert pd.read_csv(out / "ranks.csv", index_col="sim").shape == (4, 6)
