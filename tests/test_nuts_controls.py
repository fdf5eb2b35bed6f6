"""NUTS controls (adapt_delta, max_treedepth, metric, step_size, inits) on both engines.

Each control is shown to reach the sampler by what it does to the draws, not by what
is recorded: tree depths capped, the adapted step size shrinking, a dense adapted
inverse metric, the first draw sitting on the starting values. Bad values are refused
at the boundary (fit, compare, sbc, the CLI) with the value and the fix; the verdict's
advice is a call that fit and the CLI accept.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import hierlin_stan as hs
from hierlin_stan import cli
from hierlin_stan.checks.diagnostics import CLI_FLAGS, Advice, advice, verdict
from hierlin_stan.engines import EngineError, get_engine
from hierlin_stan.engines.controls import NutsControls
from hierlin_stan.model.priors import resolve_priors
from hierlin_stan.utils.az import az
from tests.conftest import requires_cmdstan

INIT = {"a": 5.0, "mu_b": -3.0, "sigma_b": 0.7, "eps": 0.9}


def short_fit(dataset, engine, **kw):
    kw = {"chains": 2, "draws": 200, "warmup": 200, "seed": 5, "show_progress": False, **kw}
    return hs.fit(dataset, kw.pop("parameterization", "marginal"), engine=engine, **kw)


def first_draws(dataset, engine, **kw):
    """One warm-up iteration and one draw from a step size of 1e-8: the chains stay at their inits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ: more chains than draws
        return short_fit(dataset, engine, draws=1, warmup=1, step_size=1e-8, **kw)


# --------------------------------------------------------------- checks (fast)
@pytest.mark.parametrize(
    "kw, message",
    [
        ({"adapt_delta": 1.2}, r"adapt_delta=1.2 must lie in \(0, 1\), e.g. 0.95"),
        ({"adapt_delta": 0}, r"adapt_delta=0 must lie in \(0, 1\)"),
        ({"adapt_delta": True}, r"adapt_delta=True must lie in \(0, 1\)"),
        ({"max_treedepth": 0}, r"max_treedepth=0 must be an integer from 1 to 30, e.g. 12"),
        ({"max_treedepth": 2.5}, r"max_treedepth=2.5 must be an integer"),
        ({"max_treedepth": 100}, r"max_treedepth=100 must be an integer from 1 to 30"),
        ({"metric": "full"}, r"metric='full' is unknown; use 'diag' .* or 'dense'"),
        ({"step_size": 0}, r"step_size=0 must be a finite number > 0, e.g. 0.1"),
        ({"step_size": float("nan")}, r"step_size=nan must be a finite number > 0"),
        ({"inits": -1}, r"inits=-1: a radius must be >= 0, e.g. 0.5"),
        ({"inits": "random"}, r"inits='random' is not understood; give a radius .* a dict .* list of such dicts"),
        ({"inits": [INIT, INIT, INIT]}, r"inits has 3 dicts for chains=4; give one dict per chain"),
        ({"inits": {"a": "x"}}, r"inits\['a'\]='x' must be a finite number"),
        ({"inits": {"a": float("inf")}}, r"inits\['a'\]=inf must be a finite number"),
        ({"inits": {"b": [1.0] * 100}}, r"inits\['b'\]: 'b' is not a parameter of the marginal program \(it is drawn exactly "
                                        r"after sampling, not sampled\); give some of \['a', 'mu_b', 'sigma_b', 'eps'\]"),
        ({"inits": {"alpha": 1.0}}, r"'alpha' is not a parameter of the marginal program"),
        ({"inits": {"eps": 20.0}}, r"inits\['eps'\]=20.0 must lie in \(0, 10\), the support of eps under these priors"),
        ({"inits": {"sigma_b": 0.0}}, r"inits\['sigma_b'\]=0.0 must lie in \(0, 100\)"),
        ({"inits": [INIT, INIT, INIT, {"a": [1.0, 2.0]}]}, r"inits\[3\]\['a'\]=\[1.0, 2.0\] must be one number"),
        ({"inits": {"b": [1.0, 2.0]}, "parameterization": "centered"}, r"inits\['b'\] must be a list of J = 100 numbers"),
    ],
)
def test_bad_controls_are_refused_with_the_value_and_the_fix(default_data, kw, message):
    parameterization = kw.pop("parameterization", "marginal")
    with pytest.raises(ValueError, match=message):
        hs.fit(default_data, parameterization, engine="pystan", show_progress=False, **kw)


