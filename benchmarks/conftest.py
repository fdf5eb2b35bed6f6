"""Benchmark suite of hierlin_stan (pytest-benchmark).

Run ``pytest benchmarks/ --benchmark-only`` (about 10 minutes on 2 cores);
``--bench-large`` adds the largest sizes (one slope per point with N = 10^5 and
10^6: long). Save the numbers with ``--benchmark-json benchmarks/results/NAME.json``.

Every benchmark records what it measured besides time in ``extra_info`` (ESS,
ESS/s, iterations/s, peak memory, ...); at the end of the run a summary table of
those numbers and of the target ratios is printed and stored in the JSON under
``hierlin_summary``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import hierlin_stan as hs

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261124
#: Filled by the benchmarks: name -> numbers worth a line in the summary.
SUMMARY: dict[str, dict[str, Any]] = {}


def pytest_addoption(parser):  # noqa: D103
    parser.addoption("--bench-large", action="store_true", default=False,
                     help="also run the largest sizes (one slope per point N = 1e5, 1e6; minutes each)")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Time in one process: pyproject's ``-n 2`` (for ``tests/``) would disable pytest-benchmark.

    Runs before pytest-xdist reads ``-n`` when ``pytest benchmarks/...`` is the command.
    """
    config.option.numprocesses = 0


def pytest_configure(config):  # noqa: D103
    config.addinivalue_line("markers", "large: largest sizes; run only with --bench-large")


def pytest_collection_modifyitems(config, items):  # noqa: D103
    if config.getoption("--bench-large"):
        return
    skip = pytest.mark.skip(reason="largest size: pass --bench-large to run it (minutes)")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def default_data() -> hs.Dataset:
    """The notebook's data: N = 100, one slope per point, eps = 0."""
    return hs.simulate(seed=SEED)


@pytest.fixture(scope="session", autouse=True)
def _stan_compiled():
    """Compile (or find cached) every fitting program once, before any timing."""
    engine = hs.get_engine("auto", verbose=False)
    for program in ("marginal", "centered", "noncentered"):
        engine.compile(program)


def record(benchmark, name: str, **numbers: Any) -> None:
    """Store ``numbers`` in the benchmark's extra_info and in the end-of-run summary."""
    clean = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
             for k, v in numbers.items() if v is not None}
    benchmark.extra_info.update(clean)
    SUMMARY[name] = clean


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; return (wall seconds, stdout). Raises on failure."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def _ratios() -> dict[str, float]:
    out = {}
    stan = SUMMARY.get("ess/stan-marginal", {}).get("min_ess_bulk_per_s")
    for slow in ("pymc-metropolis-centered", "metropolis-full", "metropolis-marginal"):
        other = SUMMARY.get(f"ess/{slow}", {}).get("min_ess_bulk_per_s")
        if stan and other:
            out[f"stan-marginal ESS/s over {slow}"] = stan / other
    return out


def pytest_benchmark_update_json(config, benchmarks, output_json):  # noqa: D103
    output_json["hierlin_summary"] = {"numbers": SUMMARY, "ratios": _ratios()}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """Keep the numbers even if pytest-benchmark fails to save (e.g. a benchmark without data)."""
    if SUMMARY:
        import json

        path = Path(session.config.rootpath) / ".benchmarks" / "last_summary.json"  # git-ignored
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"numbers": SUMMARY, "ratios": _ratios()}, indent=1, default=str) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: D103
    if not SUMMARY:
        return
    tr = terminalreporter
    tr.section("hierlin benchmark numbers")
    for name, numbers in SUMMARY.items():
        text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())
        tr.write_line(f"{name}: {text}")
    for name, value in _ratios().items():
        tr.write_line(f"{name}: {value:,.3g}x")
