"""Fit a formula with Stan: the general programs ``glm_{centered,noncentered,marginal,collapsed}.stan``.

:func:`fit_formula` reads and summarises the data once (:func:`hierlin_stan.model.glm.design`),
resolves the priors (data-scaled defaults for what is not given), builds the data of the
chosen program (:func:`stan_data`), runs NUTS and returns the package's InferenceData shape
for general models:

* posterior: ``beta`` (term), ``sigma``, ``tau`` (group_term), ``Omega`` (group_term,
  group_term_2) for correlated terms, ``u`` (group, group_term) the group effects, and
  ``coef`` (group, group_term): each group's own coefficients, beta + u for terms that are
  also common terms (u alone otherwise), the numbers a user actually wants.
* coordinates: the term names (``Intercept``, ``floor``, ``county_type[urban]``) and the
  user's group labels.
* observed_data ``y`` and constant_data ``X``, ``Z``, ``group`` while the rows are kept.
* attrs: formula, parameterization, program, priors (and which were defaults), design
  sizes, engine, versions, settings and timings.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Mapping

import numpy as np

from ..engines import get_engine
from ..engines.controls import NutsControls
from ..engines.programs import header_hash, program_key, select_program
from ..model.glm import Design, design
from ..model.glm_priors import GLMPriors, resolve_glm_priors
from ..utils.az import az
from ..utils.checks import positive_int
from ..utils.seeds import resolve_seed
from ..utils.versions import environment_versions
from .inference_data import STAT_NAMES, _coord, clean_attrs

__all__ = ["GLM_PARAMETERIZATIONS", "fit_formula", "stan_data", "glm_priors", "glm_inference_data"]

GLM_PARAMETERIZATIONS = ("marginal", "collapsed", "centered", "noncentered")
#: A formula's parameterization when none is given.
DEFAULT_GLM_PARAMETERIZATION = "marginal"
#: Above this many stored values of u (chains x draws x J x q) a fit drops u unless asked.
MAX_KEPT_VALUES = 20_000_000


def glm_priors(d: Design, priors: Any) -> GLMPriors:
    """The priors of a design: ``priors`` over data-scaled defaults."""
    return resolve_glm_priors(priors, d.term_names, d.group_term_names, d.data_summary())


def stan_data(d: Design, priors: GLMPriors, parameterization: str, write_u: bool = True) -> dict[str, Any]:
    """Data of program ``glm_<parameterization>`` for design ``d``."""
    j, p, q = d.stats.shape
    data: dict[str, Any] = {"N": d.N, "p": p, "q": q, "J": j, "correlated": int(d.correlated),
                            **priors.to_stan_data()}
    if parameterization in ("marginal", "collapsed"):
        st = d.stats
        data.update({
            "M": st.blocks.m, "e_star": st.e_star, "F": st.blocks.f,
            "C2": st.residual.c2, "beta_star": st.residual.beta_star, "rss_min": float(st.residual.rss_min),
            "write_u": int(write_u),
        })
    elif parameterization in ("centered", "noncentered"):
        rows = d.row_data()
        data.update({"y": rows.y, "X": rows.x, "Z": rows.z, "g": rows.codes + 1})
    else:
        raise ValueError(f"parameterization={parameterization!r} is unknown; use one of {list(GLM_PARAMETERIZATIONS)}")
    return data


def fit_formula(
    data: Any,
    formula: str,
    parameterization: str = "marginal",
    engine: str = "auto",
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int | None = None,
    priors: Any = None,
    thin: int = 1,
    keep_u: bool | None = None,
    dropna: bool = False,
    show_progress: bool = True,
    adapt_delta: float | None = None,
    max_treedepth: int | None = None,
    metric: str | None = None,
    step_size: float | None = None,
    inits: Any = None,
    scheduler: Any = None,
    log_likelihood: Any = None,
    fused: bool | None = None,
) -> "az.InferenceData":
    """Fit ``formula`` to ``data`` with Stan's NUTS; see :func:`hierlin_stan.fit`.

    ``log_likelihood`` chooses the ``log_likelihood`` group written after sampling
    (:func:`hierlin_stan.samplers.log_likelihood.add_log_likelihood`): by default ``y``
    (per observation) and ``y_group`` (per group) while each is small. ``fused`` chooses
    the program variant of the marginal and collapsed parameterizations
    (:func:`hierlin_stan.engines.programs.select_program`): None runs the fused C++ twin on
    CmdStan, the pure Stan program on PyStan.
    """
    from .log_likelihood import add_log_likelihood, log_likelihood_choice

    log_likelihood_choice(log_likelihood)  # a bad value fails before sampling
    if parameterization not in GLM_PARAMETERIZATIONS:
        raise ValueError(f"parameterization={parameterization!r} is unknown for a formula; use one of "
                         f"{list(GLM_PARAMETERIZATIONS)}")
    chains, draws, warmup, thin = (positive_int(v, n) for v, n in
                                   ((chains, "chains"), (draws, "draws"), (warmup, "warmup"), (thin, "thin")))
    seed = resolve_seed(seed)
    controls = NutsControls.make(adapt_delta, max_treedepth, metric, step_size, inits, chains=chains)
    d = design(data, formula, dropna=dropna, scheduler=scheduler)
    if parameterization in ("centered", "noncentered") and d.rows is None and d.frame is None:
        raise ValueError(f"parameterization={parameterization!r} needs the rows in this process, and the sums of "
                         f"{d.source} were computed elsewhere (Dask); use 'marginal' or 'collapsed', which need only "
                         "the per-group sums")
    prior = glm_priors(d, priors)
    check_glm_inits(controls, parameterization, d)
    kept = chains * ((draws + thin - 1) // thin) * d.J * d.q
    if keep_u is None:
        keep_u = kept <= MAX_KEPT_VALUES
        if not keep_u:
            warnings.warn(f"not keeping the group effects u ({kept:.2g} numbers); pass keep_u=True to keep them",
                          stacklevel=3)
    if show_progress and any(s == "default" for s in prior.sources.values()):
        print("hierlin_stan: priors (defaults are data-scaled):\n  " + prior.describe(d.correlated).replace("\n", "\n  "),
              file=sys.stderr)
    eng = get_engine(engine, verbose=show_progress)
    program, variant = select_program(f"glm_{parameterization}", eng.name, fused)
    compile_seconds = eng.compile(program)
    sdata = stan_data(d, prior, parameterization, write_u=keep_u)
    raw = eng.sample(program, sdata, chains=chains, draws=draws, warmup=warmup, seed=seed, thin=thin,
                     show_progress=show_progress, controls=controls)
    raw.info["compile_seconds"] = compile_seconds
    attrs = {
        "sampler": "nuts",
        "parameterization": parameterization,
        "program": program,
        "program_variant": variant,
        "program_hash": program_key(program),
        "fused_header_hash": header_hash() if variant == "fused" else None,
        "seed": seed,
        "chains": chains,
        "draws": draws,
        "warmup": warmup,
        "thin": thin,
        "keep_u": int(keep_u),
        **controls.describe(),
        **environment_versions(),
    }
    idata = glm_inference_data(raw.variables, raw.sample_stats, d, prior, {**raw.info, **attrs})
    add_log_likelihood(idata, d, log_likelihood, stacklevel=3)
    return idata


def glm_parameters(parameterization: str, d: Design) -> dict[str, tuple[int, ...]]:
    """The sampled parameters of program ``glm_<parameterization>`` and their shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    if parameterization != "collapsed":
        shapes["beta"] = (d.p,)
    if d.q:
        shapes["tau"] = (d.q,)
    shapes["sigma"] = ()
    if d.correlated and d.q > 1:
        shapes["L_Omega"] = (d.q, d.q)
    if parameterization == "centered":
        shapes["u"] = (d.J, d.q)
    elif parameterization == "noncentered":
        shapes["z"] = (d.J, d.q)
    return shapes


