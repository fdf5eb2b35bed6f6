"""bambi as a row of the comparison: what a Python user would type for the formula, with our priors.

:func:`fit_bambi` builds ``bambi.Model(formula, data, priors=...)`` and runs its default
sampler (``model.fit()``: PyMC's NUTS, ``init="auto"``) with bambi's default model: the
group-specific effects non-centered (``noncentered=True``). Two departures from bambi's
defaults, both so that the posterior is ours:

* the priors are the fit's priors (:func:`hierlin_stan.samplers.stan_glm.glm_priors`),
  written as bambi priors: ``Normal(mu, sigma)`` per common term, ``Normal(0, <tau prior>)``
  per group term (``HalfNormal``, ``HalfStudentT``, ``Exponential`` or ``Uniform``), the same
  family for ``sigma``. bambi's own defaults (auto-scaled) would be another prior;
* ``center_predictors=False``: bambi otherwise centres the predictors and puts the
  intercept's prior on the centred intercept, a different prior than ours.

What bambi cannot express is recorded in ``idata.attrs["prior_differences"]`` (and shown
by the comparison report): bambi's group effects are always uncorrelated, so for
correlated terms ``(1 + x | g)`` there is no Omega (no LKJ prior; bambi fits ``||``), and
a categorical common term takes one prior for all its levels. formulae (bambi's parser)
has no ``||``: independent terms are written with ``|``, which is what they mean to bambi.

The data: the formula's columns of the table as given (a DataFrame, CSV or Parquet
path), so bambi codes categoricals and builds its design matrices itself. Given only a
:class:`~hierlin_stan.model.glm.Design`, or a formula whose bambi names do not map one to
one onto ours (a transformed response, categorical group terms, interactions with
categoricals), the design's own columns are written out instead
(``y ~ 0 + c0 + ... + (0 + z0 + ... | g)``: the same model, term for term). The output is
the general InferenceData shape, names mapped to the design's terms and group labels.
"""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..model.glm import Design, design as make_design
from ..model.glm_priors import GLMPriors, Prior
from ..model.tables import read_columns
from ..utils.checks import positive_int
from ..utils.console import quiet_loggers
from ..utils.seeds import resolve_seed
from ..utils.versions import __version__
from .pymc_backend import _PYMC_STATS, _ChainClock, _import_pymc, _typed_stats, _version_of
from .stan_glm import glm_inference_data, glm_priors

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

__all__ = ["bambi_available", "bambi_priors", "bambi_formula", "fit_bambi"]

_INSTALL = 'pip install "hierlin_stan[pymc]"'


def _import_bambi() -> Any:
    """Import bambi or raise an ImportError that says how to install it."""
    try:
        import bambi
    except ImportError as err:
        raise ImportError(f"the bambi sampler needs bambi, which is not importable here ({err}); "
                          f"install the extra: {_INSTALL}") from err
    return bambi


def bambi_available() -> tuple[bool, str]:
    """Whether bambi can be imported here, and why not."""
    try:
        bmb = _import_bambi()
    except ImportError as err:
        return False, str(err)
    return True, f"bambi {bmb.__version__}"


def _scale_prior(bmb: Any, prior: Prior) -> Any:
    """A bambi prior of a standard deviation, as the glm programs' scale families."""
    if prior.family == "halfnormal":
        return bmb.Prior("HalfNormal", sigma=prior.params[0])
    if prior.family == "halfstudent_t":
        return bmb.Prior("HalfStudentT", nu=prior.params[0], sigma=prior.params[1])
    if prior.family == "exponential":
        return bmb.Prior("Exponential", lam=prior.params[0])
    return bmb.Prior("Uniform", lower=0.0, upper=prior.params[0])


def _split(name: str) -> tuple[str, str | None]:
    """``floor[basement]`` -> ("floor", "basement"); ``x`` -> ("x", None)."""
    m = re.match(r"^(.*)\[([^\[\]]*)\]$", name)
    return (m.group(1), m.group(2)) if m else (name, None)


