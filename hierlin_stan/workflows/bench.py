"""``hierlin bench``: how fast each sampler is here, and how the marginal program scales.

Two measurements a user can rerun on their own machine:

* **ESS per second per sampler** on the notebook's data (N = 100, one slope per
  point): every sampler of :data:`hierlin_stan.compare.SAMPLERS` chosen, run with
  :func:`hierlin_stan.compare.run_sampler`, judged by the smallest bulk-ESS of
  a, mu_b, sigma_b, eps per second of sampling (compile and warm-up kept apart).
* **Scaling in N** of Stan's marginal program: one slope per point (J = N) and
  grouped data (J = 100 groups). The data are summarised once into per-group
  sums (the marginal gradient then costs O(J), whatever N is); the table keeps
  the summarising time apart from the fit.

:func:`run_bench` measures; :func:`hierlin_stan.reports.bench_report.write_bench`
writes ``samplers.csv/.md``, ``scaling.csv/.md``, ``ess_per_sampler.png`` and
``scaling.png`` into a folder that appears complete or not at all. The benchmark suite (``pytest benchmarks/ --benchmark-only``)
measures the same things, and more, with pytest-benchmark.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..model.dataset import Dataset, simulate
from ..checks.diagnostics import sampler_stats

__all__ = [
    "BenchResult",
    "BenchPlan",
    "PLANS",
    "bench_samplers",
    "bench_scaling",
    "run_bench",
]

#: Seed of the benchmark data and samplers (same seed, same numbers on one machine).
BENCH_SEED = 20261124


@dataclasses.dataclass(frozen=True)
class BenchPlan:
    """What one ``hierlin bench`` run measures.

    Attributes
    ----------
    samplers : tuple of str
        Names from :data:`hierlin_stan.compare.SAMPLERS`; None: all available here.
    settings : dict
        Per-sampler overrides (chains, draws, warmup, thin).
    per_point_n : tuple of int
        N of the one-slope-per-point scaling runs (J = N).
    grouped_n : tuple of int
        N of the grouped scaling runs (J = :attr:`grouped_j`).
    grouped_j : int
        Groups of the grouped runs.
    draws, warmup : int
        NUTS draws and warm-up per chain of the scaling runs (4 chains).
    """

    samplers: tuple[str, ...] | None
    settings: dict[str, dict[str, int]]
    per_point_n: tuple[int, ...]
    grouped_n: tuple[int, ...]
    grouped_j: int = 100
    draws: int = 1000
    warmup: int = 1000


_QUICK_METROPOLIS = {"draws": 4000, "warmup": 2000, "thin": 2}
PLANS: dict[str, BenchPlan] = {
    # ~1 minute: what the test suite runs.
    "quick": BenchPlan(
        samplers=("stan-collapsed", "stan-marginal", "stan-centered", "metropolis-marginal", "metropolis-full"),
        settings={"metropolis-marginal": _QUICK_METROPOLIS, "metropolis-full": _QUICK_METROPOLIS},
        per_point_n=(100, 1000),
        grouped_n=(1000, 100_000),
        draws=300,
        warmup=300,
    ),
    # ~10 minutes on 2 cores (PyMC's Metropolis alone takes ~1.5 min when installed).
    "default": BenchPlan(
        samplers=None,
        settings={},
        per_point_n=(100, 1000, 10_000),
        grouped_n=(1000, 100_000, 1_000_000, 10_000_000),
    ),
}


@dataclasses.dataclass
class BenchResult:
    """Tables of one benchmark run.

    Attributes
    ----------
    samplers : pandas.DataFrame
        One row per sampler: label, compile/warm-up/sampling seconds, min bulk-ESS,
        ESS per sampling second, max R-hat, divergences, speed-up over the slowest.
    scaling : pandas.DataFrame
        One row per (design, N): J, summarising seconds, fit seconds (wall, without
        the summarising), warm-up and sampling seconds, min bulk-ESS, ESS/s, mean
        leapfrog steps and seconds per gradient.
    machine : dict
        CPU count, platform, versions.
    """

    samplers: pd.DataFrame
    scaling: pd.DataFrame
    machine: dict[str, Any]


# --------------------------------------------------------------------- measure
def bench_samplers(
    dataset: Dataset | None = None,
    samplers: Sequence[str] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
    seed: int = BENCH_SEED,
    engine: str = "auto",
    show_progress: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> pd.DataFrame:
    """ESS per second of each sampler on one dataset, measured side by side.

    Parameters
    ----------
    dataset : Dataset, optional
        Default: the notebook's data (``simulate(seed=seed)``).
    samplers : sequence of str, optional
        Names from :data:`hierlin_stan.compare.SAMPLERS`; default all available here.
    settings : mapping, optional
        Per-sampler overrides, e.g. ``{"metropolis-full": {"draws": 5000}}``.
    seed : int
        Seed of the data and every sampler.
    engine : {"auto", "cmdstan", "pystan"}
        Stan engine.
    show_progress : bool
        Progress bars.
    log : callable
        Receives one line per sampler as it starts.

    Returns
    -------
    pandas.DataFrame
        Indexed by sampler; a sampler that fails (PyMC missing, ...) gets a row with
        its ``error``. ``speedup_vs_slowest`` is the ESS/s over that of the slowest sampler.
    """
    from .compare import available_samplers, check_samplers, compare

    names = check_samplers(samplers if samplers is not None else available_samplers())
    # a plan's settings may name samplers the user left out of this run
    settings = {name: extra for name, extra in (settings or {}).items() if name in names}
    comparison = compare(dataset if dataset is not None else simulate(seed=seed), samplers=names, seed=seed,
                         engine=engine, settings=settings, show_progress=show_progress,
                         log=lambda line: log(f"bench: {line}"))
    frame = comparison.table.copy()
    # what a benchmark adds to the comparison table: the whole run and the raw iteration speed
    for column in ("warmup_seconds", "wall_seconds", "iterations_per_second"):
        frame[column] = [comparison.fits[name].attrs.get(column) if name in comparison.fits else None
                         for name in frame.index]
    if "min_ess_bulk_per_s" in frame:
        per_s = pd.to_numeric(frame["min_ess_bulk_per_s"], errors="coerce")
        good = per_s[np.isfinite(per_s) & (per_s > 0)]
        frame["speedup_vs_slowest"] = per_s / good.min() if len(good) else np.nan
    return frame


def bench_scaling(
    per_point_n: Sequence[int] = (100, 1000, 10_000),
    grouped_n: Sequence[int] = (1000, 100_000, 1_000_000),
    grouped_j: int = 100,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int = BENCH_SEED,
    engine: str = "auto",
    show_progress: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> pd.DataFrame:
    """Seconds and ESS/s of Stan's marginal program as N grows.

    Simulates (eps = 0.5 for grouped data, the notebook's eps = 0 per point),
    summarises the data once (timed apart: ``summarise_seconds``) and fits with
    4 chains. ``fit_seconds`` is the wall time of :func:`hierlin_stan.fit` minus one
    more summarising (fit summarises again internally), so it is the cost "after
    summarising". The slopes b are not kept (large J), nor y_rep.

    Returns
    -------
    pandas.DataFrame
        One row per run: design, N, J, the timings, ``min_ess_bulk``,
        ``min_ess_bulk_per_s``, ``mean_leapfrog`` (steps per iteration) and
        ``ms_per_gradient`` (sampling seconds summed over chains over the
        leapfrog steps of all chains).
    """
    from ..samplers.stan import fit

    runs = [("one slope per point", int(n), None) for n in per_point_n]
    runs += [(f"grouped, J = {grouped_j}", int(n), int(grouped_j)) for n in grouped_n]
    rows = []
    for design, n, groups in runs:
        log(f"bench: marginal NUTS, {design}, N = {n:,} ...")
        dataset = simulate(n=n, groups=groups, eps=0.0 if groups is None else 0.5, seed=seed)
        start = time.perf_counter()
        dataset.group_sums()
        summarise = time.perf_counter() - start
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="not keeping the")
            idata = fit(dataset, "marginal", engine=engine, chains=4, draws=draws, warmup=warmup, seed=seed,
                        keep_b=False, show_progress=show_progress)
        wall = time.perf_counter() - start
        st = sampler_stats(idata)
        steps = idata.sample_stats["n_steps"].values
        rows.append({
            "design": design,
            "N": n,
            "J": dataset.n_groups,
            "summarise_seconds": summarise,
            "fit_seconds": max(wall - summarise, 0.0),
            "warmup_seconds": st["warmup_seconds"],
            "sampling_chain_seconds": st["sampling_chain_seconds"],
            "min_ess_bulk": st["min_ess_bulk"],
            "min_ess_bulk_per_s": st["min_ess_bulk_per_s"],
            "max_rhat": st["max_rhat"],
            "divergences": st["divergences"],
            "mean_leapfrog": float(steps.mean()),
            "ms_per_gradient": 1e3 * st["sampling_chain_seconds"] / float(steps.sum()) if steps.sum() else np.nan,
        })
        del dataset, idata
    return pd.DataFrame(rows)


def machine_info() -> dict[str, Any]:
    """CPU count, platform and versions: what a benchmark number depends on."""
    import os
    import platform

    from ..utils.versions import environment_versions

    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            **environment_versions()}


# -------------------------------------------------------------------------- run
def run_bench(
    quick: bool = False,
    samplers: Sequence[str] | None = None,
    seed: int = BENCH_SEED,
    engine: str = "auto",
    show_progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> BenchResult:
    """Run the benchmark: ESS/s per sampler and the scaling of marginal NUTS in N.

    Parameters
    ----------
    quick : bool
        About a minute (short runs, small N) instead of about ten.
    samplers : sequence of str, optional
        Override the plan's sampler set.
    seed : int
        Seed of data and samplers.
    engine : {"auto", "cmdstan", "pystan"}
    show_progress : bool
        Progress bars.
    log : callable, optional
        One line per step (default: stderr).

    Returns
    -------
    BenchResult
        Write it with :func:`hierlin_stan.write_report`.
    """
    plan = PLANS["quick" if quick else "default"]
    if log is None:
        log = lambda line: print(f"hierlin: {line}", file=sys.stderr)  # noqa: E731
    table = bench_samplers(samplers=samplers or plan.samplers, settings=plan.settings, seed=seed,
                           engine=engine, show_progress=show_progress, log=log)
    scaling = bench_scaling(plan.per_point_n, plan.grouped_n, plan.grouped_j, plan.draws, plan.warmup,
                            seed=seed, engine=engine, show_progress=show_progress, log=log)
    return BenchResult(table, scaling, machine_info())
