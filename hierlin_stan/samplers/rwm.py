"""Adaptive random-walk Metropolis for any batched log density: the core of the package's Metropolis samplers.

Gaussian random-walk Metropolis on Stan's unconstrained space, every chain advanced in
the same vectorised numpy step, with the proposal adapted during warm-up and frozen
afterwards (so the kept draws are a valid Markov chain):

* the proposal covariance is the pooled within-chain covariance of the warm-up
  draws (Haario et al. 2001), re-estimated at the end of Stan-like doubling windows
  (init buffer 15 %, windows, final buffer 10 % of warm-up) and slightly shrunk
  toward its diagonal;
* a global scale is tuned by Robbins-Monro toward 23.4 % acceptance (Roberts,
  Gelman & Gilks 1997), restarting at each new covariance; the frozen scale is the
  geometric mean over the second half of the final buffer.

Used by :func:`hierlin_stan.samplers.metropolis.metropolis` (the notebook's model) and
:func:`hierlin_stan.samplers.glm_metropolis.metropolis_formula` (any formula).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Callable

import numpy as np

from ..utils.progress import progress_bar
from ..utils.versions import environment_versions

__all__ = ["ADAPTATIONS", "TARGET_ACCEPTANCE", "RWMResult", "rwm", "initial_points", "single_threaded_blas",
           "run_chains", "run_attrs"]

#: Proposal adaptations: full covariance, or its diagonal only.
ADAPTATIONS: tuple[str, ...] = ("full", "diag")
#: Robbins-Monro target of the mean acceptance probability (optimal for random walks).
TARGET_ACCEPTANCE = 0.234
#: Iterations per block of pre-drawn random numbers.
BLOCK = 2048
#: Chains are started like Stan's: uniform(-INIT_RADIUS, INIT_RADIUS), unconstrained.
INIT_RADIUS = 2.0
#: Attempts to find a starting point with a finite log density (Stan's number).
INIT_ATTEMPTS = 100

LogDensity = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class RWMResult:
    """What :func:`_rwm` returns.

    Attributes
    ----------
    draws : numpy.ndarray
        Kept draws, (chains, kept, dim), unconstrained.
    lp : numpy.ndarray
        Log density at the kept draws, (chains, kept).
    accept_prob : numpy.ndarray
        min(1, ratio) of the proposal made at each kept iteration, (chains, kept).
    accepted : numpy.ndarray
        Whether that proposal was accepted (bool), (chains, kept).
    scale : float
        Frozen global proposal scale.
    cov : numpy.ndarray
        Frozen proposal covariance before scaling (dim, dim); the proposal is
        N(0, scale^2 cov).
    cov_updates : int
        How many times warm-up re-estimated the covariance.
    mean_accept_prob : float
        Mean acceptance probability over all sampling iterations and chains.
    accepted_fraction : float
        Fraction of sampling proposals accepted.
    warmup_seconds, sampling_seconds : float
        Wall time of the two phases.
    """

    draws: np.ndarray
    lp: np.ndarray
    accept_prob: np.ndarray
    accepted: np.ndarray
    scale: float
    cov: np.ndarray
    cov_updates: int
    mean_accept_prob: float
    accepted_fraction: float
    warmup_seconds: float
    sampling_seconds: float




def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread while sampling, when threadpoolctl is installed.

    The sampler's matrix products are small; a multi-threaded BLAS gains nothing on
    them and, on a busy machine, waits for its worker threads (measured here: the
    warm-up took twice as long with OpenBLAS's two threads under load).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")



def _initial_points(
    logp: LogDensity, chains: int, dim: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stan's initialisation: uniform(-2, 2) per coordinate, redrawn until lp is finite.

    Raises
    ------
    ValueError
        When some chain finds no finite log density in :data:`INIT_ATTEMPTS` tries.
    """
    init = rng.uniform(-INIT_RADIUS, INIT_RADIUS, size=(chains, dim))
    with np.errstate(all="ignore"):
        lp = np.array(logp(init), dtype=float)
        for _ in range(INIT_ATTEMPTS - 1):
            bad = ~np.isfinite(lp)
            if not bad.any():
                break
            init[bad] = rng.uniform(-INIT_RADIUS, INIT_RADIUS, size=(int(bad.sum()), dim))
            lp = np.array(logp(init), dtype=float)
    bad = np.flatnonzero(~np.isfinite(lp))
    if bad.size:
        raise ValueError(
            f"chain(s) {bad.tolist()} found no starting point with a finite log density in "
            f"{INIT_ATTEMPTS} uniform(-2, 2) draws; check the data (rescale extreme x, y) and the priors"
        )
    return init, lp


