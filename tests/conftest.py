"""Shared fixtures: engines that really exist here, and fits reused across tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hierlin_stan as hs
from hierlin_stan.engines import cmdstan_engine

ROOT = Path(__file__).resolve().parents[1]
CMDSTAN_OK, CMDSTAN_WHY = cmdstan_engine.available()
requires_cmdstan = pytest.mark.skipif(
    not CMDSTAN_OK,
    reason=f"CmdStan engine not testable here: {CMDSTAN_WHY} (set $CMDSTAN or run `hierlin install-cmdstan`)",
)

# Every engine test runs on PyStan (always installed) and, unchanged, on CmdStan where it exists.
ENGINE_PARAMS = ["pystan", pytest.param("cmdstan", marks=[requires_cmdstan, pytest.mark.requires_cmdstan])]


#: Set by CI (.ci/run): every test must run there, so a skip is reported as a failure.
NO_SKIPS = os.environ.get("HIERLIN_NO_SKIPS") == "1"


def pytest_report_header(config):  # noqa: D103
    lines = [f"hierlin_stan engines: pystan yes; cmdstan {'yes' if CMDSTAN_OK else 'no - ' + CMDSTAN_WHY}"]
    if NO_SKIPS:
        lines.append("HIERLIN_NO_SKIPS=1: a skipped test fails the run")
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With HIERLIN_NO_SKIPS=1 (CI), turn a skip into a failure that gives the skip's reason."""
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but HIERLIN_NO_SKIPS=1 (CI) needs every test to run: {reason}"


def no_cmdstan_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess whose cmdstanpy finds no CmdStan and cannot download one.

    ``$CMDSTAN`` names an empty folder and ``$HOME`` a fresh one (no ``~/.cmdstan``),
    so the real cmdstanpy sees no installation, whatever this host has; every proxy
    variable points to a closed local port, so an installer fails at once instead of
    downloading. The package is imported from this checkout.
    """
    empty, home = tmp_path / "no_cmdstan", tmp_path / "home"
    empty.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    env = dict(os.environ, CMDSTAN=str(empty), HOME=str(home), PYTHONPATH=str(ROOT))
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        env[name] = env[name.upper()] = "http://127.0.0.1:9"
    for name in ("no_proxy", "NO_PROXY"):
        env.pop(name, None)
    return env


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
    """Keep the package cache of the test run in a temp folder unless the user set one.

    Under pytest-xdist every worker uses the same folder (the run's temp root), so each
    program compiles once; the cache's file locks make that safe.
    """
    if "HIERLIN_STAN_CACHE" not in os.environ:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            folder = tmp_path_factory.getbasetemp().parent / "hierlin_cache"
            folder.mkdir(exist_ok=True)
        else:
            folder = tmp_path_factory.mktemp("hierlin_cache")
        os.environ["HIERLIN_STAN_CACHE"] = str(folder)
    yield
