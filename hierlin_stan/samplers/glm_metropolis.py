"""The numpy adaptive Metropolis on a formula's posterior: the general programs' log density, Stan's space.

:func:`metropolis_formula` runs the sampler of :mod:`hierlin_stan.samplers.rwm`
(vectorised over chains, proposal covariance and scale adapted in Stan-like windows,
frozen after warm-up) on :class:`~hierlin_stan.samplers.glm_logdensity.GLMTarget`, whose
log density equals Stan's ``lp__`` of the same program at the same unconstrained point.
Three targets:

* ``full``: ``glm_centered.stan``'s posterior, every group effect sampled
  (p + q + 1 + q(q-1)/2 + J q dimensions), as the notebook sampled every slope;
* ``marginal``: ``glm_marginal.stan``'s (group effects integrated out); u is then drawn
  exactly for every kept draw;
* ``collapsed``: ``glm_collapsed.stan``'s (beta integrated out too: only tau, sigma and
  the correlations); beta and then u are drawn exactly.

The output is the general InferenceData shape of
:func:`hierlin_stan.samplers.stan_glm.glm_inference_data`, so diagnostics, plots and
cross-checks work on it unchanged.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from ..model.glm import Design, design as make_design
from ..model.glm_draws import draw_beta, draw_u, sigma_factor
from ..utils.az import az
from ..utils.checks import positive_int
from ..utils.seeds import resolve_seed
from .glm_logdensity import GLMTarget
from .rwm import ADAPTATIONS, run_attrs, run_chains
from .stan_glm import MAX_KEPT_VALUES, glm_inference_data, glm_priors

__all__ = ["GLM_TARGETS", "metropolis_formula"]

#: Metropolis targets for formulas and the Stan program whose density each one is.
GLM_TARGETS: dict[str, str] = {"full": "centered", "marginal": "marginal", "collapsed": "collapsed"}


def metropolis_formula(
    data: Any,
    formula: str | None = None,
    target: str = "full",
    chains: int = 4,
    draws: int = 20_000,
    warmup: int = 20_000,
    thin: int = 1,
    seed: int | None = None,
    priors: Any = None,
    show_progress: bool = True,
    keep_u: bool | None = None,
    adapt: str = "full",
    dropna: bool = False,
) -> "az.InferenceData":
    """Sample a formula's posterior with adaptive random-walk Metropolis (numpy, all chains at once).

    Parameters
    ----------
    data : DataFrame, path, Dataset or Design
        The data (a :class:`~hierlin_stan.model.glm.Design` is used as is).
    formula : str
        E.g. ``"y ~ x + (1 + x | g)"`` (ignored when ``data`` is a Design).
    target : {"full", "marginal", "collapsed"}
        ``full``: the centered program's posterior (every group effect sampled);
        ``marginal``: group effects integrated out (drawn exactly afterwards);
        ``collapsed``: common coefficients integrated out too (both drawn exactly afterwards).
    chains, draws, warmup, thin : int
        Chains; iterations per chain after warm-up (before thinning) and of warm-up.
    seed : int, optional
        Same seed, same draws.
    priors : mapping or GLMPriors, optional
        As for :func:`hierlin_stan.fit` with a formula.
    show_progress : bool
        A progress bar.
    keep_u : bool, optional
        (marginal, collapsed) draw and keep the group effects; default: unless more than
        2e7 numbers (then a warning). The full target samples them, so keeps them.
    adapt : {"full", "diag"}
        Adapt the full proposal covariance or only its diagonal.
    dropna : bool
        Drop rows with missing values (when ``data`` is not a Design).

    Returns
    -------
    arviz.InferenceData
        The general shape (beta, tau, sigma, Omega, u, coef) with sample_stats ``lp``
        (Stan's ``lp__`` at the draw) and ``acceptance_rate``; attrs ``sampler="metropolis"``,
        ``engine="numpy"``, settings, timings (``sampling_chain_seconds``: the one loop that
        advances every chain) and the proposal's adaptation.

    Raises
    ------
    ValueError
        For an unknown target or adaptation, bad counts, or no finite starting point.
    """
    wall = time.perf_counter()
    if not isinstance(target, str) or target not in GLM_TARGETS:
        raise ValueError(f"target={target!r} is unknown for a formula; use one of {list(GLM_TARGETS)}")
    if not isinstance(adapt, str) or adapt not in ADAPTATIONS:
        raise ValueError(f"adapt={adapt!r} is unknown; use one of {list(ADAPTATIONS)}")
    chains, draws, warmup, thin = (positive_int(v, n) for v, n in
                                   ((chains, "chains"), (draws, "draws"), (warmup, "warmup"), (thin, "thin")))
    if keep_u is not None and not isinstance(keep_u, (bool, np.bool_)):
        raise ValueError(f"keep_b={keep_u!r} must be True, False or None")
    seed = resolve_seed(seed)
    if not isinstance(data, Design) and formula is None:
        raise ValueError("metropolis on a formula needs formula=..., e.g. 'y ~ x + (1 + x | g)'")
    d = data if isinstance(data, Design) else make_design(data, formula, dropna=dropna)
    prior = glm_priors(d, priors)
    kept = (draws + thin - 1) // thin
    if keep_u is None:
        keep_u = target == "full" or chains * kept * d.J * d.q <= MAX_KEPT_VALUES
        if not keep_u:
            warnings.warn(f"not keeping the group effects u ({chains * kept * d.J * d.q:.2g} numbers); "
                          "pass keep_b=True to keep them", stacklevel=2)
    model = GLMTarget(d, GLM_TARGETS[target], prior)
    rng = np.random.default_rng(seed)
    result = run_chains(model, chains, model.dim, warmup, draws, thin, rng, adapt,
                        f"metropolis {target} ({chains} chains)", show_progress)

    post_start = time.perf_counter()
    flat = result.draws.reshape(-1, model.dim)
    values = model.constrain(flat)
    variables = _posterior(d, model, values, target, keep_u, prior, rng)
    shaped = {k: v.reshape((chains, kept) + v.shape[1:]) for k, v in variables.items()}
    post_seconds = time.perf_counter() - post_start
    sampling_seconds = result.sampling_seconds + post_seconds
    attrs: dict[str, Any] = {
        "sampler": "metropolis",
        "engine": "numpy",
        "parameterization": target,
        "program": f"glm_{GLM_TARGETS[target]}",
        "stan_program": f"glm_{GLM_TARGETS[target]}",
        "seed": seed,
        "chains": chains,
        "draws": draws,
        "warmup": warmup,
        "thin": thin,
        "dim": model.dim,
        "keep_u": int(bool(keep_u)),
        **run_attrs(result, adapt, draws, warmup, sampling_seconds),
        "wall_seconds": time.perf_counter() - wall,
    }
    stats = {"lp": result.lp, "acceptance_rate": result.accept_prob}
    return glm_inference_data(shaped, stats, d, prior, attrs)


def _posterior(d: Design, model: GLMTarget, values: dict[str, np.ndarray], target: str, keep_u: bool,
               prior: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """beta, tau, sigma, Omega, u for every kept draw (flat), drawing what the target integrated out."""
    out: dict[str, np.ndarray] = {"tau": values["tau"], "sigma": values["sigma"]}
    low_omega = values.get("L_Omega")
    if "Omega" in values:
        out["Omega"] = values["Omega"]
    low = sigma_factor(values["tau"], low_omega)
    if target == "collapsed":
        pdata = prior.to_stan_data()
        out["beta"] = draw_beta(d.stats, low, values["sigma"], pdata["beta_loc"], pdata["beta_scale"], rng)
    else:
        out["beta"] = values["beta"]
    if target == "full":
        out["u"] = values["u"]
    elif keep_u and d.q:
        out["u"] = draw_u(d.stats, out["beta"], low, values["sigma"], rng)
    return out