def test_controls_default_to_stans_and_describe_what_was_used():
    assert NutsControls.make().describe() == {"adapt_delta": 0.8, "max_treedepth": 10, "metric": "diag",
                                              "step_size": 1.0, "inits": 2.0}
    used = NutsControls.make(adapt_delta=0.95, metric="dense_e", inits=[{"a": 1}, {"a": 2}], chains=2)
    assert used.metric == "dense"
    assert json.loads(used.describe()["inits"]) == [{"a": 1.0}, {"a": 2.0}]
    assert used.chain_inits(2) == (2.0, {"a": 2.0})
    assert NutsControls.make(inits=0).chain_inits(1) == (0.0, {})


def test_compare_checks_settings_before_running_anything():
    with pytest.raises(ValueError, match=r"adapt_delta=1.2 must lie in \(0, 1\)"):
        hs.compare(samplers=["stan-marginal"], settings={"stan-marginal": {"adapt_delta": 1.2}})
    with pytest.raises(ValueError, match=r"settings for stan-marginal: unknown key\(s\) \['adapt_dleta'\]; "
                                         r"it takes \[.*'adapt_delta'.*\]"):
        hs.compare(samplers=["stan-marginal"], settings={"stan-marginal": {"adapt_dleta": 0.9}})
    with pytest.raises(ValueError, match=r"metropolis-full: unknown key\(s\) \['adapt_delta'\].*give it to a stan-\* "
                                         r"sampler"):
        hs.compare(samplers=["metropolis-full"], settings={"metropolis-full": {"adapt_delta": 0.9}})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "{csv}", "--adapt-delta", "1.2"], "adapt_delta=1.2 must lie in (0, 1), e.g. 0.95"),
        (["fit", "{csv}", "--adapt-delta", "high"], "--adapt-delta 'high' is not a number; e.g. --adapt-delta 0.95"),
        (["fit", "{csv}", "--max-treedepth", "12.5"], "--max-treedepth '12.5' is not an integer"),
        (["fit", "{csv}", "--metric", "full"], "metric='full' is unknown"),
        (["fit", "{csv}", "--step-size", "-1"], "step_size=-1.0 must be a finite number > 0"),
        (["fit", "{csv}", "--inits", "nowhere.json"], "--inits 'nowhere.json' is neither a number"),
        (["fit", "{csv}", "--inits", "{'a': 1}"], "--inits \"{'a': 1}\": not valid JSON"),
        (["fit", "{csv}", "--inits", '{"eps": -1}'], "inits['eps']=-1.0 must lie in (0, 10)"),
        (["demo", "--out", "{dir}/demo", "--adapt-delta", "1"], "adapt_delta=1.0 must lie in (0, 1)"),
        (["compare", "--samplers", "metropolis-marginal", "--out", "{dir}/cmp", "--adapt-delta", "0.9"],
         "--adapt-delta set(s) Stan's NUTS, but no stan-* sampler is in this run (metropolis-marginal)"),
        (["compare", "--samplers", "stan-marginal", "--out", "{dir}/cmp", "--max-treedepth", "0"],
         "max_treedepth=0 must be an integer from 1 to 30"),
        (["sbc", "--n-sims", "2", "--out", "{dir}/sbc", "--metric", "diagonal"], "metric='diagonal' is unknown"),
        (["sbc", "--n-sims", "2", "--out", "{dir}/sbc", "--sampler", "metropolis-full", "--step-size", "0.1"],
         "unknown key(s) ['step_size'] for metropolis-full"),
    ],
)
def test_cli_bad_controls_are_one_line_errors(tmp_path, capsys, argv, message):
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,3\n2,5\n3,8\n")
    argv = [a.replace("{csv}", str(csv)).replace("{dir}", str(tmp_path)) for a in argv]
    assert cli.main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.startswith("hierlin: error:") and err.count("\n") == 1
    assert not any(p.name in ("demo", "cmp", "sbc", "d_fit") for p in tmp_path.iterdir())  # nothing written


