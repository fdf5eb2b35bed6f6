"""Adaptive random-walk Metropolis in numpy: all chains at once, on Stan's unconstrained space.

The comparison sampler of the package (DESIGN.md, "Metropolis comparison"): the
notebook this package revisits sampled the full posterior (a, mu_b, sigma_b, eps and
all b) with Metropolis. :func:`metropolis` does the same, done properly, on exactly
Stan's posterior: the log density (:mod:`hierlin_stan.logdensity`) equals Stan's
``lp__`` on Stan's unconstrained space, chains start like Stan's (uniform(-2, 2) on
that space), and the output is the package's InferenceData, so every diagnostic and
plot works on it unchanged. ``target="marginal"`` samples the four hyperparameters
of the marginal posterior (b integrated out) and draws b exactly afterwards.

The sampler itself (adaptive random-walk Metropolis, every chain in one vectorised
numpy step; :mod:`hierlin_stan.samplers.rwm`) runs on any batched log density. With
``formula=...`` :func:`metropolis` samples a formula's posterior instead: the general
programs' log density (:mod:`hierlin_stan.samplers.glm_logdensity`) through
:func:`hierlin_stan.samplers.glm_metropolis.metropolis_formula`.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from ..utils.az import az
from ..model.dataset import Dataset
from .stan import MAX_KEPT_VALUES
from ..utils.checks import positive_int as _positive_int
from .inference_data import build_inference_data
from .logdensity import HYPER, Target
from ..model.priors import PriorsLike, resolve_priors
from ..utils.seeds import resolve_seed

__all__ = ["TARGETS", "ADAPTATIONS", "TARGET_ACCEPTANCE", "metropolis"]

from .rwm import (  # noqa: F401 - the core lives in rwm.py; re-exported for callers
    ADAPTATIONS, BLOCK, INIT_ATTEMPTS, INIT_RADIUS, TARGET_ACCEPTANCE, LogDensity, RWMResult, _cholesky,
    _initial_points, _Moments, _rwm, _schedule, _segments, _single_threaded_blas, run_attrs, run_chains,
)

#: Metropolis targets and the Stan program whose density each one is.
TARGETS: dict[str, str] = {"full": "centered", "marginal": "marginal"}


def metropolis(
    dataset: Dataset,
    target: str = "full",
    chains: int = 4,
    draws: int = 20_000,
    warmup: int = 20_000,
    thin: int = 1,
    seed: int | None = None,
    priors: PriorsLike = None,
    show_progress: bool = True,
    keep_b: bool | None = None,
    adapt: str = "full",
    formula: str | None = None,
    dropna: bool = False,
) -> "az.InferenceData":
    """Sample the posterior with adaptive random-walk Metropolis (numpy, all chains at once).

    Two kinds of model, as for :func:`hierlin_stan.fit`: the notebook's (a Dataset, no
    formula) and any formula (``formula=...``; see
    :func:`hierlin_stan.samplers.glm_metropolis.metropolis_formula`).

    Parameters
    ----------
    dataset : Dataset, DataFrame, path or Design
        From :func:`hierlin_stan.simulate`, :meth:`Dataset.from_csv`, ...; with
        ``formula`` also a DataFrame, a CSV/Parquet path or a :func:`hierlin_stan.design`.
    target : {"full", "marginal"} (formulas also "collapsed")
        ``full``: the centered posterior of (a, mu_b, sigma_b, eps, b[1..J]), as the
        notebook sampled it (4 + J dimensions). ``marginal``: (a, mu_b, sigma_b, eps)
        with b integrated out; b is then drawn exactly for every kept draw. For a
        formula: the posterior of ``glm_centered``, ``glm_marginal`` or ``glm_collapsed``.
    chains, draws, warmup, thin : int
        Number of chains; iterations per chain kept after warm-up (before thinning)
        and of warm-up; keep every ``thin``-th draw (``ceil(draws / thin)`` kept).
    seed : int, optional
        Same seed, same draws. None draws one and records it in attrs.
    priors : None, str, mapping or Priors
        As for :func:`hierlin_stan.fit`; default the notebook's priors.
    show_progress : bool
        A tqdm bar (terminal or Jupyter), updated every few thousand iterations.
    keep_b : bool, optional
        (marginal) draw and keep the J slopes. Default: keep unless that means more
        than 2e7 stored numbers, in which case a warning says they were dropped.
        The full target samples b, so keeps it.
    adapt : {"full", "diag"}
        Adapt the full proposal covariance (default; the slopes are strongly
        correlated with a) or only its diagonal.
    formula : str, optional
        E.g. ``"y ~ x + (1 + x | g)"``: sample that model's posterior (names beta, tau,
        sigma, Omega, u, coef); ``keep_b`` then keeps the group effects u.
    dropna : bool
        (formula) drop rows with missing values in the used columns instead of failing.

    Returns
    -------
    arviz.InferenceData
        posterior ``a``, ``mu_b``, ``sigma_b``, ``eps`` (chain, draw) and ``b``
        (chain, draw, group); sample_stats ``lp`` (Stan's ``lp__`` at the draw) and
        ``acceptance_rate`` (min(1, Metropolis ratio) at that iteration);
        observed/constant data; attrs with sampler="metropolis", engine="numpy",
        settings, seed, timings, ``iterations_per_second`` (per chain, sampling
        phase), ``proposal_scale``, ``acceptance_mean`` and true values.

    Raises
    ------
    ValueError
        For an unknown target or adaptation, a count that is not an integer >= 1, a
        bad seed or priors, or when no chain finds a finite starting point.

    Examples
    --------
    >>> import hierlin_stan as hs
    >>> from hierlin_stan.metropolis import metropolis
    >>> idata = metropolis(hs.simulate(seed=1), "marginal", seed=2, show_progress=False)  # doctest: +SKIP
    """
    wall_start = time.perf_counter()
    from ..model.glm import Design

    if formula is not None or isinstance(dataset, Design):
        from .glm_metropolis import metropolis_formula

        return metropolis_formula(dataset, formula, target, chains=chains, draws=draws, warmup=warmup, thin=thin,
                                  seed=seed, priors=priors, show_progress=show_progress, keep_u=keep_b, adapt=adapt,
                                  dropna=dropna)
    if not isinstance(dataset, Dataset):
        raise ValueError(
            f"dataset must be a hierlin_stan.Dataset (from simulate() or Dataset.from_csv()); "
            f"got {type(dataset).__name__}"
        )
    if not isinstance(target, str) or target not in TARGETS:
        raise ValueError(f"target={target!r} is unknown; use one of {list(TARGETS)}")
    if not isinstance(adapt, str) or adapt not in ADAPTATIONS:
        raise ValueError(f"adapt={adapt!r} is unknown; use one of {list(ADAPTATIONS)}")
    chains, draws, warmup, thin = (
        _positive_int(v, n) for v, n in ((chains, "chains"), (draws, "draws"), (warmup, "warmup"), (thin, "thin"))
    )
    if keep_b is not None and not isinstance(keep_b, (bool, np.bool_)):
        raise ValueError(f"keep_b={keep_b!r} must be True, False or None")
    seed = resolve_seed(seed)
    prior = resolve_priors(priors)
    kept = (draws + thin - 1) // thin
    if keep_b is None:
        keep_b = target != "marginal" or chains * kept * dataset.n_groups <= MAX_KEPT_VALUES
        if not keep_b:
            warnings.warn(
                f"not keeping the {dataset.n_groups} slopes b ({chains * kept * dataset.n_groups:.2g} numbers); "
                "pass keep_b=True to keep them",
                stacklevel=2,
            )
    model = Target(dataset, TARGETS[target], prior)
    logp = model.batch_log_density(chains)
    rng = np.random.default_rng(seed)
    result = run_chains(logp, chains, model.dim, warmup, draws, thin, rng, adapt,
                        f"metropolis {target} ({chains} chains)", show_progress)

    post_start = time.perf_counter()
    flat = result.draws.reshape(-1, model.dim)
    values = model.constrain(flat)
    posterior: dict[str, np.ndarray] = {k: values[k].reshape(chains, kept) for k in HYPER}
    if target == "full":
        posterior["b"] = values["b"].reshape(chains, kept, model.n_groups)
    elif keep_b:
        posterior["b"] = model.draw_b(flat, rng).reshape(chains, kept, model.n_groups)
    del flat, values
    post_seconds = time.perf_counter() - post_start
    sampling_seconds = result.sampling_seconds + post_seconds

    attrs: dict[str, Any] = {
        "sampler": "metropolis",
        "engine": "numpy",
        "parameterization": target,
        "stan_program": TARGETS[target],
        "seed": seed,
        "chains": chains,
        "draws": draws,
        "warmup": warmup,
        "thin": thin,
        "dim": model.dim,
        "priors": prior.describe(),
        **{f"prior_{k}": v for k, v in prior.to_stan_data().items()},
        "keep_b": int(bool(keep_b)),
        **run_attrs(result, adapt, draws, warmup, sampling_seconds),
    }
    stats = {"lp": result.lp, "acceptance_rate": result.accept_prob}
    attrs["wall_seconds"] = time.perf_counter() - wall_start
    return build_inference_data(posterior, stats, dataset, attrs)
