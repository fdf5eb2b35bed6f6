"""Simulation-based calibration (SBC; Talts et al. 2018) of any sampler of the package.

The pipeline follows the SBC R package: **generator -> datasets -> backend ->
results -> plots**, each a plain object you can inspect and save.

* :class:`SBCGenerator` draws a, mu_b, sigma_b, eps from the (simulation) priors
  and simulates one dataset with the Stan simulation program (fixed_param,
  :func:`hierlin_stan.simulate_stan`); :class:`FormulaSBCGenerator` does the same for
  any formula with ``glm_simulate.stan`` (beta, tau, sigma and, for ``|`` terms, Omega
  drawn from the priors; new predictors per simulation). Simulation ``k`` uses seeds
  derived from ``(seed, k)`` alone (:func:`simulation_seeds`), so results depend neither
  on the executor nor on the order in which simulations finish.
* :class:`SBCBackend` fits a dataset with one of the package's samplers
  (``stan-collapsed``, ``stan-marginal``, ``stan-centered``, ``stan-noncentered``,
  ``metropolis-marginal``, ``metropolis-full``; see
  :data:`hierlin_stan.compare.SAMPLERS`) or with any picklable callable
  ``backend(dataset, seed) -> InferenceData``.
* :func:`rank_record` reduces a fit to the **rank** of each true value among
  ``n_ranks`` (L) near-independent posterior draws, plus a few summaries
  (posterior mean and sd, min bulk-ESS, max R-hat, divergences). Draws are thinned
  per chain by ``t = ceil(S / ESS_min)``, where S is the total number of draws and
  ESS_min the smallest bulk-ESS of the ranked scalars (a, mu_b, sigma_b, eps; for a
  formula every beta, tau, sigma and correlation), so the kept draws are
  roughly independent; from the C * ceil(S_chain / t) thinned draws (chains
  concatenated) L evenly spaced ones are kept. When fewer than L thinned draws
  remain, the thinning is reduced until L remain and the record says
  ``ess_limited`` (the ranks may then be slightly over-dispersed: give the
  sampler more draws). The rank is the number of kept draws below the truth,
  0..L, uniform on 0..L when the sampler is calibrated.
* :class:`SBCResult` holds one record per simulation (a failed one with its
  error), the ranks, the uniformity tests (:func:`uniformity`: a chi-square test
  on binned ranks and the ECDF-difference test with simultaneous 95 % bands of
  Säilynoja, Bürkner & Vehtari 2022) and writes the report
  (:mod:`hierlin_stan.sbc_report`).

Executors: ``"pool"`` (default; a local process pool of ``n_jobs`` workers, or
in-process when ``n_jobs=1``) and ``"dask"`` (Dask distributed: a scheduler
address, a ``distributed.Client``, or None to start a LocalCluster of
``n_jobs`` single-threaded worker processes). Workers compile the Stan program
or reuse the cached build themselves.

With ``out`` set, every finished simulation is appended at once as one JSON line
to ``out/sims.jsonl`` (the run's settings are in ``out/sbc.json``); running the
same call again resumes: finished simulations are not redone, and asking for
more simulations extends the run. Only ranks and summaries are kept, never the
draws, so memory stays bounded whatever the number of simulations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import numbers
import os
import socket
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from ..checks.calibration import PARAMS, default_bins, ecdf_band, flat_truth, rank_record, uniformity
from ..model.priors import Priors, resolve_priors
from ..utils.display import RichDisplay
from ..utils.files import atomic_path, write_text_atomic
from ..utils.checks import positive_int as _positive_int
from ..utils.seeds import MAX_SEED, resolve_seed

__all__ = [
    "PARAMS",
    "SBC_SAMPLERS",
    "SBC_FORMULA_SAMPLERS",
    "DEFAULT_DESIGN",
    "DEFAULT_FORMULA_PRIORS",
    "SBCGenerator",
    "FormulaSBCGenerator",
    "SBCBackend",
    "SBCResult",
    "sbc",
    "simulation_seeds",
    "rank_record",
    "uniformity",
    "ecdf_band",
    "diffuse_prior_problems",
]

#: Samplers of :data:`hierlin_stan.compare.SAMPLERS` that SBC can run.
SBC_SAMPLERS: tuple[str, ...] = (
    "stan-collapsed", "stan-marginal", "stan-centered", "stan-noncentered", "metropolis-marginal", "metropolis-full",
)
#: ... and for a formula (the numpy Metropolis on the collapsed target too).
SBC_FORMULA_SAMPLERS: tuple[str, ...] = (
    "stan-marginal", "stan-collapsed", "stan-centered", "stan-noncentered", "metropolis-marginal",
    "metropolis-collapsed", "metropolis-full",
)
#: Simulating priors of a formula's SBC when none are given: proper and moderate on the scale
#: of the default design (x ~ U(0, 10)).
DEFAULT_FORMULA_PRIORS: dict[str, str] = {"beta": "normal(0, 2)", "tau": "halfnormal(1)", "sigma": "halfnormal(1)",
                                          "Omega": "lkj(2)"}
#: Default SBC design: 40 points in 8 groups of 5, x ~ U(0, 10).
DEFAULT_DESIGN: dict[str, Any] = {"n": None, "groups": [5] * 8, "x_low": 0.0, "x_high": 10.0}
#: Default sampler settings for SBC (fewer NUTS draws than a single fit: L = 99 ranks
#: need ESS ~ 100, and 4 x 500 marginal NUTS draws give ~1000).
SBC_SETTINGS: dict[str, dict[str, Any]] = {
    "stan": {"chains": 4, "draws": 500, "warmup": 500},
    "metropolis": {},
}
RECORDS_FILE = "sims.jsonl"
CONFIG_FILE = "sbc.json"
FORMAT_VERSION = 1


# ------------------------------------------------------------------- seeds
def simulation_seeds(seed: int, k: int) -> tuple[int, int]:
    """Seeds of simulation ``k``: (data simulation, fit), from ``(seed, k)`` alone.

    Uses :class:`numpy.random.SeedSequence` with ``spawn_key=(k,)``, so the seeds of
    different simulations are independent streams and do not depend on how many
    simulations are run or where.
    """
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(k),)).generate_state(2)
    return int(state[0] % MAX_SEED), int(state[1] % MAX_SEED)


# --------------------------------------------------------------- generator
@dataclasses.dataclass(frozen=True)
class SBCGenerator:
    """Draw hyperparameters from the priors and simulate data with Stan (fixed_param).

    Attributes
    ----------
    priors : Priors
        The simulating priors (must be proper; moderate ones make SBC informative).
    n, groups, x_low, x_high
        The design, as for :func:`hierlin_stan.simulate_stan`.
    engine : str
        Stan engine running the simulation program.
    """

    priors: Priors
    n: int | None = None
    groups: int | tuple[int, ...] | None = (5,) * 8
    x_low: float = 0.0
    x_high: float = 10.0
    engine: str = "auto"

    def dataset(self, seed: int) -> Any:
        """One simulated :class:`~hierlin_stan.Dataset` (with ``truth``) for ``seed``."""
        from ..samplers.stan import simulate_stan

        groups = list(self.groups) if isinstance(self.groups, tuple) else self.groups
        return simulate_stan(1, n=self.n, groups=groups, x_low=self.x_low, x_high=self.x_high,
                             from_prior=True, priors=self.priors, seed=seed, engine=self.engine)[0]

    def describe(self) -> dict[str, Any]:
        """JSON-able description (used to check that a resumed run is the same run)."""
        return {"priors": dataclasses.asdict(self.priors), "n": self.n,
                "groups": list(self.groups) if isinstance(self.groups, tuple) else self.groups,
                "x_low": self.x_low, "x_high": self.x_high}


@dataclasses.dataclass(frozen=True)
class FormulaSBCGenerator:
    """Draw a formula's parameters from its priors and simulate one dataset with ``glm_simulate.stan``.

    Attributes
    ----------
    formula : str
    priors : tuple of (name, distribution)
        The simulating priors (``("beta", "normal(0, 2)")``, ...): every one of beta, tau,
        sigma and, for correlated terms, Omega.
    n, groups, x_low, x_high
        The design, as for :func:`hierlin_stan.simulate_stan`: numeric predictors drawn
        U(x_low, x_high) anew for each simulation, groups of the given sizes.
    engine : str
    """

    formula: str
    priors: tuple[tuple[str, str], ...]
    n: int | None = None
    groups: int | tuple[int, ...] | None = (5,) * 8
    x_low: float = 0.0
    x_high: float = 10.0
    engine: str = "auto"

    def dataset(self, seed: int) -> Any:
        """One simulated DataFrame (truth in ``attrs["hierlin_truth"]``) for ``seed``."""
        from ..samplers.stan import simulate_stan

        groups = list(self.groups) if isinstance(self.groups, tuple) else self.groups
        return simulate_stan(1, formula=self.formula, n=self.n, groups=groups, x_low=self.x_low, x_high=self.x_high,
                             from_prior=True, priors=dict(self.priors), seed=seed, engine=self.engine)[0]

    def describe(self) -> dict[str, Any]:
        """JSON-able description (used to check that a resumed run is the same run)."""
        return {"formula": self.formula, "priors": dict(self.priors), "n": self.n,
                "groups": list(self.groups) if isinstance(self.groups, tuple) else self.groups,
                "x_low": self.x_low, "x_high": self.x_high}


# ----------------------------------------------------------------- backend
@dataclasses.dataclass(frozen=True)
class SBCBackend:
    """Fit one dataset: a sampler of the package by name, or a callable.

    Attributes
    ----------
    sampler : str or callable
        A name in :data:`SBC_SAMPLERS`, or ``f(dataset, seed) -> InferenceData``
        (picklable, i.e. a module-level function, to run in worker processes).
    priors : Priors or tuple of (name, distribution)
        Priors of the inference (equal to the simulating ones for a valid SBC;
        different ones show what miscalibration looks like); for a formula its
        distributions by name.
    settings : tuple of (name, value)
        Sampler settings (chains, draws, warmup, thin, ...).
    engine : str
        Stan engine.
    formula : str, optional
        Fit this formula's model (the sampler runs with ``formula=``).
    """

    sampler: str | Callable[..., Any]
    priors: Any
    settings: tuple[tuple[str, Any], ...] = ()
    engine: str = "auto"
    formula: str | None = None

    @property
    def name(self) -> str:
        """The sampler's name (``module.function`` for a callable)."""
        if callable(self.sampler):
            return f"{getattr(self.sampler, '__module__', '?')}.{getattr(self.sampler, '__qualname__', repr(self.sampler))}"
        return self.sampler

    def fit(self, dataset: Any, seed: int) -> Any:
        """Fit ``dataset`` with seed ``seed``; return InferenceData."""
        if callable(self.sampler):
            return self.sampler(dataset, seed)
        from ..samplers.registry import SAMPLERS, run_sampler

        spec = SAMPLERS[self.sampler]
        settings = {"keep_b": False, **dict(self.settings)}
        if self.formula is not None:
            return run_sampler(spec, dataset, seed, dict(self.priors), self.engine, show_progress=False,
                               formula=self.formula, **settings)
        return run_sampler(spec, dataset, seed, self.priors, self.engine, show_progress=False, **settings)

    def describe(self) -> dict[str, Any]:
        """JSON-able description (used to check that a resumed run is the same run)."""
        priors = dict(self.priors) if self.formula is not None else dataclasses.asdict(self.priors)
        out = {"sampler": self.name, "fit_priors": priors, "settings": {k: v for k, v in self.settings},
               "engine": self.engine}
        if self.formula is not None:
            out["formula"] = self.formula
        return out


