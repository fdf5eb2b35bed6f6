"""Iterations per second per chain of the numpy Metropolis (4 chains at once).

Target: >= 20,000 iterations/s per chain on the full 104-dimensional posterior
(the notebook's sampler managed ~816). The number is the sampler's own
``iterations_per_second`` (sampling phase, adapted proposal).
"""

from __future__ import annotations

import statistics

import pytest

from hierlin_stan.samplers.metropolis import metropolis

from .conftest import SEED, record


@pytest.mark.parametrize("target", ["full", "marginal"])
def test_metropolis_iterations(benchmark, default_data, target):
    """40,000 iterations per chain (20,000 warm-up), 4 chains, thin 10."""
    rates: list[float] = []

    def run():
        idata = metropolis(default_data, target, chains=4, draws=40_000, warmup=20_000, thin=10, seed=SEED,
                           show_progress=False)
        rates.append(idata.attrs["iterations_per_second"])
        return idata

    idata = benchmark.pedantic(run, rounds=3, iterations=1)
    assert min(rates) > 0
    record(benchmark, f"metropolis/{target}", dim=idata.attrs["dim"],
           iterations_per_second_per_chain_median=statistics.median(rates),
           iterations_per_second_per_chain_max=max(rates))