def bambi_priors(bmb: Any, d: Design, priors: GLMPriors, group_terms: dict[str, str],
                 common_terms: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Our priors as bambi priors, and what bambi cannot express.

    Parameters
    ----------
    bmb : module
        bambi.
    d : Design
    priors : GLMPriors
    group_terms : dict
        Our group term name -> bambi term name (``Intercept`` -> ``1|g``).
    common_terms : dict
        Our common term name -> bambi term name (``floor[1]`` -> ``floor``).

    Returns
    -------
    (dict, list of str)
        Priors by bambi term name; one sentence per difference.
    """
    out: dict[str, Any] = {}
    differences: list[str] = []
    by_term: dict[str, list[tuple[str, Prior]]] = {}
    for ours, theirs in common_terms.items():
        by_term.setdefault(theirs, []).append((ours, priors.beta[ours]))
    for theirs, items in by_term.items():
        first = items[0][1]
        if any(p != first for _, p in items[1:]):
            differences.append(f"beta: bambi takes one prior for all levels of {theirs!r}; "
                               f"{first} is used for {', '.join(n for n, _ in items)}")
        out[theirs] = bmb.Prior("Normal", mu=first.params[0], sigma=first.params[1])
    for ours, theirs in group_terms.items():
        out[theirs] = bmb.Prior("Normal", mu=0.0, sigma=_scale_prior(bmb, priors.tau[ours]))
    out["sigma"] = _scale_prior(bmb, priors.sigma)
    if d.correlated and d.q > 1:
        differences.append(f"Omega: bambi's group effects are uncorrelated (no {priors.omega} prior): it fits "
                           f"{d.formula.group.text.replace(' | ', ' || ')} where the formula asks for correlated "
                           "effects, so its posterior is another model's")
    return out, differences


def bambi_formula(d: Design) -> str:
    """The formula as bambi reads it: ``|`` for every group term (bambi has no ``||``)."""
    return d.formula.canonical.replace(" || ", " | ")


def _design_frame(d: Design) -> tuple[pd.DataFrame, str, dict[str, str], dict[str, str]]:
    """The design's own columns as a table bambi reads, its formula and the term-name maps."""
    rows = d.row_data()
    frame = pd.DataFrame({"y": rows.y})
    common, group = {}, {}
    # an intercept column is bambi's own intercept ("Intercept", "1|g"): bambi refuses a constant column
    cs = ["1" if "Intercept" in d.term_names else "0"]
    for k, name in enumerate(d.term_names):
        if name == "Intercept":
            common[name] = "Intercept"
            continue
        frame[f"c{k}"] = rows.x[:, k]
        common[name] = f"c{k}"
        cs.append(f"c{k}")
    zs = ["1" if "Intercept" in d.group_term_names else "0"]
    for k, name in enumerate(d.group_term_names):
        if name == "Intercept":
            group[name] = "1|g"
            continue
        frame[f"z{k}"] = rows.z[:, k]
        zs.append(f"z{k}")
        group[name] = f"z{k}|g"
    frame["g"] = pd.Categorical([str(v) for v in np.asarray(d.group_labels)[rows.codes]],
                                categories=[str(v) for v in d.group_labels])
    rhs = " + ".join(cs)
    if group:
        rhs += f" + ({' + '.join(zs)} | g)"
    return frame, f"y ~ {rhs}", common, group


def _plain_terms(d: Design) -> bool:
    """Whether bambi's names of the user's formula map to ours: plain columns, interactions of them,
    categorical main effects (``floor[basement]``) and numeric group terms; a plain response."""
    if d.formula.response.function is not None:
        return False
    for name in d.term_names:
        base, level = _split(name)
        if "[" in base or "]" in base or (level is not None and ":" in base):
            return False
    return all("[" not in name for name in d.group_term_names)


def _term_maps(d: Design) -> tuple[dict[str, str], dict[str, str]]:
    """Our common and group term names -> bambi's term names for the user's formula."""
    common = {}
    for name in d.term_names:
        base, level = _split(name)
        common[name] = "Intercept" if name == "Intercept" else (base if level is not None else name)
    factor = d.spec.group_factor
    group = {name: ("1" if name == "Intercept" else name) + f"|{factor}" for name in d.group_term_names}
    return common, group


def fit_bambi(
    data: Any,
    formula: str | None = None,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int | None = None,
    priors: Any = None,
    show_progress: bool = True,
    design: Design | None = None,
    dropna: bool = False,
) -> "az.InferenceData":
    """Fit ``formula`` with bambi's default model and sampler, our priors (see the module docstring).

    Parameters
    ----------
    data : DataFrame, path, Dataset or Design
        The table (its formula columns are handed to bambi), or a Design (its columns).
    formula : str
        E.g. ``"y ~ x + (1 + x || g)"``; ignored when ``data`` is a Design.
    chains, draws, warmup : int
        ``model.fit(chains=, draws=, tune=)``; ``cores = min(chains, CPU count)``.
    seed : int, optional
        ``random_seed``.
    priors : mapping or GLMPriors, optional
        As for :func:`hierlin_stan.fit` with a formula.
    show_progress : bool
    design : Design, optional
        The design of ``data`` and ``formula`` when already built.
    dropna : bool

    Returns
    -------
    arviz.InferenceData
        The general shape (beta, tau, sigma, u, coef; no Omega: bambi's effects are
        uncorrelated); sample_stats as PyMC's NUTS records them; attrs ``sampler="bambi"``,
        ``engine="pymc"``, ``bambi_formula``, ``prior_differences`` (empty when bambi's
        posterior is ours), timings (per chain, from a ``pm.sample`` callback) and versions.

    Raises
    ------
    ImportError
        bambi (or PyMC) not installed.
    ValueError
        Bad counts, or a bambi variable that cannot be mapped to the design's terms.
    """
    bmb = _import_bambi()
    pm = _import_pymc()
    chains, draws, warmup = (positive_int(v, n) for v, n in ((chains, "chains"), (draws, "draws"), (warmup, "warmup")))
    seed = resolve_seed(seed)
    if design is not None:
        d = design
    elif isinstance(data, Design):
        d = data
    else:
        if formula is None:
            raise ValueError("bambi needs formula=..., e.g. 'y ~ x + (1 + x || g)'")
        d = make_design(data, formula, dropna=dropna)
    prior = glm_priors(d, priors)
    frame = None
    if not isinstance(data, Design) and _plain_terms(d):
        frame = read_columns(data, d.formula.columns)
        if frame.isna().to_numpy().any():
            frame = frame.dropna()  # the rows the design dropped (dropna=True here or where it was built)
        categorical = [c for c in frame.columns
                       if c != d.spec.group_factor and isinstance(frame[c].dtype, pd.CategoricalDtype)]
        if len(frame) != d.N or categorical:
            # other rows than the design's, or a pandas Categorical whose reference level bambi would
            # choose differently (it sorts the levels; the design takes the first category)
            frame = None
    if frame is None:
        frame, text, common, group = _design_frame(d)
        source = "the design's columns"
    else:
        text = bambi_formula(d)
        common, group = _term_maps(d)
        source = "the table's columns"
    bprior, differences = bambi_priors(bmb, d, prior, group, common)
    wall = time.perf_counter()
    cores = min(chains, os.cpu_count() or 1)
    with warnings.catch_warnings(), quiet_loggers(("pymc", "bambi"), quiet=not show_progress):
        warnings.filterwarnings("ignore", message=".*BLAS.*", category=UserWarning)
        # bambi 0.16 on pandas 3: select_dtypes("object") also selects 'str' columns (deprecated): bambi's noise
        warnings.filterwarnings("ignore", message=".*'str' dtypes are included by select_dtypes.*")
        model = bmb.Model(text, frame, priors=bprior, center_predictors=False)
        clock = _ChainClock(chains)
        start = time.perf_counter()
        trace = model.fit(draws=draws, tune=warmup, chains=chains, cores=cores, random_seed=seed,
                          progressbar=show_progress, callback=clock, compute_convergence_checks=False)
    first = [f for f in clock.first if math.isfinite(f)]
    compile_seconds = (min(first) - start) if first else float("nan")
    warm, samp = clock.phase_seconds()
    post = trace.posterior
    variables = _variables(d, post, common, group)
    ss = trace.sample_stats
    stats = _typed_stats({dst: np.asarray(ss[src].transpose("chain", "draw").values)
                          for src, dst in _PYMC_STATS.items() if src in ss})
    attrs = {
        "sampler": "bambi",
        "engine": "pymc",
        "parameterization": "noncentered" if model.noncentered else "centered",
        "seed": seed,
        "chains": chains,
        "draws": draws,
        "warmup": warmup,
        "cores": cores,
        "bambi": bmb.__version__,
        "pymc": pm.__version__,
        "pytensor": _version_of("pytensor"),
        "bambi_formula": text,
        "bambi_data": source,
        "bambi_settings": "bambi defaults (noncentered=True, model.fit(): PyMC NUTS, init='auto') with our priors "
                          "and center_predictors=False",
        "prior_differences": "; ".join(differences),
        "compile_seconds": compile_seconds,
        "warmup_seconds": max(warm),
        "sampling_seconds": max(samp),
        "sampling_chain_seconds": float(sum(samp)),
        "chain_seconds_total": float(sum(warm) + sum(samp)),
        "timing": "per-chain wall time between draws (pm.sample callback); compile = start of fit to first draw",
        "wall_seconds": time.perf_counter() - wall,
        "hierlin_stan_version": __version__,
    }
    return glm_inference_data(variables, stats, d, prior, attrs)


def _values(da: Any) -> np.ndarray:
    return np.asarray(da.transpose("chain", "draw", ...).values, dtype=float)


def _variables(d: Design, post: Any, common: dict[str, str], group: dict[str, str]) -> dict[str, np.ndarray]:
    """beta, tau, sigma, u (chain, draw, ...) from bambi's posterior, in the design's term and group order."""
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    beta = np.empty((chains, draws, d.p))
    for k, ours in enumerate(d.term_names):
        theirs = common[ours]
        if theirs not in post:
            raise ValueError(f"bambi's posterior has no {theirs!r} for the term {ours!r}; "
                             f"it has {sorted(post.data_vars)}")
        da = post[theirs]
        extra = [dim for dim in da.dims if dim not in ("chain", "draw")]
        if not extra:
            beta[..., k] = _values(da)
            continue
        _, level = _split(ours)
        labels = [str(v) for v in da[extra[0]].values]
        if level is None or level not in labels:
            raise ValueError(f"cannot find the level of {ours!r} among bambi's {theirs!r} levels {labels}")
        beta[..., k] = _values(da)[..., labels.index(level)]
    out: dict[str, np.ndarray] = {"beta": beta, "sigma": _values(post["sigma"])}
    if d.q:
        ours_labels = [str(v) for v in d.group_labels]
        tau = np.empty((chains, draws, d.q))
        u = np.empty((chains, draws, d.J, d.q))
        for k, name in enumerate(d.group_term_names):
            theirs = group[name]
            if theirs not in post or f"{theirs}_sigma" not in post:
                raise ValueError(f"bambi's posterior has no {theirs!r} (and {theirs}_sigma) for the group term "
                                 f"{name!r}; it has {sorted(post.data_vars)}")
            tau[..., k] = _values(post[f"{theirs}_sigma"])
            da = post[theirs]
            dim = next(dim for dim in da.dims if dim.endswith("__factor_dim"))
            labels = [str(v) for v in da[dim].values]
            order = [labels.index(label) for label in ours_labels]
            u[..., k] = _values(da)[..., order]
        out["tau"] = tau
        out["u"] = u
    return out
