"""Compile time cold vs cached, and the warm-cache ``hierlin demo``.

* cold: a fresh interpreter with fresh httpstan and hierlin_stan caches
  (``XDG_CACHE_HOME`` pointed at a temp folder: httpstan keeps its models under
  ``appdirs.user_cache_dir("httpstan")``), so the shared cache is not touched.
* cached: a fresh interpreter finding the compiled program in the usual cache.
* demo: ``hierlin demo`` in a fresh interpreter, caches warm. Target <= 20 s.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time

import pytest

from .conftest import ROOT, record, run_python

COMPILE = (
    "import json, time; t = time.perf_counter(); import hierlin_stan as hs; imp = time.perf_counter() - t;"
    "e = hs.get_engine('auto', verbose=False); s = e.compile('marginal');"
    "print(json.dumps({'import_seconds': imp, 'compile_seconds': s}))"
)


def test_compile_cold(benchmark, tmp_path):
    """Build the marginal program from scratch (stanc + C++), in a throw-away cache."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "HIERLIN_STAN_CACHE": str(tmp_path / "hierlin")}
    out: list[dict] = []

    def run():
        wall, stdout = run_python(COMPILE, env)
        out.append(json.loads(stdout.strip().splitlines()[-1]) | {"wall": wall})

    benchmark.pedantic(run, rounds=1, iterations=1)
    assert out[0]["compile_seconds"] > 1.0, "a cold build cannot take under a second: the cache was not fresh"
    shutil.rmtree(tmp_path / "xdg", ignore_errors=True)
    record(benchmark, "compile/cold", compile_seconds=out[0]["compile_seconds"], process_wall_seconds=out[0]["wall"])


def test_compile_cached(benchmark):
    """A fresh interpreter finding the compiled program in the cache."""
    out: list[dict] = []

    def run():
        wall, stdout = run_python(COMPILE)
        out.append(json.loads(stdout.strip().splitlines()[-1]) | {"wall": wall})

    benchmark.pedantic(run, rounds=3, iterations=1)
    record(benchmark, "compile/cached",
           compile_seconds=statistics.median(o["compile_seconds"] for o in out),
           import_seconds=statistics.median(o["import_seconds"] for o in out),
           process_wall_seconds=statistics.median(o["wall"] for o in out))


def test_demo_warm_cache(benchmark, tmp_path):
    """``hierlin demo`` end to end (simulate, 2 fits, reports, plots, NetCDF). Target <= 20 s."""
    hierlin = [sys.executable, "-m", "hierlin_stan"]
    walls: list[float] = []
    runs = iter(range(100))

    def run():
        out = tmp_path / f"demo{next(runs)}"
        start = time.perf_counter()
        proc = subprocess.run(hierlin + ["demo", "--out", str(out), "--quiet"], capture_output=True, text=True,
                              cwd=ROOT, timeout=600)
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            pytest.fail(f"hierlin demo failed: {proc.stderr[-2000:]}")
        assert (out / "overview.md").is_file()

    # One warm-up round first: compiled programs, matplotlib's font cache, .pyc files.
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    walls = walls[1:]
    record(benchmark, "demo/warm", wall_seconds_median=statistics.median(walls), wall_seconds_max=max(walls))