def _schedule(warmup: int) -> tuple[int, list[int]]:
    """Warm-up adaptation windows, as Stan's but in proportions of ``warmup``.

    Returns the end of the init buffer (scale adaptation only, identity covariance)
    and the ends of the covariance windows; the last one leaves a final buffer of
    10 % of warm-up in which only the scale adapts. Short warm-ups (< 150) adapt the
    scale only.
    """
    if warmup < 150:
        return warmup, []
    start = int(0.15 * warmup)
    last = warmup - int(0.1 * warmup)
    size = max(25, int(0.025 * warmup))
    ends: list[int] = []
    while start < last:
        end = start + size
        if end + 2 * size > last:
            end = last
        ends.append(end)
        start, size = end, 2 * size
    return int(0.15 * warmup), ends


def _segments(start: int, stop: int, cuts: list[int], block: int) -> list[tuple[int, int]]:
    """Split [start, stop) at ``cuts`` and into pieces of at most ``block``."""
    edges = sorted({start, stop, *[c for c in cuts if start < c < stop]})
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        for s in range(lo, hi, block):
            out.append((s, min(s + block, hi)))
    return out


class _Moments:
    """Per-chain running means and the pooled within-chain scatter (Chan et al.'s update).

    Only the pooled scatter is kept: one (dim, dim) matrix (or its diagonal), updated
    with a single matrix product per block of draws.
    """

    def __init__(self, chains: int, dim: int, diag: bool) -> None:
        self.diag = diag
        self.n = 0
        self.mean = np.zeros((chains, dim))
        self.m2 = np.zeros(dim if diag else (dim, dim))

    def add(self, x: np.ndarray) -> None:
        """Add draws ``x`` of shape (m, chains, dim)."""
        m = x.shape[0]
        if m == 0:
            return
        mean_b = x.mean(axis=0)
        xc = (x - mean_b).reshape(-1, x.shape[2])
        delta = mean_b - self.mean
        n = self.n + m
        w = self.n * m / n
        if self.diag:
            self.m2 += np.einsum("ij,ij->j", xc, xc) + w * np.einsum("cj,cj->j", delta, delta)
        else:
            self.m2 += np.dot(xc.T, xc) + w * np.dot(delta.T, delta)
        self.mean += delta * (m / n)
        self.n = n

    def covariance(self) -> np.ndarray | None:
        """Pooled within-chain covariance, shrunk toward its diagonal; None if unusable."""
        chains, dim = self.mean.shape
        total = self.n * chains
        if self.n < 3 or total < 2 * dim + 10:
            return None
        pooled = self.m2 / (chains * (self.n - 1))
        var = pooled if self.diag else np.diag(pooled)
        if not np.all(np.isfinite(var)) or np.any(var <= 0):
            return None
        if self.diag:
            return var.copy()
        gamma = dim / (total + dim)
        cov = (1.0 - gamma) * pooled + gamma * np.diag(var)
        return 0.5 * (cov + cov.T)


