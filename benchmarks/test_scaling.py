"""Scaling of Stan's marginal program in N.

* one slope per point (J = N): N = 10^2 ... 10^4 by default, 10^5 and 10^6 with
  ``--bench-large``. Target: N = 10^6, 4 chains x 1000 draws in <= 5 min.
* grouped, J = 100: N = 10^3 ... 10^7. The data are summarised once into
  per-group sums (timed apart, ``summarise_seconds``); the marginal gradient then
  costs O(J). Target: N = 10^7 in <= 60 s after summarising.

The benchmark time is the wall time of ``fit`` (one round: a fit is long and
deterministic given its seed). extra_info has the fit time after summarising
(``fit_seconds``), ESS/s, mean leapfrog steps per iteration and the cost of one
gradient inside NUTS (``ms_per_gradient``: sampling seconds of the slowest chain
over its leapfrog steps).
"""

from __future__ import annotations

import time
import warnings

import pytest

import hierlin_stan as hs
from hierlin_stan.checks.diagnostics import sampler_stats

from .conftest import SEED, record

PER_POINT = [100, 1_000, 10_000, pytest.param(100_000, marks=pytest.mark.large),
             pytest.param(1_000_000, marks=pytest.mark.large)]
GROUPED = [1_000, 100_000, 1_000_000, 10_000_000]


def _fit_and_record(benchmark, name: str, dataset: hs.Dataset) -> None:
    start = time.perf_counter()
    dataset.group_sums()
    summarise = time.perf_counter() - start

    def run():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="not keeping the")
            return hs.fit(dataset, "marginal", seed=SEED, show_progress=False)

    start = time.perf_counter()
    idata = benchmark.pedantic(run, rounds=1, iterations=1)
    wall = time.perf_counter() - start
    st = sampler_stats(idata)
    steps = idata.sample_stats["n_steps"].values
    assert st["min_ess_bulk"] > 0
    record(benchmark, name, N=dataset.n, J=dataset.n_groups, summarise_seconds=summarise,
           fit_seconds=wall - summarise, warmup_seconds=st["warmup_seconds"],
           sampling_chain_seconds=st["sampling_chain_seconds"], min_ess_bulk=st["min_ess_bulk"],
           min_ess_bulk_per_s=st["min_ess_bulk_per_s"], max_rhat=st["max_rhat"],
           mean_leapfrog=float(steps.mean()),
           ms_per_gradient=1e3 * st["sampling_chain_seconds"] / float(steps.sum()),
           b_kept="b" in idata.posterior)


@pytest.mark.parametrize("n", PER_POINT)
def test_marginal_one_slope_per_point(benchmark, n):
    """4 chains x 1000 draws, the notebook's design (eps = 0) with N points."""
    _fit_and_record(benchmark, f"scaling/per-point/N={n}", hs.simulate(n=n, seed=SEED))


@pytest.mark.parametrize("n", GROUPED)
def test_marginal_grouped(benchmark, n):
    """4 chains x 1000 draws, J = 100 equal groups, eps = 0.5."""
    _fit_and_record(benchmark, f"scaling/grouped-J100/N={n}", hs.simulate(n=n, groups=100, eps=0.5, seed=SEED))
