"""The same model in PyMC: build it, sample it (PyMC NUTS, PyMC Metropolis, nutpie).

An optional extra (``pip install "hierlin_stan[pymc]"``) used to cross-check Stan:
:func:`build_pymc_model` writes each parameterization with the priors of the Stan
programs, term for term, so the PyMC log density (with the Jacobians of PyMC's
interval and log transforms) equals Stan's ``lp__`` at the same point;
:func:`fit_pymc` samples it and returns the package's one InferenceData shape
(:func:`hierlin_stan.io_stan.build_inference_data`), so every diagnostic, plot and
:func:`hierlin_stan.crosscheck.cross_check` works on it unchanged.

PyMC (and nutpie) are imported inside the functions: importing this module never
needs them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.dataset import TRUTH_KEYS, Dataset, rss_coefficients
from .inference_data import build_inference_data
from ..model.priors import PriorsLike, resolve_priors
from ..utils.checks import positive_int as _positive_int
from ..utils.seeds import resolve_seed
from ..utils.versions import __version__

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    import pymc as pm

__all__ = [
    "SAMPLERS",
    "SAMPLER_LABELS",
    "pymc_available",
    "nutpie_available",
    "build_pymc_model",
    "marginal_constants",
    "draw_marginal_b",
    "log_density_function",
    "fit_pymc",
]

#: Samplers :func:`fit_pymc` runs.
SAMPLERS: tuple[str, ...] = ("nuts", "metropolis", "nutpie")
#: ``idata.attrs["sampler"]`` of each.
SAMPLER_LABELS: dict[str, str] = {"nuts": "pymc-nuts", "metropolis": "pymc-metropolis", "nutpie": "nutpie"}
#: The hyperparameters every parameterization has.
HYPER: tuple[str, ...] = TRUTH_KEYS
#: Sample statistics kept, under the package's names: PyMC name -> package name.
_PYMC_STATS = {
    "lp": "lp",
    "diverging": "diverging",
    "energy": "energy",
    "tree_depth": "tree_depth",
    "step_size": "step_size",
    "n_steps": "n_steps",
    "acceptance_rate": "acceptance_rate",
}
_NUTPIE_STATS = {
    "logp": "lp",
    "diverging": "diverging",
    "energy": "energy",
    "depth": "tree_depth",
    "step_size": "step_size",
    "n_steps": "n_steps",
    "mean_tree_accept": "acceptance_rate",
}
_INSTALL_PYMC = 'pip install "hierlin_stan[pymc]"'
#: The models written in PyMC (no collapsed one: that is Stan's).
PYMC_PARAMETERIZATIONS = ("centered", "noncentered", "marginal")


def _check_pymc_parameterization(parameterization: str) -> None:
    if parameterization == "collapsed":
        raise ValueError("parameterization='collapsed' has no PyMC model; use Stan (hs.fit(data), its default) "
                         f"or one of {list(PYMC_PARAMETERIZATIONS)}")
    if parameterization not in PYMC_PARAMETERIZATIONS:
        raise ValueError(f"parameterization={parameterization!r} is unknown; use one of {list(PYMC_PARAMETERIZATIONS)}")


# --------------------------------------------------------------------------- imports

def _import_pymc() -> Any:
    """Import PyMC or raise an ImportError that says how to install it."""
    try:
        import pymc
    except ImportError as err:
        raise ImportError(
            f"the PyMC cross-check needs PyMC, which is not importable here ({err}); "
            f"install the extra: {_INSTALL_PYMC}"
        ) from err
    return pymc


def _import_nutpie() -> Any:
    """Import nutpie or raise an ImportError that says how to install it."""
    try:
        import nutpie
    except ImportError as err:
        raise ImportError(
            f"sampler='nutpie' needs nutpie, which is not importable here ({err}); "
            "pip install nutpie (or pick sampler='nuts', PyMC's own NUTS)"
        ) from err
    return nutpie


def pymc_available() -> tuple[bool, str]:
    """Whether PyMC can be imported here, and why not.

    Returns
    -------
    (bool, str)
        ``(True, "pymc <version>")`` or ``(False, reason with the install line)``.
    """
    try:
        pm = _import_pymc()
    except ImportError as err:
        return False, str(err)
    return True, f"pymc {pm.__version__}"


def nutpie_available() -> tuple[bool, str]:
    """Whether nutpie (and PyMC, which it samples) can be imported here, and why not."""
    ok, why = pymc_available()
    if not ok:
        return ok, why
    try:
        nutpie = _import_nutpie()
    except ImportError as err:
        return False, str(err)
    return True, f"nutpie {nutpie.__version__}"


# ----------------------------------------------------------------------------- model


def marginal_constants(dataset: Dataset) -> dict[str, Any]:
    """Data-only quantities of the marginal density (``marginal.stan``'s transformed data).

    Parameters
    ----------
    dataset : Dataset
        The observations.

    Returns
    -------
    dict
        ``N``, ``J``, the per-group sums of :meth:`Dataset.group_sums`, ``sxx_safe``
        (``sum_xx`` with 0 replaced by 1) and ``c0, c1, c2``: the coefficients of
        ``RSSperp(a) = c0 + c1 a + c2 a^2`` (:func:`hierlin_stan.data.rss_coefficients`).
    """
    sums = dataset.group_sums()
    n_group = sums["n_group"]
    sxx = sums["sum_xx"]
    c0, c1, c2 = rss_coefficients(sums)
    return {
        "N": int(n_group.sum()),
        "J": int(dataset.n_groups),
        **sums,
        "sxx_safe": np.where(sxx > 0, sxx, 1.0),
        "c0": c0,
        "c1": c1,
        "c2": c2,
    }


def build_pymc_model(
    dataset: Dataset, parameterization: str = "centered", priors: PriorsLike = None
) -> "pm.Model":
    """Write the hierarchical linear regression as a PyMC model.

    The same model, priors and normalisation as the Stan program of the same name:

    * ``a ~ Normal(a_loc, a_scale)``, ``mu_b ~ Normal(mu_b_loc, mu_b_scale)``;
      ``sigma_b`` and ``eps`` ``Uniform(0, scale)`` (PyMC's interval transform: the
      same logit transform and Jacobian as Stan's ``<lower=0, upper=scale>``) or
      ``HalfNormal(scale)`` (log transform, as Stan's ``<lower=0>``).
    * ``centered``: ``b ~ Normal(mu_b, sigma_b)`` (dims ``group``), ``y ~ Normal(a + b[g] x, eps)``.
    * ``noncentered``: ``z ~ Normal(0, 1)``, ``b = mu_b + sigma_b z`` (Deterministic).
    * ``marginal``: b integrated out; one ``pm.Potential`` ``y_marginal`` holds the
      stable O(J) formula of ``marginal.stan`` (matrix determinant lemma and
      Sherman-Morrison on the per-group sums). b is not a model variable: draw it
      afterwards with :func:`draw_marginal_b` (:func:`fit_pymc` does).

    Parameters
    ----------
    dataset : Dataset
        The observations.
    parameterization : {"centered", "noncentered", "marginal"}
        Which parameterization.
    priors : None, str, mapping or Priors
        As for :func:`hierlin_stan.fit`; default the notebook's priors.

    Returns
    -------
    pymc.Model
        With coords ``group`` = 1..J (and ``obs`` = 0..N-1 unless marginal).

    Raises
    ------
    ValueError
        For an unknown parameterization or a bad dataset/priors.
    ImportError
        When PyMC is not installed (the message gives the install line).
    """
    _check_pymc_parameterization(parameterization)
    if not isinstance(dataset, Dataset):
        raise ValueError(
            "dataset must be a hierlin_stan.Dataset (from simulate() or Dataset.from_csv()); "
            f"got {type(dataset).__name__}"
        )
    prior = resolve_priors(priors)
    pm = _import_pymc()
    import pytensor.tensor as pt

    coords: dict[str, Any] = {"group": np.arange(1, dataset.n_groups + 1)}
    if parameterization != "marginal":
        coords["obs"] = np.arange(dataset.n)
    with pm.Model(coords=coords) as model:
        a = pm.Normal("a", mu=_f64(prior.a_loc), sigma=_f64(prior.a_scale))
        mu_b = pm.Normal("mu_b", mu=_f64(prior.mu_b_loc), sigma=_f64(prior.mu_b_scale))
        sigma_b = _scale_prior(pm, "sigma_b", prior.sigma_b_family, prior.sigma_b_scale)
        eps = _scale_prior(pm, "eps", prior.eps_family, prior.eps_scale)
        if parameterization == "marginal":
            k = marginal_constants(dataset)
            eps2 = pt.square(eps)
            sb2 = pt.square(sigma_b)
            d = eps2 + sb2 * k["sum_xx"]
            sxr = k["sum_xy"] - a * k["sum_x"] - mu_b * k["sum_xx"]
            # RSSperp >= 0 in exact arithmetic; clip round-off, as marginal.stan does.
            rss = pt.maximum(_f64(k["c0"]) + (_f64(k["c1"]) + _f64(k["c2"]) * a) * a, _f64(0.0))
            n, j = k["N"], k["J"]
            pm.Potential(
                "y_marginal",
                _f64(-0.5)
                * (
                    _f64(n * math.log(2.0 * math.pi))
                    + _f64(n - j) * pt.log(eps2)
                    + pt.sum(pt.log(d))
                    + rss / eps2
                    + pt.sum(pt.square(sxr) / (k["sxx_safe"] * d))
                ),
            )
        else:
            if parameterization == "centered":
                b = pm.Normal("b", mu=mu_b, sigma=sigma_b, dims="group")
            else:
                z = pm.Normal("z", mu=_f64(0.0), sigma=_f64(1.0), dims="group")
                b = pm.Deterministic("b", mu_b + sigma_b * z, dims="group")
            pm.Normal("y", mu=a + b[dataset.group - 1] * dataset.x, sigma=eps, observed=dataset.y, dims="obs")
    return model


def _scale_prior(pm: Any, name: str, family: str, scale: float) -> Any:
    """``Uniform(0, scale)`` or ``HalfNormal(scale)``, as ``priors_functions.stan``."""
    if family == "uniform":
        return pm.Uniform(name, lower=_f64(0.0), upper=_f64(scale))
    return pm.HalfNormal(name, sigma=_f64(scale))


def _f64(value: float) -> np.ndarray:
    """A float64 constant.

    PyTensor stores a Python float that float32 represents exactly (1e4, 100.0,
    2.5, ...) as float32 and then takes e.g. its log in float32: the prior terms
    would be off by ~1e-7. numpy float64 keeps float64 throughout.
    """
    return np.asarray(value, dtype=np.float64)


def draw_marginal_b(
    dataset: Dataset,
    a: np.ndarray,
    mu_b: np.ndarray,
    sigma_b: np.ndarray,
    eps: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the slopes exactly from their conditional posterior given the hyperparameters.

    The formulas of ``marginal.stan``'s generated quantities, stable as eps -> 0:
    with ``d = eps^2 + sigma_b^2 Sxx_j``, ``b_j ~ N((mu_b eps^2 + sigma_b^2 (Sxy_j - a Sx_j)) / d,
    sqrt(sigma_b^2 eps^2 / d))``.

    Parameters
    ----------
    dataset : Dataset
        The observations (for the per-group sums).
    a, mu_b, sigma_b, eps : numpy.ndarray
        Draws of equal shape, e.g. (chain, draw).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        Shape ``a.shape + (J,)``.
    """
    sums = dataset.group_sums()
    a, mu_b, sigma_b, eps = (np.asarray(v, dtype=float)[..., None] for v in (a, mu_b, sigma_b, eps))
    eps2 = eps * eps
    sb2 = sigma_b * sigma_b
    d = eps2 + sb2 * sums["sum_xx"]
    mean = (mu_b * eps2 + sb2 * (sums["sum_xy"] - a * sums["sum_x"])) / d
    sd = np.sqrt(sb2 * eps2 / d)
    return mean + sd * rng.standard_normal(mean.shape)


def log_density_function(model: "pm.Model", jacobian: bool = True) -> Callable[[Mapping[str, Any]], np.ndarray]:
    """Return a function: constrained parameter values -> the model's log density.

    PyMC's log density lives on its value variables, which are the transformed
    (unconstrained) ones (``sigma_b_interval__``, ``eps_log__``, ...). The returned
    function takes constrained values (``a``, ``mu_b``, ``sigma_b``, ``eps``, and
    ``b`` or ``z``), applies each variable's forward transform inside the graph and
    evaluates ``model.logp(jacobian=jacobian)``: with the Jacobian that is Stan's
    ``lp__`` at the same point.

    Parameters
    ----------
    model : pymc.Model
        From :func:`build_pymc_model`.
    jacobian : bool
        Include the log Jacobian of the transforms.

    Returns
    -------
    callable
        ``f(values)`` with ``values`` a mapping name -> array; every array may carry
        the same leading batch shape (e.g. (chain, draw)), and the result has that
        shape (a 0-d array for a single point).
    """
    _import_pymc()
    import pytensor
    from pytensor.graph.replace import clone_replace, vectorize_graph

    logp = model.logp(jacobian=jacobian)
    inputs: list[Any] = []
    replace: dict[Any, Any] = {}
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms.get(rv)
        constrained = value.type(name=rv.name)
        inputs.append(constrained)
        replace[value] = constrained if transform is None else transform.forward(constrained, *rv.owner.inputs)
    scalar_logp = clone_replace(logp, replace=replace)
    names = [v.name for v in inputs]
    core_ndim = {v.name: v.type.ndim for v in inputs}
    compiled: dict[int, Any] = {}

    def evaluate(values: Mapping[str, Any]) -> np.ndarray:
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"values lack {missing}; give all of {names} (constrained)")
        arrays = {n: np.asarray(values[n], dtype=float) for n in names}
        batch_ndim = arrays[names[0]].ndim - core_ndim[names[0]]
        if batch_ndim < 0 or any(arr.ndim - core_ndim[n] != batch_ndim for n, arr in arrays.items()):
            raise ValueError("all values must share the same leading (batch) shape")
        if batch_ndim not in compiled:
            if batch_ndim == 0:
                compiled[0] = pytensor.function(inputs, scalar_logp, on_unused_input="ignore")
            else:
                batched = [pytensor.tensor.tensor(v.name, shape=(None,) * (batch_ndim + v.type.ndim)) for v in inputs]
                out = vectorize_graph(scalar_logp, replace=dict(zip(inputs, batched)))
                compiled[batch_ndim] = pytensor.function(batched, out, on_unused_input="ignore")
        return np.asarray(compiled[batch_ndim](*(arrays[n] for n in names)), dtype=float)

    return evaluate


# ------------------------------------------------------------------------------- fit


def fit_pymc(
    dataset: Dataset,
    parameterization: str = "centered",
    sampler: str = "nuts",
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int | None = None,
    priors: PriorsLike = None,
    show_progress: bool = True,
) -> "az.InferenceData":
    """Sample the PyMC version of the model; return the package's InferenceData shape.

    Parameters
    ----------
    dataset : Dataset
        The observations.
    parameterization : {"centered", "noncentered", "marginal"}
        As the Stan programs. ``marginal`` samples a, mu_b, sigma_b, eps and then
        draws b exactly (numpy, :func:`draw_marginal_b`) so the output has b too.
    sampler : {"nuts", "metropolis", "nutpie"}
        PyMC's NUTS (``init="jitter+adapt_diag"``, its default), PyMC's Metropolis
        (its defaults: one coordinate at a time, tuned scaling), or nutpie's NUTS
        (Rust, numba-compiled log density; needs ``pip install nutpie``).
    chains, draws, warmup : int
        Chains, kept draws and tuning iterations per chain. ``cores = min(chains, CPU count)``.
    seed : int, optional
        Seed of everything random (PyMC, nutpie and the b draws); None draws one and
        records it.
    priors : None, str, mapping or Priors
        Default: the notebook's priors.
    show_progress : bool
        PyMC's / nutpie's progress bar.

    Returns
    -------
    arviz.InferenceData
        posterior ``a, mu_b, sigma_b, eps`` (chain, draw), ``b`` (chain, draw,
        group) (and ``z`` for non-centered); sample_stats under the package's names
        (NUTS: ``lp, diverging, energy, tree_depth, step_size, n_steps,
        acceptance_rate``; Metropolis: ``lp`` -- the model's log density with
        Jacobian evaluated at the draws, PyMC does not record it -- and
        ``acceptance_rate``, the fraction of coordinate proposals accepted in the
        iteration); observed/constant data; attrs ``sampler`` (``pymc-nuts``,
        ``pymc-metropolis``, ``nutpie``), ``engine`` (``pymc`` or ``nutpie``),
        ``parameterization``, ``seed``, ``chains``, ``draws``, ``warmup``, ``cores``,
        versions, ``priors``, ``compile_seconds`` (building the sampler's compiled
        log density and gradient, before any draw), ``warmup_seconds`` and
        ``sampling_seconds`` (slowest chain, as Stan reports; see Notes),
        ``wall_seconds`` (everything) and the true values.

    Notes
    -----
    PyMC NUTS / Metropolis: each chain's warm-up and sampling times are wall-clock
    times between the draws it sends (a ``pm.sample`` callback), so they exclude
    compilation and process start-up. nutpie reports no per-phase time: its run
    time (warm-up + sampling, excluding ``compile_seconds``) is split in proportion
    to the leapfrog steps of each phase (``attrs["timing"]`` says so).

    Raises
    ------
    ValueError
        Unknown parameterization or sampler (listing the choices), bad settings.
    ImportError
        PyMC (or, for ``sampler="nutpie"``, nutpie) is not installed.
    """

    _check_pymc_parameterization(parameterization)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is unknown; use one of {list(SAMPLERS)}")
    if not isinstance(dataset, Dataset):
        raise ValueError(
            "dataset must be a hierlin_stan.Dataset (from simulate() or Dataset.from_csv()); "
            f"got {type(dataset).__name__}"
        )
    chains, draws, warmup = (_positive_int(v, n) for v, n in ((chains, "chains"), (draws, "draws"), (warmup, "warmup")))
    seed = resolve_seed(seed)
    prior = resolve_priors(priors)
    pm = _import_pymc()
    if sampler == "nutpie":
        _import_nutpie()
    wall = time.perf_counter()
    model = build_pymc_model(dataset, parameterization, prior)
    cores = min(chains, os.cpu_count() or 1)
    if sampler == "nutpie":
        posterior, stats, timing = _sample_nutpie(model, chains, draws, warmup, seed, cores, show_progress)
    else:
        posterior, stats, timing = _sample_pymc(pm, model, sampler, chains, draws, warmup, seed, cores, show_progress)
    if "lp" not in stats:
        # PyMC's Metropolis does not record the log density: evaluate it at the draws.
        lp_of = log_density_function(model, jacobian=True)
        stats["lp"] = lp_of({k: posterior[k] for k in _free_names(parameterization)})
    if parameterization == "marginal":
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x62]))
        posterior["b"] = draw_marginal_b(dataset, *(posterior[k] for k in HYPER), rng=rng)
    timing["wall_seconds"] = time.perf_counter() - wall
    attrs = {
        **run_attrs(pm, sampler, parameterization, seed, chains, draws, warmup, cores, timing),
        "priors": prior.describe(),
        **{f"prior_{k}": v for k, v in prior.to_stan_data().items()},
    }
    order = [*HYPER, "b", "z"]
    posterior = {k: posterior[k] for k in order if k in posterior}
    return build_inference_data(posterior, stats, dataset, attrs)