# ------------------------------------------------------------ one simulation
@dataclasses.dataclass(frozen=True)
class SimTask:
    """Everything a worker needs for simulation ``k`` (picklable)."""

    k: int
    seed: int
    generator: SBCGenerator | FormulaSBCGenerator
    backend: SBCBackend
    n_ranks: int
    params: tuple[str, ...] = PARAMS


def run_simulation(task: SimTask) -> dict[str, Any]:
    """Simulate, fit and rank simulation ``task.k``; a failure becomes a record with its error.

    Runs in a worker (process pool or Dask). Never raises for a failing simulation
    (KeyboardInterrupt still propagates).
    """
    sim_seed, fit_seed = simulation_seeds(task.seed, task.k)
    record: dict[str, Any] = {"sim": task.k, "sim_seed": sim_seed, "fit_seed": fit_seed,
                              "host": socket.gethostname(), "pid": os.getpid()}
    start = time.perf_counter()
    stage = "simulate"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = task.generator.dataset(sim_seed)
            truth = _truth_of(dataset, task.params)
            record["truth"] = truth
            stage = "fit"
            idata = task.backend.fit(dataset, fit_seed)
            stage = "rank"
            record.update(rank_record(idata, truth, task.n_ranks, params=task.params))
            record["engine"] = str(idata.attrs.get("engine", "numpy"))
        record["status"] = "ok"
        record["error"] = None
    except Exception as err:  # recorded, not dropped: the user sees which simulation failed and why
        message = f"{type(err).__name__}: {err}"
        if "daemonic processes are not allowed to have children" in message:
            message += (" -- the worker process is daemonic, so PyStan cannot start its chain processes; "
                        "start Dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False (the LocalCluster "
                        "that hierlin_stan starts does this)")
        record.update(status="failed", stage=stage, error=message,
                      traceback="".join(traceback.format_exception(err)[-6:])[-4000:])
    record["seconds"] = time.perf_counter() - start
    return record


