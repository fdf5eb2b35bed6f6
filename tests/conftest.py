"""Shared fixtures: engines that really exist here, and fits reused across tests."""

from __future__ import annotations

import os

import pytest

import hierlin_stan as hs
from hierlin_stan.engines import cmdstan_engine

CMDSTAN_OK, CMDSTAN_WHY = cmdstan_engine.available()
requires_cmdstan = pytest.mark.skipif(
    not CMDSTAN_OK,
    reason=f"CmdStan engine not testable here: {CMDSTAN_WHY} (set $CMDSTAN or run `hierlin install-cmdstan`)",
)

# Every engine test runs on PyStan (always installed) and, unchanged, on CmdStan where it exists.
ENGINE_PARAMS = ["pystan", pytest.param("cmdstan", marks=[requires_cmdstan, pytest.mark.requires_cmdstan])]


def pytest_report_header(config):  # noqa: D103
    return [f"hierlin_stan engines: pystan yes; cmdstan {'yes' if CMDSTAN_OK else 'no - ' + CMDSTAN_WHY}"]


@pytest.fixture(params=ENGINE_PARAMS)
def engine_name(request) -> str:
    """Name of an engine usable on this machine."""
    return request.param


@pytest.fixture(scope="session")
def default_data() -> hs.Dataset:
    """The notebook's data: N = 100, one slope per point, eps = 0."""
    return hs.simulate(seed=20261124)


@pytest.fixture(scope="session")
def grouped_data() -> hs.Dataset:
    """Noisy grouped data: J = 10 groups of 20 points, eps = 0.5."""
    return hs.simulate(groups=[20] * 10, eps=0.5, seed=7)


_FITS: dict = {}


@pytest.fixture(scope="session")
def fit_cache():
    """Memoised fits: (engine, dataset name, parameterization, seed) -> InferenceData."""

    def get(engine: str, data_name: str, dataset: hs.Dataset, parameterization: str, seed: int = 11, **kw):
        key = (engine, data_name, parameterization, seed, tuple(sorted(kw.items())))
        if key not in _FITS:
            _FITS[key] = hs.fit(dataset, parameterization, engine=engine, seed=seed, show_progress=False, **kw)
        return _FITS[key]

    return get


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep the package cache of the test run in a temp folder unless the user set one."""
    if "HIERLIN_STAN_CACHE" not in os.environ:
        os.environ["HIERLIN_STAN_CACHE"] = str(tmp_path_factory.mktemp("hierlin_cache"))
    yield
