"""End-to-end ESS per second of every sampler on the notebook's data, side by side.

One round each (a sampler run is long and its ESS is the measurement); the
number that counts is ``min_ess_bulk_per_s`` in extra_info: the smallest bulk-ESS
of a, mu_b, sigma_b, eps over the sampling seconds (compile and warm-up apart).
The ratios over PyMC's Metropolis and the numpy Metropolis are printed at the end.
"""

from __future__ import annotations

import pytest

from hierlin_stan.workflows.compare import SAMPLERS, available_samplers, run_sampler
from hierlin_stan.checks.diagnostics import sampler_stats

from .conftest import SEED, record

ALL = list(SAMPLERS)


@pytest.mark.parametrize("name", ALL)
def test_ess_per_second(benchmark, default_data, name):
    """One run of sampler ``name`` with its default settings (compare.SAMPLERS)."""
    if name not in available_samplers():
        pytest.skip(f"{name} is not in compare.available_samplers() on this machine")
    spec = SAMPLERS[name]
    idata = benchmark.pedantic(run_sampler, args=(spec, default_data, SEED), kwargs={"show_progress": False},
                               rounds=1, iterations=1)
    st = sampler_stats(idata)
    assert st["min_ess_bulk"] > 0
    record(benchmark, f"ess/{name}", min_ess_bulk=st["min_ess_bulk"], sampling_chain_seconds=st["sampling_chain_seconds"],
           warmup_seconds=st["warmup_seconds"], compile_seconds=st["compile_seconds"],
           min_ess_bulk_per_s=st["min_ess_bulk_per_s"], max_rhat=st["max_rhat"], divergences=st["divergences"])