def _truth_of(dataset: Any, params: Sequence[str]) -> dict[str, float]:
    """True values by ranked scalar: a Dataset's ``truth``, or a formula's (``attrs["hierlin_truth"]``) flattened."""
    truth = getattr(dataset, "truth", None)
    if isinstance(truth, Mapping) and all(p in truth for p in params):
        return {p: float(truth[p]) for p in params}
    attrs = getattr(dataset, "attrs", {}) or {}
    raw = attrs.get("hierlin_truth")
    if raw is None:
        raise ValueError("the simulated dataset carries no true values (no .truth, no attrs['hierlin_truth'])")
    flat = flat_truth(raw, list(raw["beta"]), list(raw["tau"]), any(p.startswith("Omega[") for p in params))
    return {p: flat[p] for p in params}


def _init_worker(engine: str, programs: tuple[str, ...]) -> None:
    """Process-pool initializer: build (or find cached) the Stan programs once per worker."""
    warnings.simplefilter("ignore")
    from ..engines import get_engine

    from ..engines.programs import select_program

    eng = get_engine(engine, verbose=False)
    for name in programs:
        eng.compile(select_program(name, eng.name)[0])  # the program fit() will run: the fused twin on CmdStan


# -------------------------------------------------------------------- run
def sbc(
    n_sims: int = 200,
    sampler: str | Callable[..., Any] = "stan-marginal",
    priors: Any = None,
    design: Mapping[str, Any] | None = None,
    seed: int = 0,
    executor: Any = "pool",
    n_jobs: int | None = None,
    out: str | os.PathLike[str] | None = None,
    n_ranks: int = 99,
    sampler_settings: Mapping[str, Any] | None = None,
    fit_priors: Any = None,
    engine: str = "auto",
    scheduler: Any = None,
    retry_failed: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    formula: str | None = None,
) -> "SBCResult":
    """Run simulation-based calibration.

    Parameters
    ----------
    n_sims : int
        K, the number of simulations (>= 200 for a real check; fewer for a smoke run).
    sampler : str or callable
        A name in :data:`SBC_SAMPLERS` (default ``"stan-marginal"``; for a formula
        :data:`SBC_FORMULA_SAMPLERS`), or a picklable ``f(dataset, seed) -> InferenceData``.
    priors : None, str, mapping or Priors
        Simulating priors, used for inference too unless ``fit_priors`` is given.
        Default ``"weakly_informative"``. Diffuse priors (such as the notebook's)
        trigger a warning: SBC needs proper, moderate priors. For a formula a mapping of
        distributions covering beta, tau, sigma and (``|`` terms) Omega, e.g.
        ``{"beta": "normal(0, 2)", "tau": "halfnormal(1)", "sigma": "halfnormal(1)",
        "Omega": "lkj(2)"}`` (per-term keys such as ``"beta[x]"`` allowed); default
        :data:`DEFAULT_FORMULA_PRIORS`. The data-scaled defaults of a fit cannot be
        simulated from, so every parameter needs a prior here.
    design : mapping, optional
        ``n``, ``groups``, ``x_low``, ``x_high`` as for :func:`hierlin_stan.simulate_stan`;
        default :data:`DEFAULT_DESIGN` (40 points in 8 groups of 5).
    seed : int
        Master seed; simulation k uses :func:`simulation_seeds` (seed, k).
    executor : {"pool", "dask"} or distributed.Client
        Where simulations run: a local process pool, or Dask distributed.
    n_jobs : int, optional
        Pool workers, or LocalCluster workers for ``executor="dask"`` without a
        scheduler. Default: the number of CPUs. ``n_jobs=1`` runs in this process.
    out : path, optional
        Folder for the incremental records (``sims.jsonl``) and settings
        (``sbc.json``). Running again with the same settings resumes.
    n_ranks : int
        L, the number of thinned posterior draws each truth is ranked among.
    sampler_settings : mapping, optional
        Sampler settings (``chains``, ``draws``, ``warmup``, ``thin``; for Stan also the
        NUTS controls ``adapt_delta``, ``max_treedepth``, ``metric``, ``step_size``,
        ``inits`` as for :func:`hierlin_stan.fit`), over the SBC defaults (Stan: 4
        chains x 500 draws, 500 warm-up). Checked before any simulation runs.
    fit_priors : optional
        Priors of the inference when they should differ from the simulating ones
        (to see miscalibration). Default: ``priors``. For a formula a mapping laid over
        ``priors`` (e.g. ``{"sigma": "halfnormal(0.1)"}`` changes sigma's prior only).
    engine : {"auto", "cmdstan", "pystan"}
        Stan engine (simulation and Stan samplers).
    scheduler : str or distributed.Client, optional
        With ``executor="dask"``: a scheduler address (``"tcp://host:8786"``) or a
        Client. None starts a LocalCluster.
    retry_failed : bool
        On resume, run again the simulations recorded as failed.
    overwrite : bool
        Discard the records in ``out`` when its settings differ, instead of raising.
    show_progress : bool
        A progress bar over simulations.
    formula : str, optional
        Calibrate on this formula's model, e.g. ``"y ~ x + (1 + x | g)"``: datasets are
        simulated with ``glm_simulate.stan`` (:func:`hierlin_stan.simulate_stan` with
        ``formula=``, ``from_prior=True``) on ``design`` (default 8 groups of 5, each
        numeric predictor U(0, 10), drawn anew per simulation), and every beta, tau, sigma
        and correlation of Omega is ranked.

    Returns
    -------
    SBCResult
        Records of simulations 0..n_sims-1 (failed ones included with their error).

    Raises
    ------
    ValueError
        For bad arguments, or when ``out`` holds a run with other settings.
    """
    n_sims = _positive_int(n_sims, "n_sims")
    n_ranks = _positive_int(n_ranks, "n_ranks")
    if n_ranks < 9:
        raise ValueError(f"n_ranks={n_ranks} is too small to test uniformity; use at least 9 (default 99)")
    seed = resolve_seed(seed)
    if formula is not None:
        generator, backend, params = _formula_parts(formula, design, priors, fit_priors, sampler, sampler_settings,
                                                    engine)
    else:
        prior = resolve_priors("weakly_informative" if priors is None else priors)
        fit_prior = prior if fit_priors is None else resolve_priors(fit_priors)
        problems = diffuse_prior_problems(prior)
        if problems:
            warnings.warn(
                "SBC needs proper, moderate priors, but these are diffuse: " + "; ".join(problems)
                + ". Simulated datasets then span absurd scales and ranks say little about the sampler. "
                "Use priors='weakly_informative' (CLI: --priors weakly_informative) or a Priors(...) on the scale of "
                "your data.",
                UserWarning, stacklevel=2,
            )
        generator = _make_generator(design, prior, engine)
        backend = _make_backend(sampler, fit_prior, sampler_settings, engine)
        params = PARAMS
    _check_enough_draws(backend, n_ranks)
    kind, client = _check_executor(executor, scheduler)
    if n_jobs is None:
        n_jobs = os.cpu_count() or 1
    n_jobs = _positive_int(n_jobs, "n_jobs")
    config = {"format": FORMAT_VERSION, "seed": seed, "n_ranks": n_ranks,
              "generator": generator.describe(), "backend": backend.describe()}
    if formula is not None:
        config["params"] = list(params)

    store = _RecordStore(Path(out), config, overwrite) if out is not None else None
    start = time.perf_counter()
    with (store.locked() if store else contextlib.nullcontext()):
        done = store.read() if store else {}
        todo = [k for k in range(n_sims)
                if k not in done or (retry_failed and done[k].get("status") != "ok")]
        tasks = [SimTask(k, seed, generator, backend, n_ranks, tuple(params)) for k in todo]
        records = {k: done[k] for k in range(n_sims) if k in done}
        bar = _progress(len(tasks), f"SBC {backend.name}", show_progress)
        try:
            # closing(): if anything below raises, the executor (pool or cluster) is shut down now,
            # not whenever the generator happens to be garbage-collected
            with contextlib.closing(_execute(tasks, kind, client, n_jobs, engine, backend)) as finished:
                for record in finished:
                    if store:
                        store.append(record)
                    records[record["sim"]] = record
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    result = SBCResult([records[k] for k in sorted(records)], config,
                       wall_seconds=time.perf_counter() - start, n_run=len(tasks),
                       executor=kind if kind != "dask" else f"dask ({_client_label(client, n_jobs)})",
                       n_jobs=n_jobs, out=Path(out) if out is not None else None)
    return result