# --------------------------------------------------------- on both engines
def test_same_seed_and_settings_give_the_same_draws(grouped_data, engine_name):
    settings = {"adapt_delta": 0.9, "max_treedepth": 8, "step_size": 0.5, "inits": 0.5}
    one = short_fit(grouped_data, engine_name, **settings)
    two = short_fit(grouped_data, engine_name, **settings)
    for name in ("a", "mu_b", "sigma_b", "eps", "b"):
        np.testing.assert_array_equal(one.posterior[name].values, two.posterior[name].values)
    assert {k: one.attrs[k] for k in settings} == settings
    assert one.attrs["metric"] == "diag"  # the default, recorded too
    default = short_fit(grouped_data, engine_name)
    assert not np.array_equal(one.posterior["a"].values, default.posterior["a"].values)
    assert {k: default.attrs[k] for k in ("adapt_delta", "max_treedepth", "metric", "step_size", "inits")} == \
        {"adapt_delta": 0.8, "max_treedepth": 10, "metric": "diag", "step_size": 1.0, "inits": 2.0}


def test_max_treedepth_caps_the_trees(grouped_data, engine_name):
    capped = short_fit(grouped_data, engine_name, max_treedepth=2)
    depth = capped.sample_stats["tree_depth"].values
    assert depth.max() == 2 and (capped.sample_stats["n_steps"].values <= 3).all()
    assert short_fit(grouped_data, engine_name).sample_stats["tree_depth"].values.max() > 2
    assert "reached the maximum tree depth 2" in verdict(capped)  # judged against the fit's own limit


def test_higher_adapt_delta_adapts_a_smaller_step(grouped_data, engine_name):
    low = short_fit(grouped_data, engine_name, adapt_delta=0.6, warmup=400)
    high = short_fit(grouped_data, engine_name, adapt_delta=0.99, warmup=400)
    step_low = low.sample_stats["step_size"].values[:, 0]
    step_high = high.sample_stats["step_size"].values[:, 0]
    assert (step_high < 0.7 * step_low).all(), (step_low, step_high)
    assert high.sample_stats["acceptance_rate"].values.mean() > low.sample_stats["acceptance_rate"].values.mean()


def test_inits_and_step_size_reach_the_sampler(default_data, engine_name):
    stay = first_draws(default_data, engine_name, inits=INIT)
    for name, value in INIT.items():
        np.testing.assert_allclose(stay.posterior[name].values, value, atol=1e-3)
    assert (stay.sample_stats["step_size"].values < 1e-5).all()  # adapted from 1e-8, not from 1
    per_chain = first_draws(default_data, engine_name, inits=[INIT, dict(INIT, a=-5.0)])
    np.testing.assert_allclose(per_chain.posterior["a"].values[:, 0], [5.0, -5.0], atol=1e-3)
    # radius 0: every chain starts at unconstrained 0, i.e. a = mu_b = 0 and the scales mid-way in U(0, 100)
    # and U(0, 10). Where the density is flat there, Stan's initial step-size search grows the step, so the
    # chains move a little: near the point, not on it; radius 2 starts them apart.
    zero = first_draws(default_data, engine_name, inits=0)
    for name, value, tol in (("a", 0.0, 0.5), ("mu_b", 0.0, 0.5), ("sigma_b", 50.0, 5.0), ("eps", 5.0, 0.5)):
        np.testing.assert_allclose(zero.posterior[name].values, value, atol=tol)
    spread = first_draws(default_data, engine_name, inits=2.0)
    assert np.ptp(spread.posterior["eps"].values) > 20 * np.ptp(zero.posterior["eps"].values)
    assert json.loads(per_chain.attrs["inits"])[1]["a"] == -5.0 and zero.attrs["inits"] == 0.0


def test_centered_inits_set_the_slopes(engine_name):
    data = hs.simulate(groups=[5, 5, 5], eps=0.5, seed=2)
    start = dict(INIT, b=[1.0, 2.0, 3.0])
    stay = first_draws(data, engine_name, parameterization="centered", inits=start)
    np.testing.assert_allclose(stay.posterior["b"].values[0, 0], [1.0, 2.0, 3.0], atol=1e-3)


def _engine_data(dataset):
    return dataset.to_stan_data("marginal", resolve_priors(None).to_stan_data(), write_y_rep=False, write_b=False)


