"""Cost of one log density (numpy Target) and one log density + gradient (Stan) vs N.

* numpy: :class:`hierlin_stan.Target` batch evaluator for 4 points at once (what
  the Metropolis sampler calls per iteration), per parameterization.
* Stan: the compiled program's ``log_prob_grad``, called in-process through
  httpstan's extension module (no HTTP). A call builds the model from its data
  first (O(N) for centered/non-centered, O(J) for marginal), so this is an
  upper bound of a gradient inside NUTS; ``test_scaling`` reports the cost of a
  gradient inside NUTS (sampling seconds / leapfrog steps).
"""

from __future__ import annotations

import numpy as np
import pytest

import hierlin_stan as hs
from hierlin_stan.samplers.logdensity import Target

from .conftest import SEED, record

SIZES = [100, 1_000, 10_000, 100_000]
KINDS = ["marginal", "centered", "noncentered"]


def _points(target: Target, k: int) -> np.ndarray:
    return np.random.default_rng(SEED).uniform(-2, 2, size=(k, target.dim))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_numpy_log_density(benchmark, kind, n):
    """numpy log density at 4 points (one Metropolis iteration of 4 chains)."""
    target = Target(hs.simulate(n=n, seed=SEED), kind)
    logp = target.batch_log_density(4)
    theta = _points(target, 4)
    out = benchmark(logp, theta)
    assert np.allclose(out, target.log_density(theta), rtol=1e-9, equal_nan=True)
    record(benchmark, f"numpy_logp/{kind}/N={n}", us_per_call=benchmark.stats.stats.median * 1e6)


@pytest.mark.parametrize("n", SIZES[:3])
@pytest.mark.parametrize("kind", KINDS)
def test_stan_log_prob_grad(benchmark, kind, n):
    """Stan's log density + gradient at one point (includes building the model from data)."""
    pytest.importorskip("httpstan", reason="Stan's log_prob_grad is timed through PyStan's httpstan")
    import httpstan.models

    from hierlin_stan.engines.pystan_engine import _jsonable, program_hash_name

    module = httpstan.models.import_services_extension_module(f"models/{program_hash_name(kind)}")
    target = Target(hs.simulate(n=n, seed=SEED), kind)
    data = _jsonable(target.stan_data())
    theta = _points(target, 1)[0].tolist()
    grad = benchmark(module.log_prob_grad, data, theta, True)
    assert len(grad) == target.dim and np.all(np.isfinite(grad))
    assert module.log_prob(data, theta, True) == pytest.approx(target.log_density(np.array(theta)), rel=1e-9)
    record(benchmark, f"stan_log_prob_grad/{kind}/N={n}", us_per_call=benchmark.stats.stats.median * 1e6)