def check_glm_inits(controls: NutsControls, parameterization: str, d: Design) -> None:
    """Dict inits name parameters of the program, with the right shapes and positive scales.

    Raises
    ------
    ValueError
        Naming the bad entry and the parameters the program has.
    """
    if not isinstance(controls.inits, (dict, tuple)):
        return
    shapes = glm_parameters(parameterization, d)
    dicts = controls.inits if isinstance(controls.inits, tuple) else (controls.inits,)
    for k, values in enumerate(dicts):
        where = f"inits[{k}]" if isinstance(controls.inits, tuple) else "inits"
        for name, value in values.items():
            if name not in shapes:
                drawn = " (it is drawn exactly after sampling)" if name in ("beta", "u", "coef", "Omega") else ""
                raise ValueError(f"{where}[{name!r}]: {name!r} is not a parameter of the glm_{parameterization} "
                                 f"program{drawn}; give some of {list(shapes)}")
            if np.shape(value) != shapes[name]:
                raise ValueError(f"{where}[{name!r}] has shape {np.shape(value)}; {name} has shape {shapes[name]}")
            if name in ("tau", "sigma") and not np.all(np.asarray(value, float) > 0):
                raise ValueError(f"{where}[{name!r}]={value!r} must be positive (a standard deviation)")


def glm_inference_data(variables: Mapping[str, np.ndarray], sample_stats: Mapping[str, np.ndarray], d: Design,
                       priors: GLMPriors, attrs: Mapping[str, Any]) -> "az.InferenceData":
    """Build the general model's InferenceData from draws named as the Stan programs name them.

    Parameters
    ----------
    variables : mapping
        ``beta`` (chain, draw, p), ``sigma``, ``tau`` (chain, draw, q), ``Omega``
        (chain, draw, q, q) or empty, ``u`` (chain, draw, J, q) or empty; others ignored.
    sample_stats : mapping
        Stan sampler columns (``lp__``, ``divergent__``, ...) or already-renamed stats.
    """
    post: dict[str, np.ndarray] = {"beta": np.asarray(variables["beta"]), "sigma": np.asarray(variables["sigma"])}
    if d.q:
        post["tau"] = np.asarray(variables["tau"])
    omega = variables.get("Omega")
    if omega is not None and np.size(omega) and d.correlated and d.q > 1:
        post["Omega"] = np.asarray(omega)
    u = variables.get("u")
    if u is not None and np.size(u):
        u = np.asarray(u)
        post["u"] = u
        coef = u.copy()
        for k, name in enumerate(d.group_term_names):
            if name in d.term_names:
                coef[..., k] += post["beta"][..., d.term_names.index(name), None]
        post["coef"] = coef
    stats = {}
    for key, value in sample_stats.items():
        name = STAT_NAMES.get(key, key)
        value = np.asarray(value)
        if name == "diverging":
            value = value.astype(bool)
        elif name in ("tree_depth", "n_steps"):
            value = value.astype(np.int64)
        stats[name] = value
    coords: dict[str, Any] = {"term": d.term_names, "group_term": d.group_term_names,
                              "group_term_2": d.group_term_names, "group": _coord(d.group_labels)}
    dims = {"beta": ["term"], "tau": ["group_term"], "Omega": ["group_term", "group_term_2"],
            "u": ["group", "group_term"], "coef": ["group", "group_term"]}
    observed = constant = None
    if d.rows is not None:
        coords["obs"] = np.arange(d.N)
        observed = {"y": d.rows.y}
        constant = {"X": d.rows.x, "Z": d.rows.z, "group": _coord(d.group_labels)[d.rows.codes]}
        dims.update({"y": ["obs"], "X": ["obs", "term"], "Z": ["obs", "group_term"], "group": ["obs"]})
    info = {
        "model": "glm",
        "formula": d.formula.text,
        "formula_canonical": d.formula.canonical,
        "response": d.formula.response.name,
        "group_factor": d.spec.group_factor or "",
        "correlated": int(d.correlated),
        "N": d.N, "J": d.J, "p": d.p, "q": d.q,
        "data_source": d.source,
        "dropped_rows": d.dropped_rows,
        "summarise_seconds": d.summarise_seconds,
        **d.sums_info,
        "priors": priors.describe(d.correlated).replace("\n", "; "),
        **priors.to_attrs(d.correlated),
        "prior_defaults": ", ".join(k for k, v in priors.sources.items() if v == "default"),
        **attrs,
    }
    idata = az.from_dict(posterior=post, sample_stats=stats or None, observed_data=observed,
                         constant_data=constant, coords=coords, dims=dims, attrs=clean_attrs(info))
    if d.truth is not None:
        _add_truth(idata, d)
    return idata