@requires_cmdstan
@pytest.mark.requires_cmdstan
def test_dense_metric_adapts_a_dense_inverse_metric_on_cmdstan():
    # x in [5, 10], far from 0: the intercept a and the mean slope mu_b are strongly anti-correlated
    data = hs.simulate(groups=[20] * 10, eps=0.5, sigma_b=0.1, x_low=5, x_high=10, seed=7)
    engine = get_engine("cmdstan")
    kw = {"chains": 2, "draws": 200, "warmup": 300, "seed": 4, "show_progress": False}
    diag = engine.sample("marginal", _engine_data(data), controls=NutsControls.make(), **kw)
    dense = engine.sample("marginal", _engine_data(data), controls=NutsControls.make(metric="dense"), **kw)
    assert diag.adaptation["inv_metric"].shape == (2, 4)
    metric = dense.adaptation["inv_metric"]
    assert metric.shape == (2, 4, 4)
    np.testing.assert_allclose(metric, np.transpose(metric, (0, 2, 1)))
    assert np.corrcoef(diag.variables["a"].ravel(), diag.variables["mu_b"].ravel())[0, 1] < -0.5
    corr = metric[:, 0, 1] / np.sqrt(metric[:, 0, 0] * metric[:, 1, 1])
    assert (corr < -0.3).all(), corr  # the dense metric has learnt it
    assert not np.array_equal(diag.variables["a"], dense.variables["a"])
    idata = short_fit(data, "cmdstan", metric="dense")
    assert idata.attrs["metric"] == "dense"


def test_pystan_refuses_the_dense_metric_and_points_to_cmdstan(grouped_data):
    with pytest.raises(EngineError, match=r"pystan: metric='dense' is not available: httpstan runs only Stan's "
                                          r"diagonal-metric NUTS.*engine='cmdstan'"):
        short_fit(grouped_data, "pystan", metric="dense")
    raw = get_engine("pystan").sample("marginal", _engine_data(grouped_data), chains=2, draws=50, warmup=100,
                                      seed=4, show_progress=False)
    assert raw.adaptation["inv_metric"].shape == (2, 4) and (raw.adaptation["inv_metric"] > 0).all()
    np.testing.assert_allclose(raw.adaptation["step_size"], raw.sample_stats["stepsize__"][:, 0], rtol=1e-5)


def test_compare_settings_reach_the_stan_sampler(grouped_data):
    result = hs.compare(grouped_data, samplers=["stan-marginal"], seed=2, engine="pystan", show_progress=False,
                        settings={"stan-marginal": {"adapt_delta": 0.95, "max_treedepth": 3, "draws": 200,
                                                    "warmup": 200}})
    idata = result.fits["stan-marginal"]
    assert idata.attrs["adapt_delta"] == 0.95 and idata.attrs["max_treedepth"] == 3
    assert idata.sample_stats["tree_depth"].values.max() <= 3


@pytest.mark.slow
def test_sbc_sampler_settings_reach_every_fit(tmp_path):
    small = {"n_ranks": 19, "design": {"groups": [5, 5, 5]}, "n_jobs": 1, "show_progress": False, "engine": "pystan"}
    ok = hs.sbc(2, seed=1, sampler_settings={"adapt_delta": 0.95, "max_treedepth": 6, "draws": 100, "warmup": 150},
                out=tmp_path / "ok", **small)
    assert len(ok.ok) == 2
    assert ok.config["backend"]["settings"]["adapt_delta"] == 0.95
    # a control the engine refuses shows up in every simulation: it reached each fit
    refused = hs.sbc(2, seed=1, sampler_settings={"metric": "dense", "draws": 100, "warmup": 150}, **small)
    assert [r["status"] for r in refused.records] == ["failed", "failed"]
    assert all("metric='dense' is not available" in r["error"] for r in refused.records)