def diffuse_prior_problems(priors: Priors) -> list[str]:
    """Why ``priors`` are too diffuse for SBC (empty when they are fine).

    Heuristic on the scale of the package's designs (x in [0, 10]): normal scales
    of a, mu_b above 100, or scale priors above 50.
    """
    problems = []
    for name in ("a_scale", "mu_b_scale"):
        value = getattr(priors, name)
        if value > 100:
            problems.append(f"{name.replace('_scale', '')} has prior sd {value:g}")
    for name in ("sigma_b", "eps"):
        value = getattr(priors, f"{name}_scale")
        family = getattr(priors, f"{name}_family")
        if value > 50:
            problems.append(f"{name} ~ {'U(0, ' if family == 'uniform' else 'half-normal(0, '}{value:g})")
    return problems


def _make_generator(design: Mapping[str, Any] | None, prior: Priors, engine: str) -> SBCGenerator:
    from ..model.dataset import _group_sizes

    spec = dict(DEFAULT_DESIGN)
    if design is not None:
        if not isinstance(design, Mapping):
            raise ValueError(f"design={design!r} must be a mapping with keys {sorted(DEFAULT_DESIGN)}")
        unknown = sorted(set(design) - set(DEFAULT_DESIGN))
        if unknown:
            raise ValueError(f"design has unknown key(s) {unknown}; use {sorted(DEFAULT_DESIGN)}")
        if "n" in design and "groups" not in design:
            spec["groups"] = None  # n alone: one slope per point, as in simulate_stan
        spec.update(design)
    _group_sizes(spec["n"], spec["groups"])  # validates, raising ValueError naming the problem
    for name in ("x_low", "x_high"):
        if not isinstance(spec[name], numbers.Real) or not math.isfinite(spec[name]):
            raise ValueError(f"design {name}={spec[name]!r} must be a finite number")
    if not spec["x_high"] > spec["x_low"]:
        raise ValueError(f"design x_high={spec['x_high']} must be greater than x_low={spec['x_low']}")
    groups = spec["groups"]
    if groups is not None and not isinstance(groups, numbers.Integral):
        groups = tuple(int(g) for g in groups)
    from ..engines import ENGINES

    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is unknown; use one of {list(ENGINES)}")
    return SBCGenerator(prior, spec["n"], groups, float(spec["x_low"]), float(spec["x_high"]), engine)


