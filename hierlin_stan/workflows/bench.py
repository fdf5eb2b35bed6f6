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
* **Program variants** (:func:`bench_programs`): the collapsed and marginal programs
  as CmdStan runs them fused (C++ value and gradient) and pure (Stan autodiff), and as
  PyStan runs them, beside nutpie and the numpy Metropolis, on one slope per point
  (N = 100, 10^4; 10^5 with ``large``) and 100 groups at N = 10^7: ESS per chain-second
  and per wall-second, leapfrog steps per draw, ms per gradient.

:func:`run_bench` measures; :func:`hierlin_stan.reports.bench_report.write_bench`
writes ``samplers.csv/.md``, ``scaling.csv/.md``, ``programs.csv/.md``,
``ess_per_sampler.png``, ``scaling.png`` and ``programs.png`` into a folder that
appears complete or not at all. The benchmark suite (``pytest benchmarks/ --benchmark-only``)
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
    "bench_program",
    "bench_programs",
    "PROGRAM_DATA",
    "PROGRAM_VARIANTS",
    "variant_unavailable",
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
    program_data: tuple[str, ...] = ()
    program_variants: tuple[str, ...] | None = None


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
        program_data=("N100",),
        program_variants=("collapsed-fused", "collapsed-pure", "collapsed-pystan", "marginal-fused",
                          "marginal-pure", "metropolis-marginal"),
    ),
    # The full plan (not timed whole; PyMC's Metropolis alone takes ~1.5 min when installed).
    "default": BenchPlan(
        samplers=None,
        settings={},
        per_point_n=(100, 1000, 10_000),
        grouped_n=(1000, 100_000, 1_000_000, 10_000_000),
        program_data=("N100", "N1e4", "J100xN1e7"),
    ),
}
#: Data of the program-variant table (``simulate(**spec, eps=0.5, seed=3)``): one slope per point, and grouped.
PROGRAM_DATA: dict[str, dict[str, Any]] = {
    "N100": dict(n=100),
    "N1e4": dict(n=10_000),
    "N1e5": dict(n=100_000),
    "J100xN1e7": dict(groups=[100_000] * 100),
}
#: Rows of the program-variant table: Stan (parameterization, engine, fused) or a sampler name.
PROGRAM_VARIANTS: dict[str, tuple[str, str, bool | None] | str] = {
    "collapsed-fused": ("collapsed", "cmdstan", True),
    "collapsed-pure": ("collapsed", "cmdstan", False),
    "collapsed-pystan": ("collapsed", "pystan", None),
    "marginal-fused": ("marginal", "cmdstan", True),
    "marginal-pure": ("marginal", "cmdstan", False),
    "marginal-pystan": ("marginal", "pystan", None),
    "nutpie-marginal": "nutpie-marginal",
    "metropolis-marginal": "metropolis-marginal",
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
    programs : pandas.DataFrame
        One row per (data, program variant): :func:`bench_programs`.
    """

    samplers: pd.DataFrame
    scaling: pd.DataFrame
    machine: dict[str, Any]
    programs: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


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


def program_dataset(key: str, seed: int = 3) -> Dataset:
    """The program-variant table's dataset ``key`` (:data:`PROGRAM_DATA`), eps = 0.5, summarised."""
    if key not in PROGRAM_DATA:
        raise ValueError(f"program dataset {key!r} is unknown; use one of {list(PROGRAM_DATA)}")
    dataset = simulate(**PROGRAM_DATA[key], eps=0.5, seed=seed)
    dataset.group_sums()
    return dataset


def _variant_spec(variant: str) -> tuple[str, str, bool | None] | str:
    spec = PROGRAM_VARIANTS.get(variant)
    if spec is None:
        raise ValueError(f"program variant {variant!r} is unknown; use one of {list(PROGRAM_VARIANTS)}")
    return spec


def variant_unavailable(variant: str) -> str | None:
    """Why program variant ``variant`` cannot run on this machine, or None when it can.

    Raises
    ------
    ValueError
        An unknown variant, naming the known ones.
    """
    from ..engines import cmdstan_engine
    from ..samplers.registry import available_samplers

    spec = _variant_spec(variant)
    if isinstance(spec, str):
        if spec in available_samplers():
            return None
        return f"needs {spec.split('-')[0]}, not installed here: pip install 'hierlin_stan[pymc]'"
    if spec[1] == "cmdstan":
        if not cmdstan_engine.available()[0]:
            return "needs CmdStan, which cmdstanpy does not find: set $CMDSTAN or run `hierlin install-cmdstan`"
    return None


def bench_program(dataset: Dataset, variant: str, seed: int = 1, draws: int = 1000, warmup: int = 1000,
                  show_progress: bool = False) -> dict[str, Any]:
    """Run one row of the program-variant table on ``dataset`` and measure it.

    Stan variants are compiled before the clock starts; nutpie gets a tiny run first (imports,
    JIT). Metropolis runs its registry settings (draws, thin), not ``draws``/``warmup``.

    Returns
    -------
    dict
        ``N``, ``J``, ``program``, ``min_ess_bulk`` (of a, mu_b, sigma_b, eps), ``max_rhat``,
        ``divergences``, ``wall_seconds`` (the call, warm-up included, compile excluded),
        ``sampling_chain_seconds``, ``ess_per_chain_second``, ``ess_per_wall_second``, and
        ``mean_leapfrog`` with ``ms_per_gradient`` (NUTS) or ``ms_per_density`` (Metropolis).

    Raises
    ------
    ValueError
        An unknown variant, naming the known ones.
    """
    from ..engines import get_engine
    from ..engines.programs import select_program
    from ..samplers.registry import SAMPLERS, run_sampler
    from ..samplers.stan import fit

    spec = _variant_spec(variant)
    if isinstance(spec, tuple):
        parameterization, engine, fused = spec
        eng = get_engine(engine, verbose=False)
        eng.compile(select_program(parameterization, eng.name, fused)[0])

        def run() -> Any:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="not keeping the")
                return fit(dataset, parameterization, engine=engine, fused=fused, seed=seed, draws=draws,
                           warmup=warmup, keep_b=False, show_progress=show_progress)
    else:
        sampler = SAMPLERS[spec]
        if spec.startswith("nutpie"):
            run_sampler(sampler, simulate(n=20, eps=0.5, seed=1), seed, show_progress=False, draws=10, warmup=10)
        extra = {} if sampler.family == "metropolis" else {"draws": draws, "warmup": warmup}

        def run() -> Any:
            return run_sampler(sampler, dataset, seed, show_progress=show_progress, **extra)

    start = time.perf_counter()
    idata = run()
    wall = time.perf_counter() - start
    st = sampler_stats(idata, ["a", "mu_b", "sigma_b", "eps"])
    row: dict[str, Any] = dict(
        N=dataset.n, J=dataset.n_groups, program=idata.attrs.get("program", variant),
        min_ess_bulk=st["min_ess_bulk"], max_rhat=st["max_rhat"], divergences=st["divergences"],
        wall_seconds=wall, sampling_chain_seconds=st["sampling_chain_seconds"],
        ess_per_chain_second=st["min_ess_bulk_per_s"], ess_per_wall_second=st["min_ess_bulk"] / wall)
    if "n_steps" in idata.sample_stats:
        steps = float(idata.sample_stats["n_steps"].values.sum())
        row.update(mean_leapfrog=steps / idata.sample_stats["n_steps"].size,
                   ms_per_gradient=1e3 * st["sampling_chain_seconds"] / steps if steps else np.nan)
    else:  # Metropolis: one density evaluation per iteration (kept draws x thin)
        sampler = SAMPLERS[str(spec)]
        row.update(ms_per_density=1e3 * st["sampling_chain_seconds"] / (sampler.chains * sampler.draws * sampler.thin))
    return row