def _cholesky(cov: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor with a little jitter if needed; None if it still fails."""
    scale = float(np.mean(np.diag(cov)))
    for jitter in (0.0, 1e-10, 1e-8, 1e-6):
        try:
            return np.linalg.cholesky(cov + jitter * scale * np.eye(cov.shape[0]))
        except np.linalg.LinAlgError:
            continue
    return None


def _rwm(
    logp: LogDensity,
    init: np.ndarray,
    *,
    warmup: int,
    draws: int,
    thin: int = 1,
    rng: np.random.Generator,
    adapt: str = "full",
    target_accept: float = TARGET_ACCEPTANCE,
    progress: Callable[[int], Any] | None = None,
    block: int = BLOCK,
    init_lp: np.ndarray | None = None,
) -> RWMResult:
    """Adaptive random-walk Metropolis for any batched log density.

    Parameters
    ----------
    logp : callable
        ``logp(theta) -> lp``: (chains, dim) float64 -> (chains,) log densities. If it
        has a ``x`` buffer attribute (a :class:`~hierlin_stan.logdensity.BatchLogDensity`),
        proposals are written there and it is called on that buffer (no copy).
        Non-finite values are never accepted.
    init : numpy.ndarray
        Starting points (chains, dim); their log density must be finite.
    warmup, draws, thin : int
        Iterations of warm-up (adaptation) and of sampling (proposal frozen); keep
        sampling iterations 0, thin, 2 thin, ...
    rng : numpy.random.Generator
        Every random number comes from it, in a fixed order: same state, same draws.
    adapt : {"full", "diag"}
        Adapt the full covariance or only the variances.
    target_accept : float
        Robbins-Monro target of the acceptance probability.
    progress : callable, optional
        Called with the number of iterations (per chain) done since its last call,
        once per block.
    block : int
        Iterations per block of pre-drawn random numbers.
    init_lp : numpy.ndarray, optional
        ``logp(init)`` when already known.

    Returns
    -------
    RWMResult
    """
    init = np.array(init, dtype=np.float64, ndmin=2)
    chains, dim = init.shape
    diag = adapt == "diag"
    buffer = getattr(logp, "x", None)
    prop = buffer if isinstance(buffer, np.ndarray) and buffer.shape == (chains, dim) else np.empty((chains, dim))
    cur = init.copy()
    with np.errstate(all="ignore"):
        lp_cur = np.array(logp(init) if init_lp is None else init_lp, dtype=np.float64).reshape(chains)
    if not np.all(np.isfinite(lp_cur)):
        raise ValueError(f"the log density at the initial points is not finite: {lp_cur.tolist()}")

    init_end, window_ends = _schedule(warmup)
    final_buffer_start = window_ends[-1] if window_ends else 0
    average_from = final_buffer_start + (warmup - final_buffer_start) // 2
    cov = np.ones(dim) if diag else np.eye(dim)
    factor = np.ones(dim) if diag else np.eye(dim)
    log_scale = math.log(2.38 / math.sqrt(dim))
    rm_t = 0  # Robbins-Monro iterations since the last restart
    log_scale_sum, log_scale_n = 0.0, 0
    moments = _Moments(chains, dim, diag)
    cov_updates = 0
    cov_stride = 1 if dim <= 16 else 4

    block = max(1, int(block))
    states = np.empty((block, chains, dim))
    lps = np.empty((block, chains))
    log_ratio = np.empty((block, chains))
    kept = (draws + thin - 1) // thin
    out_draws = np.empty((chains, kept, dim))
    out_lp = np.empty((chains, kept))
    out_prob = np.empty((chains, kept))
    out_acc = np.empty((chains, kept), dtype=bool)
    accepted_total = 0
    prob_total = 0.0

    def proposals(m: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((m, chains, dim))
        steps = z * factor if diag else z @ factor.T
        log_u = np.log(rng.random((m, chains)))
        return steps, log_u

    with np.errstate(all="ignore"):
        # ------------------------------------------------------------------ warm-up
        t0 = time.perf_counter()
        for lo, hi in _segments(0, warmup, [init_end, *window_ends], block):
            m = hi - lo
            steps, log_u = proposals(m)
            for t in range(m):
                np.multiply(steps[t], math.exp(log_scale), out=prop)
                prop += cur
                lp_prop = logp(prop)
                lr = np.subtract(lp_prop, lp_cur, out=log_ratio[t])
                acc = log_u[t] < lr
                np.copyto(cur, prop, where=acc[:, None])
                np.copyto(lp_cur, lp_prop, where=acc)
                states[t] = cur
                n_acc = np.count_nonzero(acc)
                rm_t += 1
                log_scale += (n_acc / chains - target_accept) / rm_t**0.6
                if lo + t >= average_from:
                    log_scale_sum += log_scale
                    log_scale_n += 1
            if lo >= init_end and window_ends and hi <= window_ends[-1]:
                moments.add(states[:m][(cov_stride - 1 - lo) % cov_stride :: cov_stride])
            if hi in window_ends:
                new = moments.covariance()
                new_factor = None if new is None else (np.sqrt(new) if diag else _cholesky(new))
                if new_factor is not None:
                    if cov_updates == 0:
                        log_scale = math.log(2.38 / math.sqrt(dim))
                    cov, factor = new, new_factor
                    cov_updates += 1
                    rm_t = 0
                    moments = _Moments(chains, dim, diag)
            if progress is not None:
                progress(m)
        if log_scale_n:
            log_scale = log_scale_sum / log_scale_n
        scale = math.exp(log_scale)
        warmup_seconds = time.perf_counter() - t0

        # ----------------------------------------------------------------- sampling
        t0 = time.perf_counter()
        k = 0
        for lo, hi in _segments(0, draws, [], block):
            m = hi - lo
            steps, log_u = proposals(m)
            steps *= scale
            for t in range(m):
                np.add(cur, steps[t], out=prop)
                lp_prop = logp(prop)
                lr = np.subtract(lp_prop, lp_cur, out=log_ratio[t])
                acc = log_u[t] < lr
                np.copyto(cur, prop, where=acc[:, None])
                np.copyto(lp_cur, lp_prop, where=acc)
                states[t] = cur
                lps[t] = lp_cur
            lr_block = log_ratio[:m]
            prob = np.exp(np.minimum(lr_block, 0.0))
            prob[np.isnan(lr_block)] = 0.0
            acc_block = log_u[:m] < lr_block
            accepted_total += int(np.count_nonzero(acc_block))
            prob_total += float(prob.sum())
            first = (-lo) % thin
            rows = slice(first, m, thin)
            n_rows = len(range(first, m, thin))
            out_draws[:, k : k + n_rows] = states[rows].transpose(1, 0, 2)
            out_lp[:, k : k + n_rows] = lps[rows].T
            out_prob[:, k : k + n_rows] = prob[rows].T
            out_acc[:, k : k + n_rows] = acc_block[rows].T
            k += n_rows
            if progress is not None:
                progress(m)
        sampling_seconds = time.perf_counter() - t0

    return RWMResult(
        draws=out_draws,
        lp=out_lp,
        accept_prob=out_prob,
        accepted=out_acc,
        scale=scale,
        cov=np.diag(cov) if diag else cov,
        cov_updates=cov_updates,
        mean_accept_prob=prob_total / (draws * chains),
        accepted_fraction=accepted_total / (draws * chains),
        warmup_seconds=warmup_seconds,
        sampling_seconds=sampling_seconds,
    )


# public names
rwm = _rwm
initial_points = _initial_points
single_threaded_blas = _single_threaded_blas


def run_chains(logp: LogDensity, chains: int, dim: int, warmup: int, draws: int, thin: int,
               rng: np.random.Generator, adapt: str, label: str, show_progress: bool) -> RWMResult:
    """Start every chain as Stan does, then run them all with one progress bar and single-threaded BLAS.

    Parameters
    ----------
    logp : callable
        Batched log density on the unconstrained space, ``(chains, dim) -> (chains,)``.
    chains, dim, warmup, draws, thin : int
    rng : numpy.random.Generator
        Draws the starting points, then the chains' proposals (in that order: same seed, same draws).
    adapt : {"full", "diag"}
    label : str
        The progress bar's text.
    show_progress : bool
    """
    init, init_lp = _initial_points(logp, chains, dim, rng)
    bar = progress_bar(warmup + draws, label, show_progress)
    try:
        with _single_threaded_blas():
            return _rwm(logp, init, warmup=warmup, draws=draws, thin=thin, rng=rng, adapt=adapt,
                        progress=None if bar is None else bar.update, init_lp=init_lp)
    finally:
        if bar is not None:
            bar.close()


def run_attrs(result: RWMResult, adapt: str, draws: int, warmup: int, sampling_seconds: float) -> dict[str, Any]:
    """The attrs every Metropolis fit records: adaptation, acceptance, timings, versions.

    ``sampling_seconds`` is the sampling phase plus drawing what the target integrated out;
    every chain advances in the same single-threaded numpy step, so it is all chains' work
    (``sampling_chain_seconds``).
    """
    return {
        "adaptation": (f"{adapt} covariance (pooled chains, Stan-like windows) + Robbins-Monro scale toward "
                       f"{TARGET_ACCEPTANCE} acceptance; frozen after warm-up"),
        "target_acceptance": TARGET_ACCEPTANCE,
        "proposal_scale": result.scale,
        "covariance_updates": result.cov_updates,
        "acceptance_mean": result.mean_accept_prob,
        "accepted_fraction": result.accepted_fraction,
        "compile_seconds": 0.0,
        "warmup_seconds": result.warmup_seconds,
        "sampling_seconds": sampling_seconds,
        "sampling_chain_seconds": sampling_seconds,
        "iterations_per_second": draws / result.sampling_seconds if result.sampling_seconds > 0 else None,
        "warmup_iterations_per_second": warmup / result.warmup_seconds if result.warmup_seconds > 0 else None,
        **environment_versions(),
    }