def _make_backend(sampler: Any, prior: Any, settings: Mapping[str, Any] | None, engine: str,
                  formula: str | None = None) -> SBCBackend:
    if callable(sampler):
        return SBCBackend(sampler, prior, tuple(sorted((settings or {}).items())), engine, formula)
    allowed_samplers = SBC_SAMPLERS if formula is None else SBC_FORMULA_SAMPLERS
    if sampler not in allowed_samplers:
        formula_only = formula is None and sampler in SBC_FORMULA_SAMPLERS
        hint = " (it runs formulas only: give formula=...)" if formula_only else ""
        raise ValueError(f"sampler={sampler!r} cannot be calibrated here{hint}; choose one of {list(allowed_samplers)} "
                         "or pass a function f(dataset, seed) -> InferenceData")
    from ..samplers.registry import SAMPLERS

    from ..engines.controls import CONTROL_NAMES, NutsControls

    spec = SAMPLERS[sampler]
    family = spec.family
    merged = {**SBC_SETTINGS.get(family, {}), **dict(settings or {})}
    allowed = {"chains", "draws", "warmup", "thin"} | ({"adapt"} if family == "metropolis" else set(CONTROL_NAMES))
    unknown = sorted(set(merged) - allowed)
    if unknown:
        controls = [k for k in unknown if k in CONTROL_NAMES]
        hint = f"; {', '.join(controls)} set(s) Stan's NUTS (stan-* samplers)" if controls else ""
        raise ValueError(f"sampler_settings has unknown key(s) {unknown} for {sampler}; use {sorted(allowed)}{hint}")
    for key in ("chains", "draws", "warmup", "thin"):
        if key in merged:
            _positive_int(merged[key], f"sampler_settings[{key!r}]")
    if family == "stan":
        controls = NutsControls.from_settings(merged, chains=merged.get("chains", spec.chains))
        # as checked (e.g. metric 'dense_e' -> 'dense'), so that a resumed run compares equal
        merged.update({k: v for k, v in controls.describe().items() if k in merged and k != "inits"})
    return SBCBackend(sampler, prior, tuple(sorted(merged.items())), engine, formula)