@pytest.mark.slow
def test_cli_fit_records_the_controls(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    hs.simulate(groups=[10] * 4, eps=0.5, seed=3).to_csv(csv)
    inits = tmp_path / "inits.json"
    inits.write_text(json.dumps([{"a": 1.0}, {"a": 2.0}]))
    out = tmp_path / "fit"
    argv = ["fit", str(csv), "--group", "group", "--engine", "pystan", "--chains", "2", "--draws", "100",
            "--warmup", "200", "--seed", "1", "--out", str(out), "--quiet", "--adapt-delta", "0.95",
            "--max-treedepth", "12", "--metric", "diag", "--step-size", "0.1", "--inits", str(inits)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    idata = az.from_netcdf(out / "marginal.nc")
    assert (idata.attrs["adapt_delta"], idata.attrs["max_treedepth"], idata.attrs["metric"],
            idata.attrs["step_size"]) == (0.95, 12, "diag", 0.1)
    assert json.loads(idata.attrs["inits"]) == [{"a": 1.0}, {"a": 2.0}]


# ------------------------------------------------------------------ advice
def _advice_cases() -> list[tuple[str, Advice]]:
    """Every kind of advice the verdict gives, from fits with planted problems."""
    from tests.test_diagnostics import CHAINS, DRAWS, make_idata

    rng = np.random.default_rng(9)
    stan = {"sampler": "nuts", "engine": "pystan", "parameterization": "marginal", "draws": DRAWS, "warmup": 500,
            "adapt_delta": 0.8, "max_treedepth": 10, "sampling_seconds": 1.0}
    walk = np.cumsum(rng.normal(size=(CHAINS, DRAWS)), axis=1)
    fits = {
        "divergences, centered": make_idata(divergent=12, attrs={**stan, "parameterization": "centered"}),
        "divergences, marginal": make_idata(divergent=12, attrs=stan),
        "rhat and ess": make_idata(chain_shift=1.0, attrs=stan),
        "ebfmi": make_idata(energy=walk, attrs=stan),
        "tree depth, pystan": make_idata(deep=40, attrs=stan),
        "tree depth, cmdstan": make_idata(deep=40, attrs={**stan, "engine": "cmdstan"}),
        "metropolis": make_idata(chain_shift=1.0, nuts=False, attrs={"sampler": "metropolis",
                                                                     "parameterization": "marginal", "draws": 100}),
        "pymc": make_idata(divergent=5, attrs={"sampler": "pymc-nuts", "engine": "pymc", "parameterization": "centered"}),
    }
    cases = []
    for label, idata in fits.items():
        found = advice(idata)
        assert found, label
        text = verdict(idata)
        for item in found:
            assert item.python() in text, (label, item)  # every advice is in the verdict, as a call
            cases.append((label, item))
    kinds = {(a.problem, tuple(a.options)) for _, a in cases}
    assert {("divergences", ()), ("divergences", ("adapt_delta",)), ("rhat", ("warmup", "draws")),
            ("ess", ("draws",)), ("ebfmi", ("warmup",)), ("tree_depth", ("max_treedepth",)),
            ("tree_depth", ("metric",))} <= kinds
    return cases


ADVICE = _advice_cases()


@pytest.mark.parametrize("label, item", ADVICE, ids=[f"{label}: {a.problem}" for label, a in ADVICE])
def test_every_advice_is_a_call_that_fit_and_the_cli_accept(label, item, tmp_path):
    data = hs.simulate(groups=[5] * 4, eps=0.5, seed=1)
    if item.function == "metropolis":
        idata = hs.metropolis(data, target=item.parameterization, seed=1, show_progress=False,
                              **{"warmup": 500, **item.options})
        assert idata.attrs["draws"] == item.options["draws"]
        assert item.cli() is None
        return
    # the command line: same options, parsed as hierlin fit parses them
    argv = item.cli().replace("DATA", str(tmp_path / "d.csv")).split()[1:]
    args = cli.build_parser().parse_args(argv)
    parsed = {**cli._nuts_controls(args), "draws": args.draws, "warmup": args.warmup}
    assert args.parameterization == item.parameterization
    assert {k: parsed[k] for k in item.options} == dict(item.options)
    assert all(CLI_FLAGS[k] in item.cli() for k in item.options)
    # Python: fit accepts the call as written (run short unless the advice sets draws/warmup)
    engine = "cmdstan" if item.options.get("metric") == "dense" else "pystan"
    if engine == "cmdstan":
        from tests.conftest import CMDSTAN_OK, CMDSTAN_WHY

        if not CMDSTAN_OK:
            pytest.skip(f"metric='dense' needs CmdStan: {CMDSTAN_WHY}")
    kw = {"chains": 2, "draws": 100, "warmup": 100, **item.options}
    idata = hs.fit(data, item.parameterization, engine=engine, seed=1, show_progress=False, **kw)
    for key, value in item.options.items():
        assert idata.attrs[key] == value
