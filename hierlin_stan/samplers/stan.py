"""Fit the model with Stan's NUTS, and simulate from it with Stan's fixed_param."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from ..utils.az import az
from ..model.collapse import draw_b, scale_to_unconstrained
from ..model.dataset import Dataset, _group_sizes
from ..engines import get_engine
from ..engines.controls import InitsLike, NutsControls
from .inference_data import to_inference_data
from ..model.priors import Priors, PriorsLike, resolve_priors
from ..engines.programs import check_parameterization, header_hash, program_key, select_program
from ..utils.checks import positive_int as _positive_int
from ..utils.seeds import resolve_seed
from ..utils.versions import environment_versions

# Above this many stored values of b (chains x draws x J) the marginal and collapsed fits
# drop b unless asked to keep it (2e7 doubles = 160 MB); asked, they draw b in numpy from
# the hyperparameter draws instead of having Stan write it (CmdStan writes ~9 bytes of CSV
# per value: ~2.8 s and 9 MB per draw at J = 1e6).
MAX_KEPT_VALUES = 20_000_000
#: The notebook model's parameterization when none is given (see README, "Benchmarks").
DEFAULT_PARAMETERIZATION = "collapsed"
#: Parameterizations whose slopes b are integrated out and drawn exactly afterwards.
INTEGRATED = ("marginal", "collapsed")
#: The collapsed program's sampled coordinates: unconstrained sigma_b, eps (not in the posterior).
COLLAPSED_INTERNAL = ("sigma_b_u", "eps_u")


def fit(
    dataset: Dataset,
    parameterization: str | None = None,
    engine: str = "auto",
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int | None = None,
    priors: PriorsLike = None,
    thin: int = 1,
    keep_b: bool | None = None,
    y_rep: bool = False,
    show_progress: bool = True,
    adapt_delta: float | None = None,
    max_treedepth: int | None = None,
    metric: str | None = None,
    step_size: float | None = None,
    inits: InitsLike = None,
    formula: str | None = None,
    dropna: bool = False,
    fused: bool | None = None,
    scheduler: Any = None,
    log_likelihood: Any = None,
) -> "az.InferenceData":
    """Fit a hierarchical linear regression with Stan's NUTS.

    Two kinds of model: the notebook's (a Dataset, no formula: names a, mu_b, sigma_b,
    eps, b) and any formula with one grouping factor (names beta, sigma, tau, Omega, u,
    coef; see :func:`hierlin_stan.samplers.stan_glm.fit_formula`).

    Parameters
    ----------
    dataset : Dataset, pandas.DataFrame, path or dask.dataframe.DataFrame
        A Dataset (from :func:`simulate`, :meth:`Dataset.from_csv`, ...); with
        ``formula``, also a DataFrame, a CSV/Parquet path (only the formula's
        columns are read), a Design, or a Dask DataFrame (summarised on a Dask
        cluster; see ``scheduler``).
    parameterization : {"collapsed", "marginal", "centered", "noncentered"}, optional
        ``collapsed`` (the default for the notebook's model) integrates the slopes b and the
        common coefficients (a, mu_b) out: NUTS samples sigma_b and eps only, a, mu_b and b
        are drawn exactly afterwards (no funnel, no divergences on the notebook's data);
        ``marginal`` integrates b out and samples a, mu_b, sigma_b, eps; ``centered`` and
        ``noncentered`` sample every b. Formulas: see :func:`~hierlin_stan.samplers.stan_glm.fit_formula`.
    formula : str, optional
        E.g. ``"log_radon ~ floor + (1 + floor | county)"``: lme4/brms syntax, one
        grouping factor, ``|`` correlated or ``||`` independent group terms.
    dropna : bool
        (formula) drop rows with missing values in the used columns instead of failing.
    scheduler : None, "local", str or distributed.Client
        (formula) compute the per-group sums with Dask, then fit from them here (only
        ``marginal`` and ``collapsed``): a Client, a scheduler address
        (``"tcp://host:8786"``), or ``"local"`` for a LocalCluster. With it the data may
        be Parquet files too large for memory: a file, a folder or a glob
        (``"data/*.parquet"``). A Dask DataFrame uses the current Client without it.
        See :func:`hierlin_stan.design`.
    log_likelihood : None, bool, str or list of str
        (formula) the ``log_likelihood`` group for LOO: ``y`` per observation given the
        group effects, ``y_group`` per group with them integrated out (leave-one-group-out).
        Default: both, each while it holds at most 5e6 numbers (a warning says when one is
        left out); ``True`` both at any size, ``False`` none, or the names wanted.
    engine : {"auto", "cmdstan", "pystan"}
        ``auto``: CmdStan if cmdstanpy finds it, else PyStan; the choice is
        printed and stored in ``idata.attrs["engine"]``.
    chains, draws, warmup, thin : int
        Sampler settings (draws and warmup per chain).
    seed : int, optional
        Same seed, same draws. None draws one and records it in attrs.
    priors : None, str, mapping or Priors
        Default: the notebook's priors; ``"weakly_informative"`` for the other preset.
    keep_b : bool, optional
        (marginal, collapsed) draw and keep the J slopes. Default: keep unless that means
        more than 2e7 stored numbers, in which case a warning says they were dropped.
        ``keep_b=True`` beyond that draws them in numpy from the hyperparameter draws
        (exact, as Stan would; Stan writing them costs ~9 bytes of CSV per number).
    y_rep : bool
        Draw replicated data (posterior predictive).
    show_progress : bool
        Progress bar while sampling.
    adapt_delta : float, optional
        Target acceptance of step-size adaptation, in (0, 1); default 0.8 (Stan's).
        Raise it (0.95, 0.99) when a fit has divergent transitions.
    max_treedepth : int, optional
        Largest NUTS tree depth, 1..30; default 10. Raise it when draws hit it.
    metric : {"diag", "dense"}, optional
        Adapted inverse metric; default ``"diag"``. ``"dense"`` needs the CmdStan engine.
    step_size : float, optional
        Initial step size (warm-up adapts it); default 1.
    inits : float, dict or list of dicts, optional
        Starting values: a radius r >= 0 (unconstrained values uniform on (-r, r),
        Stan's ``init=r``; default 2), a dict of constrained values such as
        ``{"a": 2.0, "sigma_b": 1.0, "eps": 0.5}`` (others drawn with radius 2), or
        a list of such dicts, one per chain. The collapsed program samples sigma_b and
        eps only (give those; they are converted to its internal coordinates), and its
        radius applies around its least-squares centre, in units of the scaling.
    fused : bool, optional
        (marginal, collapsed, on CmdStan) None: run the fused program, whose log density
        and gradient come from the package's C++ header (same posterior and draws
        distribution, ~5-30x less time per gradient); False: the pure Stan program;
        True: insist on the fused one (an error on PyStan, which cannot compile C++
        headers); formulas too.
        What ran is in ``idata.attrs["program"]`` and ``["program_variant"]``.

    Returns
    -------
    arviz.InferenceData
        posterior, sample_stats, observed/constant data; attrs with engine,
        versions, settings (the NUTS controls used, defaults included), seed,
        compile/warmup/sampling seconds, true values.

    Raises
    ------
    ValueError
        For a bad argument, naming the value and the fix.
    ChainError
        When a chain fails (e.g. cannot initialise), naming it and Stan's reason.
    """
    if formula is not None:
        from .stan_glm import DEFAULT_GLM_PARAMETERIZATION, fit_formula

        if y_rep:
            raise ValueError("y_rep=True is not available for formulas yet; draw from the posterior of u "
                             "with hs.simulate(...) instead")
        parameterization = DEFAULT_GLM_PARAMETERIZATION if parameterization is None else parameterization
        return fit_formula(dataset, formula, parameterization, engine=engine, chains=chains, draws=draws,
                           warmup=warmup, seed=seed, priors=priors, thin=thin, keep_u=keep_b, dropna=dropna,
                           show_progress=show_progress, adapt_delta=adapt_delta, max_treedepth=max_treedepth,
                           metric=metric, step_size=step_size, inits=inits, scheduler=scheduler,
                           log_likelihood=log_likelihood, fused=fused)
    if scheduler is not None:
        raise ValueError("scheduler= goes with formula= (the per-group sums of a formula are what Dask computes); "
                         "e.g. hs.fit('data/*.parquet', formula='y ~ x + (1 + x | g)', scheduler='local')")
    if log_likelihood not in (None, False):
        raise ValueError("log_likelihood is written for formula fits; give formula='y ~ 1 + x + (0 + x | g)' "
                         "(the notebook's model as a formula)")
    if not isinstance(dataset, Dataset):
        raise ValueError(
            f"dataset must be a hierlin_stan.Dataset (from simulate() or Dataset.from_csv()) for the notebook's "
            f"model; got {type(dataset).__name__}, which needs a formula: "
            "hs.fit(data, formula='y ~ x + (1 + x | g)')")
    parameterization = DEFAULT_PARAMETERIZATION if parameterization is None else parameterization
    check_parameterization(parameterization)
    chains, draws, warmup, thin = (_positive_int(v, n) for v, n in ((chains, "chains"), (draws, "draws"), (warmup, "warmup"), (thin, "thin")))
    seed = resolve_seed(seed)
    prior = resolve_priors(priors)
    controls = NutsControls.make(adapt_delta, max_treedepth, metric, step_size, inits, chains=chains)
    check_inits_for_program(controls, parameterization, dataset.n_groups, prior)
    kept = chains * ((draws + thin - 1) // thin) * dataset.n_groups
    if keep_b is None:
        keep_b = parameterization not in INTEGRATED or kept <= MAX_KEPT_VALUES
        if not keep_b:
            warnings.warn(
                f"not keeping the {dataset.n_groups} slopes b ({kept:.2g} numbers); pass keep_b=True to keep them",
                stacklevel=2,
            )
    # b written by Stan only while that is cheap; beyond, drawn in numpy (the same exact conditional)
    b_in_numpy = bool(keep_b) and parameterization in INTEGRATED and kept > MAX_KEPT_VALUES and not y_rep
    eng = get_engine(engine, verbose=show_progress)
    program, variant = select_program(parameterization, eng.name, fused)
    compile_seconds = eng.compile(program)
    data = dataset.to_stan_data(parameterization, prior.to_stan_data(), write_y_rep=y_rep,
                                write_b=bool(keep_b) and not b_in_numpy)
    run_controls = collapsed_inits(controls, prior) if parameterization == "collapsed" else controls
    raw = eng.sample(program, data, chains=chains, draws=draws, warmup=warmup, seed=seed, thin=thin,
                     show_progress=show_progress, controls=run_controls)
    raw.info["compile_seconds"] = compile_seconds
    for name in COLLAPSED_INTERNAL:
        raw.variables.pop(name, None)
    if b_in_numpy:
        raw.variables["b"] = _draw_b_numpy(dataset, raw.variables, seed)
    # every program's posterior in one order: a, mu_b, sigma_b, eps, then the rest
    first = [k for k in ("a", "mu_b", "sigma_b", "eps") if k in raw.variables]
    raw.variables = {k: raw.variables[k] for k in first + [k for k in raw.variables if k not in first]}
    attrs = {
        "sampler": "nuts",
        "parameterization": parameterization,
        "program": program,
        "program_variant": variant,
        "program_hash": program_key(program),
        "fused_header_hash": header_hash() if variant == "fused" else None,
        "b_drawn_in": ("numpy" if b_in_numpy else "stan") if keep_b and parameterization in INTEGRATED else None,
        "seed": seed,
        "chains": chains,
        "draws": draws,
        "warmup": warmup,
        "thin": thin,
        **controls.describe(),
        "priors": prior.describe(),
        **{f"prior_{k}": v for k, v in prior.to_stan_data().items()},
        "keep_b": int(keep_b),
        **environment_versions(),
    }
    return to_inference_data(raw, dataset, attrs)


def _draw_b_numpy(dataset: Dataset, variables: Mapping[str, np.ndarray], seed: int) -> np.ndarray:
    """The slopes b (chain, draw, J) drawn exactly from the hyperparameter draws, in numpy."""
    shape = variables["a"].shape
    flat = {k: np.asarray(variables[k], dtype=float).reshape(-1) for k in ("a", "mu_b", "sigma_b", "eps")}
    rng = np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(0xB,)))
    b = draw_b(dataset.group_sums(), dataset.row_constants, flat["a"], flat["mu_b"], flat["sigma_b"], flat["eps"], rng)
    return b.reshape(shape + (dataset.n_groups,))


def collapsed_inits(controls: NutsControls, prior: Priors) -> NutsControls:
    """Dict inits of the collapsed program: constrained sigma_b, eps -> its coordinates sigma_b_u, eps_u."""
    import dataclasses

    if not isinstance(controls.inits, (dict, tuple)):
        return controls

    def convert(values: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in values.items():
            out[f"{name}_u"] = scale_to_unconstrained(float(value), getattr(prior, f"{name}_family"),
                                                      getattr(prior, f"{name}_scale"))
        return out

    inits = (tuple(convert(v) for v in controls.inits) if isinstance(controls.inits, tuple)
             else convert(controls.inits))
    return dataclasses.replace(controls, inits=inits)


def check_inits_for_program(controls: NutsControls, parameterization: str, n_groups: int, prior: Priors) -> None:
    """Check dict inits against the program's parameters, their shapes and supports.

    Raises
    ------
    ValueError
        For a name that is not a parameter of the program, a vector of the wrong
        length, or a value outside the parameter's support under ``prior``.
    """
    if not isinstance(controls.inits, (dict, tuple)):
        return
    vectors = {"centered": "b", "noncentered": "z"}
    names = ["a", "mu_b", "sigma_b", "eps"] + ([vectors[parameterization]] if parameterization in vectors else [])
    drawn_names = ["b", "z", "y_rep"]
    if parameterization == "collapsed":
        names, drawn_names = ["sigma_b", "eps"], ["a", "mu_b", "b", "y_rep"]
    dicts = controls.inits if isinstance(controls.inits, tuple) else (controls.inits,)
    for k, values in enumerate(dicts):
        where = f"inits[{k}]" if isinstance(controls.inits, tuple) else "inits"
        for name, value in values.items():
            if name not in names:
                drawn = " (it is drawn exactly after sampling, not sampled)" if name in drawn_names else ""
                raise ValueError(f"{where}[{name!r}]: {name!r} is not a parameter of the {parameterization} "
                                 f"program{drawn}; give some of {names}")
            if name in ("b", "z"):
                if np.ndim(value) != 1 or len(value) != n_groups:
                    raise ValueError(f"{where}[{name!r}] must be a list of J = {n_groups} numbers, one per group")
                continue
            if np.ndim(value) != 0:
                raise ValueError(f"{where}[{name!r}]={value!r} must be one number")
            if name in ("sigma_b", "eps"):
                family, scale = getattr(prior, f"{name}_family"), getattr(prior, f"{name}_scale")
                upper = scale if family == "uniform" else float("inf")
                if not 0 < value < upper:
                    raise ValueError(f"{where}[{name!r}]={value!r} must lie in (0, {upper:g}), the support of "
                                     f"{name} under these priors, e.g. {min(1.0, upper / 2):g}")


def simulate_stan(
    n_datasets: int = 1,
    n: int | None = None,
    a: float = 2.0,
    mu_b: float = 2.0,
    sigma_b: float = 1.0,
    eps: float = 0.0,
    groups: int | Sequence[int] | None = None,
    x_low: float = 0.0,
    x_high: float = 10.0,
    from_prior: bool = False,
    priors: PriorsLike = None,
    seed: int | None = None,
    engine: str = "auto",
    show_progress: bool = False,
    formula: str | None = None,
    data: Any = None,
    truth: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Simulate datasets with the Stan simulation program (fixed_param sampler).

    With ``formula``: the general model's simulator ``glm_simulate.stan`` (see
    :func:`hierlin_stan.samplers.stan_glm.simulate_formula_stan`), returning DataFrames
    with ``attrs["hierlin_truth"]``; ``priors`` then maps parameter names to
    distributions (``{"beta": "normal(0, 2)", "tau": "halfnormal(1)", ...}``).

    The Stan twin of :func:`simulate`: same design (groups, x range), same
    generative model. With ``from_prior`` the hyperparameters of each dataset
    are drawn from ``priors`` (as SBC needs) instead of fixed at a, mu_b, sigma_b, eps.

    Returns
    -------
    list of Dataset
        ``n_datasets`` datasets with ``truth`` and ``true_b`` set.
    """
    if formula is not None:
        from .stan_glm import simulate_formula_stan

        return simulate_formula_stan(formula, n_datasets, data=data, truth=truth, n=n, groups=groups, x_low=x_low,
                                     x_high=x_high, from_prior=from_prior, priors=priors, seed=seed, engine=engine,
                                     show_progress=show_progress)
    n_datasets = _positive_int(n_datasets, "n_datasets")
    sizes = _group_sizes(n, groups)
    for name, value in (("sigma_b", sigma_b), ("eps", eps)):
        if not isinstance(value, numbers.Real) or value < 0:
            raise ValueError(f"{name}={value!r} must be a number >= 0")
    if not x_high > x_low:
        raise ValueError(f"x_high={x_high} must be greater than x_low={x_low}")
    seed = resolve_seed(seed)
    group = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    data = {
        "N": int(group.size),
        "J": len(sizes),
        "g": group,
        "x_low": float(x_low),
        "x_high": float(x_high),
        **resolve_priors(priors).to_stan_data(),
        "fixed": int(not from_prior),
        "a_fixed": float(a),
        "mu_b_fixed": float(mu_b),
        "sigma_b_fixed": float(sigma_b),
        "eps_fixed": float(eps),
    }
    eng = get_engine(engine, verbose=show_progress)
    raw = eng.fixed_param("simulate", data, chains=1, draws=n_datasets, seed=seed, show_progress=show_progress)
    v = raw.variables
    out = []
    for k in range(n_datasets):
        truth = {name: float(v[name][0, k]) for name in ("a", "mu_b", "sigma_b", "eps")}
        out.append(Dataset.from_arrays(v["x"][0, k], v["y"][0, k], group, len(sizes), truth, v["b"][0, k]))
    return out