def _formula_parts(formula: str, design: Mapping[str, Any] | None, priors: Any, fit_priors: Any, sampler: Any,
                   settings: Mapping[str, Any] | None, engine: str
                   ) -> tuple[FormulaSBCGenerator, SBCBackend, tuple[str, ...]]:
    """Generator, backend and ranked scalars of a formula's SBC, every argument checked before anything runs."""
    from ..engines import ENGINES
    from ..model.design import DataError, build_spec
    from ..model.formula import parse_formula
    from ..model.glm_priors import PriorError, resolve_glm_priors
    from ..model.glm_simulate import simulation_frame

    form = parse_formula(formula)
    spec = dict(DEFAULT_DESIGN)
    if design is not None:
        if not isinstance(design, Mapping):
            raise ValueError(f"design={design!r} must be a mapping with keys {sorted(DEFAULT_DESIGN)}")
        unknown = sorted(set(design) - set(DEFAULT_DESIGN))
        if unknown:
            raise ValueError(f"design has unknown key(s) {unknown}; use {sorted(DEFAULT_DESIGN)}")
        if "n" in design and "groups" not in design:
            spec["groups"] = None
        spec.update(design)
    for name in ("x_low", "x_high"):
        if not isinstance(spec[name], numbers.Real) or not math.isfinite(spec[name]):
            raise ValueError(f"design {name}={spec[name]!r} must be a finite number")
    if not spec["x_high"] > spec["x_low"]:
        raise ValueError(f"design x_high={spec['x_high']} must be greater than x_low={spec['x_low']}")
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is unknown; use one of {list(ENGINES)}")
    groups = spec["groups"]
    if groups is not None and not isinstance(groups, numbers.Integral):
        groups = tuple(int(g) for g in groups)
    # the terms of the design, from one simulated frame (validates n, groups and the formula's columns)
    try:
        frame = simulation_frame(form, None, spec["n"], list(groups) if isinstance(groups, tuple) else groups,
                                 spec["x_low"], spec["x_high"], np.random.default_rng(0))
    except DataError as err:
        if "is categorical" not in str(err):
            raise
        raise ValueError(f"{formula!r}: {str(err).split(':')[0]}; a formula's SBC simulates numeric predictors only "
                         "(uniform on [x_low, x_high]): write the formula with numeric columns") from None
    dspec = build_spec(form, frame)
    sim_priors = dict(DEFAULT_FORMULA_PRIORS if priors is None else _prior_mapping(priors, "priors"))
    if not dspec.q:
        sim_priors = {k: v for k, v in sim_priors.items() if not str(k).startswith(("tau", "Omega"))}
    correlated = bool(dspec.correlated and dspec.q > 1)
    needed = ["beta", "sigma"] + (["tau"] if dspec.q else []) + (["Omega"] if correlated else [])
    missing = [k for k in needed if not any(str(key).split("[")[0] == k for key in sim_priors)]
    if missing:
        raise ValueError(f"priors for a formula's SBC must give {missing} too (data-scaled defaults cannot be "
                         f"simulated from), e.g. priors={DEFAULT_FORMULA_PRIORS}")
    fit = {**sim_priors, **(_prior_mapping(fit_priors, "fit_priors") if fit_priors is not None else {})}
    summary = {"n": 1, "y_mean": 0.0, "y_sd": 1.0, "x_mean": np.zeros(dspec.p), "x_sd": np.ones(dspec.p),
               "z_sd": np.ones(dspec.q)}
    for what, mapping in (("priors", sim_priors), ("fit_priors", fit)):
        try:
            resolve_glm_priors(mapping, dspec.term_names, dspec.group_term_names, summary)
        except PriorError as err:
            raise ValueError(f"{what}: {err}") from None
    params = tuple(flat_truth({"beta": dict.fromkeys(dspec.term_names, 0.0),
                               "tau": dict.fromkeys(dspec.group_term_names, 0.0), "sigma": 0.0,
                               "Omega": np.eye(dspec.q)}, dspec.term_names, dspec.group_term_names, correlated))
    generator = FormulaSBCGenerator(formula, tuple(sorted((str(k), str(v)) for k, v in sim_priors.items())),
                                    spec["n"], groups, float(spec["x_low"]), float(spec["x_high"]), engine)
    backend = _make_backend(sampler, tuple(sorted((str(k), str(v)) for k, v in fit.items())), settings, engine,
                            formula)
    return generator, backend, params