def _add_truth(idata: "az.InferenceData", d: Design) -> None:
    """True values (simulated data) as constant_data ``true_beta``, ``true_tau``, ``true_sigma``, ``true_Omega``."""
    import xarray as xr

    t = d.truth or {}
    ds = xr.Dataset(
        {
            "true_beta": ("term", np.array([t["beta"][k] for k in d.term_names], float)),
            "true_sigma": ((), float(t["sigma"])),
        },
        coords={"term": d.term_names},
    )
    if d.q:
        ds["true_tau"] = xr.DataArray(np.array([t["tau"][k] for k in d.group_term_names], float),
                                      dims=["group_term"], coords={"group_term": d.group_term_names})
        if d.correlated and d.q > 1 and t.get("Omega") is not None:
            ds["true_Omega"] = xr.DataArray(np.asarray(t["Omega"], float), dims=["group_term", "group_term_2"],
                                            coords={"group_term": d.group_term_names,
                                                    "group_term_2": d.group_term_names})
    if "constant_data" in idata.groups():
        idata.constant_data = xr.merge([idata.constant_data, ds])
    else:
        idata.add_groups({"constant_data": ds})


def simulate_formula_stan(
    formula: str,
    n_datasets: int = 1,
    data: Any = None,
    truth: Mapping[str, Any] | None = None,
    n: int | None = None,
    groups: Any = None,
    x_low: float = 0.0,
    x_high: float = 10.0,
    from_prior: bool = False,
    priors: Mapping[str, Any] | None = None,
    seed: int | None = None,
    engine: str = "auto",
    show_progress: bool = False,
) -> list:
    """The Stan twin of :func:`hierlin_stan.model.glm_simulate.simulate_formula` (``glm_simulate.stan``).

    The design (predictor rows) is built once, as the numpy simulator builds it (same
    ``seed``: same predictors); each dataset then draws u and y in Stan (fixed_param).
    With ``from_prior`` beta, tau, sigma and Omega are drawn from ``priors`` (every one of
    beta, tau, sigma, and Omega for correlated terms, must be given: data-scaled defaults
    need data).

    Returns
    -------
    list of pandas.DataFrame
        ``n_datasets`` frames, each with ``attrs["hierlin_truth"]``.
    """
    from ..model.design import build_spec
    from ..model.formula import parse_formula
    from ..model.glm_simulate import inverse_response, resolve_truth, simulation_frame

    n_datasets = positive_int(n_datasets, "n_datasets")
    seed = resolve_seed(seed)
    form = parse_formula(formula)
    frame = simulation_frame(form, data, n, groups, x_low, x_high, np.random.default_rng(seed))
    spec = build_spec(form, frame)
    _, x, z, codes = spec.matrices(frame)
    t = resolve_truth(truth, spec)
    if from_prior:
        needed = ["beta", "sigma"] + (["tau"] if spec.q else []) + (["Omega"] if spec.correlated and spec.q > 1 else [])
        missing = [k for k in needed if not priors or not any(str(key).split("[")[0] == k for key in priors)]
        if missing:
            raise ValueError(f"from_prior=True needs priors for {missing} (e.g. priors={{'beta': 'normal(0, 2)', "
                             "'tau': 'halfnormal(1)', 'sigma': 'halfnormal(1)', 'Omega': 'lkj(2)'}}); "
                             "the data-scaled defaults need data")
    summary = {"n": len(frame), "y_mean": 0.0, "y_sd": 1.0, "x_mean": np.zeros(spec.p), "x_sd": np.ones(spec.p),
               "z_sd": np.ones(spec.q)}
    prior = resolve_glm_priors(priors, spec.term_names, spec.group_term_names, summary)
    omega = np.asarray(t["Omega"], float) if spec.q else np.zeros((0, 0))
    try:
        low = np.linalg.cholesky(omega) if spec.q else np.zeros((0, 0))
    except np.linalg.LinAlgError:
        raise ValueError("truth['Omega'] is singular; give correlations strictly between -1 and 1") from None
    sdata = {
        "N": len(frame), "p": spec.p, "q": spec.q, "J": spec.n_groups, "correlated": int(spec.correlated),
        "X": x, "Z": z, "g": codes + 1, **prior.to_stan_data(),
        "fixed": int(not from_prior),
        "beta_fixed": np.array([t["beta"][k] for k in spec.term_names], float),
        "tau_fixed": np.array([t["tau"][k] for k in spec.group_term_names], float),
        "sigma_fixed": float(t["sigma"]),
        "L_Omega_fixed": low,
    }
    eng = get_engine(engine, verbose=show_progress)
    raw = eng.fixed_param("glm_simulate", sdata, chains=1, draws=n_datasets, seed=seed, show_progress=show_progress)
    v = raw.variables
    out = []
    for k in range(n_datasets):
        df = frame.copy()
        df[form.response.column] = inverse_response(form, np.asarray(v["y"][0, k], float))
        beta = np.asarray(v["beta"][0, k], float)
        tau = np.asarray(v["tau"][0, k], float) if spec.q else np.zeros(0)
        om = np.asarray(v["Omega"][0, k], float) if "Omega" in v and np.size(v["Omega"][0, k]) else np.eye(spec.q)
        u = np.asarray(v["u"][0, k], float).reshape(spec.n_groups, spec.q)
        df.attrs["hierlin_truth"] = {
            "beta": dict(zip(spec.term_names, beta.tolist())),
            "tau": dict(zip(spec.group_term_names, tau.tolist())),
            "sigma": float(v["sigma"][0, k]),
            "Omega": om.tolist(),
            "u": {str(label): u[j].tolist() for j, label in enumerate(spec.group_labels)},
            "formula": formula,
        }
        out.append(df)
    return out