def bench_programs(
    data: Sequence[str] = ("N100", "N1e4", "J100xN1e7"),
    variants: Sequence[str] | None = None,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int = 1,
    show_progress: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> pd.DataFrame:
    """The program-variant table: every variant on every dataset, side by side in one run.

    Parameters
    ----------
    data : sequence of str
        Keys of :data:`PROGRAM_DATA`.
    variants : sequence of str, optional
        Keys of :data:`PROGRAM_VARIANTS`; default all. A variant that cannot run here
        (CmdStan rows without CmdStan, nutpie without the pymc extra) gets a row whose
        ``not_run`` says why and what to install.
    draws, warmup : int
        NUTS draws and warm-up per chain (4 chains).
    seed : int
        Seed of every sampler (the data use seed 3).

    Returns
    -------
    pandas.DataFrame
        One row per (data, variant), :func:`bench_program`'s numbers; a variant that fails
        gets its ``error`` instead, one that cannot run here its ``not_run``.
    """
    variants = list(PROGRAM_VARIANTS) if variants is None else list(variants)
    unknown = [v for v in variants if v not in PROGRAM_VARIANTS]
    if unknown:
        raise ValueError(f"program variant(s) {unknown} unknown; use some of {list(PROGRAM_VARIANTS)}")
    missing = {v: variant_unavailable(v) for v in variants}
    rows = []
    for key in data:
        dataset = program_dataset(key)
        for variant in variants:
            if missing[variant]:
                log(f"bench: {variant} on {key}: not run, {missing[variant]}")
                rows.append({"data": key, "variant": variant, "N": dataset.n, "J": dataset.n_groups,
                             "not_run": missing[variant]})
                continue
            log(f"bench: {variant} on {key} ...")
            try:
                numbers = bench_program(dataset, variant, seed=seed, draws=draws, warmup=warmup,
                                        show_progress=show_progress)
            except Exception as err:  # noqa: BLE001 - one row says why, the others still run
                numbers = {"N": dataset.n, "J": dataset.n_groups, "error": f"{type(err).__name__}: {err}"}
            rows.append({"data": key, "variant": variant, **numbers})
        del dataset
    frame = pd.DataFrame(rows)
    if "not_run" in frame:
        frame["not_run"] = frame.pop("not_run")  # last column: the numbers come first
    return frame


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
    large: bool = False,
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
        A few minutes (short runs, small N) instead of the full plan.
    large : bool
        Add one slope per point at N = 10^5 to the program-variant table (pure and PyStan
        rows take minutes each there).
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
    data = plan.program_data + (("N1e5",) if large and "N1e5" not in plan.program_data else ())
    programs = bench_programs(data, plan.program_variants, draws=plan.draws, warmup=plan.warmup,
                              show_progress=show_progress, log=log) if data else pd.DataFrame()
    return BenchResult(table, scaling, machine_info(), programs)