def _prior_mapping(value: Any, what: str) -> dict[str, str]:
    """A formula's priors as {name: distribution text}; a notebook preset or Priors is refused, naming the fix."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    raise ValueError(f"{what}={value!r}: a formula's priors are a mapping of distributions, e.g. "
                     f"{DEFAULT_FORMULA_PRIORS} (the presets and Priors(...) belong to the notebook's model)")


def _check_enough_draws(backend: SBCBackend, n_ranks: int) -> None:
    """A named sampler must keep at least L draws per fit (known before running)."""
    if callable(backend.sampler):
        return
    from ..samplers.registry import SAMPLERS

    spec = SAMPLERS[backend.sampler]
    kw = {"chains": spec.chains, "draws": spec.draws, "thin": spec.thin, **dict(backend.settings)}
    kept = kw["chains"] * math.ceil(kw["draws"] / kw["thin"])
    if kept < n_ranks:
        raise ValueError(
            f"{backend.sampler} keeps {kw['chains']} chains x ceil({kw['draws']} draws / thin {kw['thin']}) = {kept} "
            f"draws per fit, fewer than n_ranks={n_ranks}; raise draws, lower thin, or lower n_ranks"
        )


def _check_executor(executor: Any, scheduler: Any) -> tuple[str, Any]:
    if isinstance(executor, str):
        if executor not in ("pool", "dask"):
            raise ValueError(f"executor={executor!r} is unknown; use 'pool' (local processes) or 'dask' "
                             "(with scheduler= an address, a distributed.Client, or None for a LocalCluster)")
        if executor == "pool" and scheduler is not None:
            raise ValueError("scheduler= is only used with executor='dask'")
        return executor, scheduler
    try:
        from distributed import Client
    except ImportError:
        Client = None
    if Client is not None and isinstance(executor, Client):
        return "dask", executor
    raise ValueError(f"executor={executor!r} is not understood; use 'pool', 'dask' or a distributed.Client")


# --------------------------------------------------------------- executors
def _execute(tasks: list[SimTask], kind: str, client: Any, n_jobs: int, engine: str,
             backend: SBCBackend) -> Iterator[dict[str, Any]]:
    """Yield records as simulations finish."""
    if not tasks:
        return
    prefix = "" if backend.formula is None else "glm_"
    programs: tuple[str, ...] = (f"{prefix}simulate",)
    if isinstance(backend.sampler, str):
        from ..samplers.registry import SAMPLERS

        spec = SAMPLERS[backend.sampler]
        if spec.family == "stan":
            programs += (f"{prefix}{spec.parameterization}",)
    if kind == "pool":
        yield from _execute_pool(tasks, n_jobs, engine, programs)
    else:
        yield from _execute_dask(tasks, client, n_jobs)


def _execute_pool(tasks: list[SimTask], n_jobs: int, engine: str, programs: tuple[str, ...]
                  ) -> Iterator[dict[str, Any]]:
    if n_jobs == 1 or len(tasks) == 1:
        for task in tasks:
            yield run_simulation(task)
        return
    import concurrent.futures
    import multiprocessing as mp

    # spawn, not fork: the parent may hold httpstan's sampling pool and threads.
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=min(n_jobs, len(tasks)), mp_context=mp.get_context("spawn"),
        initializer=_init_worker, initargs=(engine, programs),
    )
    completed = False
    try:
        futures = {pool.submit(run_simulation, task): task for task in tasks}
        for future in concurrent.futures.as_completed(futures):
            yield _result_or_failure(future, futures[future])
        completed = True
    finally:
        # on an error or interrupt: drop what has not started and do not wait for the rest
        pool.shutdown(wait=completed, cancel_futures=True)


def _execute_dask(tasks: list[SimTask], client: Any, n_jobs: int) -> Iterator[dict[str, Any]]:
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError("executor='dask' needs Dask distributed: pip install 'hierlin_stan[dask]' "
                         "(or pip install 'dask[distributed]')") from None
    cluster = None
    own_client = False
    try:
        if client is None:
            # PyStan runs chains in child processes, which daemonic workers may not start.
            with dask.config.set({"distributed.worker.daemon": False}):
                cluster = LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
            client = Client(cluster)
            own_client = True
        elif isinstance(client, str):
            client = Client(client)
            own_client = True
        futures = client.map(run_simulation, tasks, pure=False, key=[f"sbc-sim-{t.k}-{os.getpid()}-{time.time_ns()}" for t in tasks])
        by_key = {f.key: t for f, t in zip(futures, tasks)}
        try:
            for future in as_completed(futures):
                yield _result_or_failure(future, by_key[future.key])
        finally:
            client.cancel(futures)
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def _result_or_failure(future: Any, task: SimTask) -> dict[str, Any]:
    """The record of a finished future; a crashed worker becomes a failed record."""
    try:
        return future.result()
    except Exception as err:
        sim_seed, fit_seed = simulation_seeds(task.seed, task.k)
        return {"sim": task.k, "sim_seed": sim_seed, "fit_seed": fit_seed, "status": "failed",
                "stage": "worker", "error": f"{type(err).__name__}: {err}", "seconds": None}


def _client_label(client: Any, n_jobs: int) -> str:
    if client is None:
        return f"LocalCluster, {n_jobs} workers"
    return str(getattr(client, "scheduler", None) and client.scheduler.address or client)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from ..utils.progress import progress_bar

    bar = progress_bar(total, desc, enabled and total > 0)
    if bar is not None:
        bar.unit = "sim"
    return bar


# ---------------------------------------------------------------- storage
class _RecordStore:
    """``out/sbc.json`` (settings) and ``out/sims.jsonl`` (one JSON line per simulation)."""

    def __init__(self, folder: Path, config: dict[str, Any], overwrite: bool) -> None:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"out={folder} is a file; give a folder for the SBC records")
        self.folder = folder
        self.config = config
        self.overwrite = overwrite
        self.records = folder / RECORDS_FILE
        self.settings = folder / CONFIG_FILE

    def locked(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def lock() -> Iterator[None]:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / ".lock", "a+") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ValueError(f"another SBC run is writing to {self.folder}; wait for it or use another out folder") from None
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

        return lock()

    def read(self) -> dict[int, dict[str, Any]]:
        """Check the settings, repair a torn last line, return finished records by simulation."""
        if self.settings.exists():
            old = json.loads(self.settings.read_text(encoding="utf-8"))
            if old != _jsonable(self.config):
                if not self.overwrite:
                    diff = sorted(k for k in set(old) | set(self.config) if old.get(k) != _jsonable(self.config).get(k))
                    raise ValueError(
                        f"{self.folder} holds an SBC run with other settings (differing: {diff}); "
                        "use another out folder, or overwrite=True (CLI: --force) to discard its records"
                    )
                self.records.unlink(missing_ok=True)
        write_text_atomic(self.settings, json.dumps(_jsonable(self.config), indent=1, sort_keys=True) + "\n")
        return _read_records(self.records, repair=True)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line, flushed and fsynced before returning."""
        line = json.dumps(_jsonable(record), sort_keys=True) + "\n"
        fd = os.open(self.records, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_records(path: Path, repair: bool = False) -> dict[int, dict[str, Any]]:
    """Records by simulation from a JSON-lines file; a torn (unparsable) line is dropped.

    With ``repair`` the file is rewritten atomically without such lines, so that new
    appends start on a fresh line. A later record of the same simulation wins.
    """
    if not path.exists():
        return {}
    good, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            int(record["sim"])
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        good.append(record)
    text = path.read_bytes()
    if repair and (bad or (text and not text.endswith(b"\n"))):
        warnings.warn(f"{path}: dropped {bad} incomplete record(s) (an interrupted write); they will be rerun",
                      stacklevel=3)
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in good), encoding="utf-8")
    return {int(r["sim"]): r for r in good}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------ result
