"""Stan's program variants side by side with nutpie and the numpy Metropolis (issue 12).

Data (``simulate(..., eps=0.5, seed=3)``):

* ``N100``, ``N1e4``, ``N1e5``: one slope per point (J = N);
* ``J100xN1e7``: 100 groups of 10^5 points (the fit sees the sums); N1e5 and this one with ``--bench-large``.

Samplers, each 4 chains x 1000 warm-up + 1000 draws (Metropolis: its registry defaults):

* ``collapsed-fused`` / ``marginal-fused``: CmdStan, the C++ header's value and gradient;
* ``collapsed-pure`` / ``marginal-pure``: CmdStan, the pure Stan program;
* ``collapsed-pystan`` / ``marginal-pystan``: PyStan (pure Stan);
* ``nutpie-marginal``: nutpie on the PyMC marginal model;
* ``metropolis-marginal``: the package's numpy adaptive Metropolis.

extra_info: min bulk-ESS of a, mu_b, sigma_b, eps; ESS per chain-second (sampling seconds
summed over chains); ESS per wall-second (wall time of the call, warm-up included, compile
excluded: every program is compiled before timing); mean leapfrog steps per draw; ms per
gradient (sampling chain-seconds over leapfrog steps; Metropolis: per density evaluation);
divergences; max R-hat. ``test_collapsed_one_slope_per_point_1e6`` (``--bench-large``) is
the N = 10^6 target: 4 x 1000 draws of the default fit, wall time and peak memory measured
in a fresh interpreter.
"""

from __future__ import annotations

import json
import time
import warnings

import pytest

import hierlin_stan as hs
from hierlin_stan.checks.diagnostics import sampler_stats
from hierlin_stan.samplers.registry import SAMPLERS, available_samplers, run_sampler

from .conftest import record, run_python

DATA = {
    "N100": dict(n=100),
    "N1e4": dict(n=10_000),
    "N1e5": dict(n=100_000),
    "J100xN1e7": dict(groups=[100_000] * 100),
}
LARGE = {"N1e5", "J100xN1e7"}
STAN = {  # name -> (parameterization, engine, fused)
    "collapsed-fused": ("collapsed", "cmdstan", True),
    "collapsed-pure": ("collapsed", "cmdstan", False),
    "collapsed-pystan": ("collapsed", "pystan", None),
    "marginal-fused": ("marginal", "cmdstan", True),
    "marginal-pure": ("marginal", "cmdstan", False),
    "marginal-pystan": ("marginal", "pystan", None),
}
OTHERS = ("nutpie-marginal", "metropolis-marginal")
_DATASETS: dict[str, hs.Dataset] = {}


def _data(key: str) -> hs.Dataset:
    if key not in _DATASETS:
        _DATASETS.clear()  # one dataset in memory at a time (N = 1e7 rows: ~0.5 GB)
        _DATASETS[key] = hs.simulate(**DATA[key], eps=0.5, seed=3)
        _DATASETS[key].group_sums()
    return _DATASETS[key]


def _cases():
    for key in DATA:
        marks = [pytest.mark.large] if key in LARGE else []
        for name in (*STAN, *OTHERS):
            yield pytest.param(key, name, marks=marks, id=f"{key}-{name}")


@pytest.mark.parametrize("key, name", list(_cases()))
def test_program_variant(benchmark, key, name):
    if name in OTHERS and name not in available_samplers():
        pytest.skip(f"{name} is not available here (needs the pymc extra with nutpie)")
    dataset = _data(key)
    if name in STAN:
        parameterization, engine, fused = STAN[name]
        hs.get_engine(engine, verbose=False).compile(
            f"{parameterization}_fused" if fused else parameterization)  # compile before timing

        def run():
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="not keeping the")
                return hs.fit(dataset, parameterization, engine=engine, fused=fused, seed=1, keep_b=False,
                              show_progress=False)
    else:
        def run():
            return run_sampler(SAMPLERS[name], dataset, 1, show_progress=False)

        if name.startswith("nutpie"):
            run_sampler(SAMPLERS[name], hs.simulate(n=20, eps=0.5, seed=1), 1, show_progress=False,
                        draws=10, warmup=10)  # imports and JIT before timing

    start = time.perf_counter()
    idata = benchmark.pedantic(run, rounds=1, iterations=1)
    wall = time.perf_counter() - start
    st = sampler_stats(idata, ["a", "mu_b", "sigma_b", "eps"])
    numbers = dict(N=dataset.n, J=dataset.n_groups, min_ess_bulk=st["min_ess_bulk"], max_rhat=st["max_rhat"],
                   divergences=st["divergences"], wall_seconds=wall, warmup_seconds=st["warmup_seconds"],
                   sampling_chain_seconds=st["sampling_chain_seconds"],
                   ess_per_chain_second=st["min_ess_bulk_per_s"], ess_per_wall_second=st["min_ess_bulk"] / wall,
                   program=idata.attrs.get("program"))
    if "n_steps" in idata.sample_stats:
        steps = float(idata.sample_stats["n_steps"].values.sum())
        numbers.update(mean_leapfrog=steps / idata.sample_stats["n_steps"].size,
                       ms_per_gradient=1e3 * st["sampling_chain_seconds"] / steps)
    else:  # Metropolis: one density evaluation per iteration (kept draws x thin)
        spec = SAMPLERS[name]
        evals = spec.chains * spec.draws * spec.thin
        numbers.update(ms_per_density=1e3 * st["sampling_chain_seconds"] / evals)
    assert st["min_ess_bulk"] > 0
    record(benchmark, f"programs/{key}/{name}", **numbers)


_BIG = """
import json, resource, time, warnings
import hierlin_stan as hs
ds = hs.simulate(n=1_000_000, seed=3)
hs.get_engine("cmdstan", verbose=False).compile("collapsed_fused")
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="not keeping the")
    idata = hs.fit(ds, engine="cmdstan", seed=1, show_progress=False)
wall = time.perf_counter() - start
from hierlin_stan.checks.diagnostics import sampler_stats
st = sampler_stats(idata, ["a", "mu_b", "sigma_b", "eps"])
print(json.dumps(dict(wall=wall, program=idata.attrs["program"], ess=st["min_ess_bulk"], rhat=st["max_rhat"],
                      divergences=st["divergences"], b_kept="b" in idata.posterior,
                      self_peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      child_peak_mib=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)))
"""


@pytest.mark.large
def test_collapsed_one_slope_per_point_1e6(benchmark):
    """The default fit (collapsed, fused on CmdStan), N = 10^6 (eps = 0), 4 x 1000: target <= 5 min, <= 2 GiB.

    Peak memory: the Python process's peak RSS plus, as an upper bound for the CmdStan side, 2
    (the parallel chains on 2 cores) x the largest CmdStan child's peak RSS.
    """
    _, out = benchmark.pedantic(run_python, args=(_BIG,), rounds=1, iterations=1)
    got = json.loads(out.strip().splitlines()[-1])
    got["peak_mib_bound"] = got["self_peak_mib"] + 2 * got["child_peak_mib"]
    record(benchmark, "programs/N=1e6-default-fit", **got)
    assert got["program"] == "collapsed_fused" and got["ess"] > 0
