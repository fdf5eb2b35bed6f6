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

import pytest

from hierlin_stan.samplers.registry import available_samplers
from hierlin_stan.workflows.bench import PROGRAM_DATA, PROGRAM_VARIANTS, bench_program, program_dataset

from .conftest import record, run_python

LARGE = {"N1e5", "J100xN1e7"}
_DATASETS: dict = {}


def _data(key: str):
    if key not in _DATASETS:
        _DATASETS.clear()  # one dataset in memory at a time (N = 1e7 rows: ~0.5 GB)
        _DATASETS[key] = program_dataset(key)
    return _DATASETS[key]


def _cases():
    for key in PROGRAM_DATA:
        marks = [pytest.mark.large] if key in LARGE else []
        for name in PROGRAM_VARIANTS:
            yield pytest.param(key, name, marks=marks, id=f"{key}-{name}")


@pytest.mark.parametrize("key, name", list(_cases()))
def test_program_variant(benchmark, key, name):
    """One row of ``hierlin bench``'s program table (:func:`hierlin_stan.workflows.bench.bench_program`)."""
    spec = PROGRAM_VARIANTS[name]
    if isinstance(spec, str) and spec not in available_samplers():
        pytest.skip(f"{name} is not available here (needs the pymc extra with nutpie)")
    dataset = _data(key)
    numbers = benchmark.pedantic(bench_program, args=(dataset, name), rounds=1, iterations=1)
    assert numbers["min_ess_bulk"] > 0
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


def _formula_frame(groups: int = 1000, per_group: int = 10):
    """y ~ x + (1 + x | g): correlated intercepts and slopes (0.5), sigma = 0.5, seed 3."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=g.size)
    u = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=groups)
    y = 1 + 2 * x + u[g, 0] + u[g, 1] * x + 0.5 * rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.mark.parametrize("kind", ["marginal", "collapsed"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "pure"])
def test_formula_program_variant(benchmark, kind, fused):
    """A formula's fused C++ twin against its pure program (CmdStan), J = 1000 groups of 10, 4 x 1000,
    group effects not kept (with u kept, writing 2,000 numbers per draw costs more than the gradients)."""
    import time
    import warnings

    import hierlin_stan as hs
    from hierlin_stan.checks.diagnostics import sampler_stats
    from hierlin_stan.engines.programs import select_program

    frame = _formula_frame()
    hs.get_engine("cmdstan", verbose=False).compile(select_program(f"glm_{kind}", "cmdstan", fused)[0])

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hs.fit(frame, formula="y ~ x + (1 + x | g)", parameterization=kind, engine="cmdstan",
                          fused=fused, seed=1, keep_b=False, log_likelihood=False, show_progress=False)

    start = time.perf_counter()
    idata = benchmark.pedantic(run, rounds=1, iterations=1)
    wall = time.perf_counter() - start
    st = sampler_stats(idata, ["beta", "tau", "sigma"])
    steps = float(idata.sample_stats["n_steps"].values.sum())
    record(benchmark, f"programs/formula-J1000/{kind}-{'fused' if fused else 'pure'}", program=idata.attrs["program"],
           min_ess_bulk=st["min_ess_bulk"], ess_per_chain_second=st["min_ess_bulk_per_s"],
           ess_per_wall_second=st["min_ess_bulk"] / wall, mean_leapfrog=steps / idata.sample_stats["n_steps"].size,
           ms_per_gradient=1e3 * st["sampling_chain_seconds"] / steps, divergences=st["divergences"],
           max_rhat=st["max_rhat"])
    assert st["min_ess_bulk"] > 0