class SBCResult(RichDisplay):
    """Records of an SBC run, their ranks and uniformity tests.

    In Jupyter it displays as its uniformity table and ECDF plot (:mod:`hierlin_stan.reports.display`).

    Attributes
    ----------
    records : list of dict
        One per simulation, sorted by ``sim``: seeds, truth, ranks, summaries,
        ``status`` ("ok" or "failed") and ``error``.
    config : dict
        Seed, L, generator and backend settings.
    wall_seconds : float
        Wall time of this call (the simulations it ran, not resumed ones).
    n_run : int
        Simulations run by this call (the others were read from ``out``).
    """

    def __init__(self, records: Sequence[dict[str, Any]], config: dict[str, Any], wall_seconds: float = float("nan"),
                 n_run: int = 0, executor: str = "", n_jobs: int = 1, out: Path | None = None) -> None:
        self.records = list(records)
        self.config = config
        self.wall_seconds = wall_seconds
        self.n_run = n_run
        self.executor = executor
        self.n_jobs = n_jobs
        self.out = out

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> "SBCResult":
        """Read the records of a run from its folder (``sbc.json`` and ``sims.jsonl``)."""
        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise ValueError(f"{folder} holds no SBC run (no {CONFIG_FILE}); run hierlin_stan.sbc(out={str(folder)!r}) first")
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        records = _read_records(folder / RECORDS_FILE)
        return cls([records[k] for k in sorted(records)], config, out=folder)

    def __repr__(self) -> str:
        return (f"SBCResult({self.config['backend']['sampler']}, {len(self.ok)} ok / {len(self.records)} simulations, "
                f"L={self.n_ranks})")

    @property
    def n_ranks(self) -> int:
        """L: ranks lie in 0..L."""
        return int(self.config["n_ranks"])

    @property
    def params(self) -> list[str]:
        """The ranked scalars: a, mu_b, sigma_b, eps, or a formula's beta[...], tau[...], sigma, Omega[...]."""
        return list(self.config.get("params", PARAMS))

    @property
    def ok(self) -> list[dict[str, Any]]:
        """Records of the simulations that finished."""
        return [r for r in self.records if r.get("status") == "ok"]

    @property
    def failures(self) -> pd.DataFrame:
        """One row per failed simulation: stage and error."""
        rows = [{"sim": r["sim"], "stage": r.get("stage"), "error": r.get("error")}
                for r in self.records if r.get("status") != "ok"]
        return pd.DataFrame(rows, columns=["sim", "stage", "error"]).set_index("sim")

    @property
    def ranks(self) -> pd.DataFrame:
        """Ranks (0..L), one row per finished simulation, one column per parameter."""
        frame = pd.DataFrame([{**{"sim": r["sim"]}, **r["ranks"]} for r in self.ok], columns=["sim", *self.params])
        return frame.set_index("sim").astype(int)

    @property
    def table(self) -> pd.DataFrame:
        """Per finished simulation: truth, ranks, posterior mean/sd/z, ESS, R-hat, divergences, thinning."""
        rows = []
        for r in self.ok:
            row: dict[str, Any] = {"sim": r["sim"], "sim_seed": r["sim_seed"], "fit_seed": r["fit_seed"]}
            for p in self.params:
                row[f"true_{p}"] = r["truth"][p]
                row[f"rank_{p}"] = r["ranks"][p]
            for p in self.params:
                row[f"mean_{p}"] = r["post_mean"][p]
                row[f"sd_{p}"] = r["post_sd"][p]
                row[f"z_{p}"] = r["z"][p]
            row.update(min_ess_bulk=r.get("min_ess_bulk"), max_rhat=r.get("max_rhat"),
                       divergences=r.get("divergences"), thin=r.get("thin"), ess_limited=r.get("ess_limited"),
                       seconds=r.get("seconds"))
            rows.append(row)
        return pd.DataFrame(rows).set_index("sim") if rows else pd.DataFrame()

    def uniformity(self, bins: int | None = None, prob: float = 0.95) -> pd.DataFrame:
        """Chi-square p-value and simultaneous ECDF-band check per parameter (:func:`uniformity`)."""
        return uniformity(self.ranks, self.n_ranks, bins, prob)

    @property
    def calibrated(self) -> bool:
        """True when every parameter passes at a family-wise false-alarm rate of 5 % (:func:`uniformity`)."""
        u = self.uniformity()
        return bool(len(u) and u["calibrated"].all())

    def summary(self) -> dict[str, Any]:
        """Counts and diagnostics of the run in one dict."""
        t = self.table
        return {
            "sampler": self.config["backend"]["sampler"],
            "n_sims": len(self.records),
            "n_ok": len(self.ok),
            "n_failed": len(self.records) - len(self.ok),
            "n_ranks": self.n_ranks,
            "n_ess_limited": int(t["ess_limited"].sum()) if len(t) else 0,
            "n_with_divergences": int((t["divergences"].fillna(0) > 0).sum()) if len(t) else 0,
            "median_min_ess_bulk": float(t["min_ess_bulk"].median()) if len(t) else float("nan"),
            "wall_seconds": self.wall_seconds,
            "fit_seconds_total": float(t["seconds"].sum()) if len(t) else float("nan"),
        }

    def title(self) -> str:
        """One line naming sampler, model and K."""
        formula = self.config.get("generator", {}).get("formula")
        model = f" on {formula}" if formula else ""
        return f"SBC of {self.config['backend']['sampler']}{model}: K = {len(self.ok)} simulations, L = {self.n_ranks}"