def run_attrs(pm: Any, sampler: str, parameterization: str, seed: int, chains: int, draws: int, warmup: int,
              cores: int, timing: dict[str, Any]) -> dict[str, Any]:
    """The attrs every PyMC / nutpie fit records (notebook model or formula): sampler, settings,
    versions and timings."""
    return {
        "sampler": SAMPLER_LABELS[sampler],
        "engine": "nutpie" if sampler == "nutpie" else "pymc",
        "parameterization": parameterization,
        "seed": seed,
        "chains": chains,
        "draws": draws,
        "warmup": warmup,
        "cores": cores,
        "pymc": pm.__version__,
        "pytensor": _version_of("pytensor"),
        "nutpie": _version_of("nutpie") if sampler == "nutpie" else None,
        **timing,
        "hierlin_stan_version": __version__,
    }


def _free_names(parameterization: str) -> list[str]:
    extra = {"centered": ["b"], "noncentered": ["z"], "marginal": []}[parameterization]
    return [*HYPER, *extra]


def _sample_pymc(
    pm: Any,
    model: "pm.Model",
    sampler: str,
    chains: int,
    draws: int,
    warmup: int,
    seed: int,
    cores: int,
    show_progress: bool,
    names: Sequence[str] = (*HYPER, "b", "z"),
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """PyMC NUTS or Metropolis; compile first (timed), then sample (timed per chain).

    ``names``: the posterior variables returned (chain, draw, ...), when present.
    """
    init_seeds = [int(s) for s in np.random.default_rng(np.random.SeedSequence([seed, 0x69])).integers(2**30, size=chains)]
    start = time.perf_counter()
    with model:
        if sampler == "nuts":
            # What pm.sample(init="jitter+adapt_diag") does, done here so that compiling
            # the log density and its gradient is timed apart from sampling.
            initvals, step = pm.init_nuts(
                init="jitter+adapt_diag", chains=chains, random_seed=init_seeds,
                progressbar=False, quiet=True, tune=warmup,
            )
        else:
            initvals, step = jittered_starts(model, init_seeds), pm.Metropolis()
    compile_seconds = time.perf_counter() - start
    clock = _ChainClock(chains)
    with model:
        trace = pm.sample(
            draws=draws,
            tune=warmup,
            step=step,
            initvals=initvals,
            chains=chains,
            cores=cores,
            random_seed=seed,
            progressbar=show_progress,
            callback=clock,
            compute_convergence_checks=False,
            return_inferencedata=True,
            quiet=not show_progress,
        )
    posterior = {k: np.asarray(trace.posterior[k].transpose("chain", "draw", ...).values, dtype=float)
                 for k in names if k in trace.posterior}
    stats: dict[str, np.ndarray] = {}
    ss = trace.sample_stats
    if sampler == "nuts":
        for src, dst in _PYMC_STATS.items():
            if src in ss:
                stats[dst] = np.asarray(ss[src].values)
    elif "accepted" in ss:
        stats["acceptance_rate"] = np.asarray(ss["accepted"].values, dtype=float)
    stats = _typed_stats(stats)
    warm, samp = clock.phase_seconds()
    timing = {
        "compile_seconds": compile_seconds,
        "warmup_seconds": max(warm),
        "sampling_seconds": max(samp),
        "sampling_chain_seconds": float(sum(samp)),
        "chain_seconds_total": float(sum(warm) + sum(samp)),
        "timing": "per-chain wall time between draws (pm.sample callback); slowest chain, and summed over chains",
    }
    return posterior, stats, timing


def _sample_nutpie(
    model: "pm.Model", chains: int, draws: int, warmup: int, seed: int, cores: int, show_progress: bool,
    names: Sequence[str] = (*HYPER, "b", "z"),
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """nutpie's NUTS on the PyMC model: compile (timed), then sample (timed); ``names`` as for :func:`_sample_pymc`."""
    nutpie = _import_nutpie()
    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    trace = nutpie.sample(
        compiled, draws=draws, tune=warmup, chains=chains, cores=cores, seed=seed,
        progress_bar=show_progress, save_warmup=True,
    )
    run_seconds = time.perf_counter() - start
    posterior = {k: np.asarray(trace.posterior[k].transpose("chain", "draw", ...).values, dtype=float)
                 for k in names if k in trace.posterior}
    ss = trace.sample_stats
    stats = _typed_stats({dst: np.asarray(ss[src].values) for src, dst in _NUTPIE_STATS.items() if src in ss})
    steps_sampling = float(np.sum(ss["n_steps"].values)) if "n_steps" in ss else float("nan")
    steps_warmup = (float(np.sum(trace.warmup_sample_stats["n_steps"].values))
                    if "warmup_sample_stats" in trace.groups() and "n_steps" in trace.warmup_sample_stats
                    else float("nan"))
    share = steps_sampling / (steps_sampling + steps_warmup)
    if not math.isfinite(share):
        share = draws / (draws + warmup)
    timing = {
        "compile_seconds": compile_seconds,
        "warmup_seconds": run_seconds * (1.0 - share),
        "sampling_seconds": run_seconds * share,
        # chains run as threads on min(chains, cores) cores: busy core-seconds approximate chain-seconds
        "sampling_chain_seconds": run_seconds * share * min(chains, cores),
        "run_seconds": run_seconds,
        "timing": ("nutpie run time (warm-up + sampling, all chains) split by leapfrog steps per phase; "
                   "chain-seconds = sampling time x min(chains, cores)"),
    }
    return posterior, stats, timing


def jittered_starts(model: "pm.Model", seeds: list[int]) -> list[dict[str, np.ndarray]]:
    """One starting point per chain (one per seed), jittered by U(-1, 1) on the unconstrained scale.

    ``pm.sample`` jitters starting points only for NUTS: without this every
    Metropolis chain would start at the same point, and R-hat could not tell
    chains that have not converged apart.
    """
    from pymc.initial_point import make_initial_point_fns_per_chain

    fns = make_initial_point_fns_per_chain(model=model, overrides=None, jitter_rvs=set(model.free_RVs),
                                           chains=len(seeds))
    return [fn(seed) for fn, seed in zip(fns, seeds)]


def _typed_stats(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, value in stats.items():
        if name == "diverging":
            value = value.astype(bool)
        elif name in ("tree_depth", "n_steps"):
            value = value.astype(np.int64)
        else:
            value = value.astype(float)
        out[name] = value
    return out


class _ChainClock:
    """``pm.sample`` callback: when each chain's draws arrive, to time warm-up and sampling."""

    def __init__(self, chains: int) -> None:
        self.first = [math.nan] * chains       # first draw of the chain
        self.last_tune = [math.nan] * chains   # last warm-up draw
        self.last = [math.nan] * chains        # last draw

    def __call__(self, trace: Any, draw: Any) -> None:
        now = time.perf_counter()
        c = draw.chain
        if math.isnan(self.first[c]):
            self.first[c] = now
        if draw.tuning:
            self.last_tune[c] = now
        self.last[c] = now

    def phase_seconds(self) -> tuple[list[float], list[float]]:
        warm, samp = [], []
        for first, tune_end, last in zip(self.first, self.last_tune, self.last):
            if math.isnan(tune_end):
                tune_end = first
            warm.append(max(tune_end - first, 0.0))
            samp.append(max(last - tune_end, 0.0))
        return warm, samp


def _version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
