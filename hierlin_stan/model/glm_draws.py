"""Exact conditional draws of the general model for many posterior draws at once (numpy).

The marginal and collapsed parameterizations integrate the group effects u (and, for
collapsed, the common coefficients beta) out of the posterior; a sampler of them then
draws what it integrated out, exactly, for every kept draw. The Stan programs do it in
generated quantities (``glm_draw_u_rng``, ``glm_draw_beta_rng``); the samplers that run
outside Stan (the numpy Metropolis, PyMC, nutpie) use these vectorised twins:

* :func:`draw_u`: u_j | beta, Sigma, sigma, y ~ N(L H^-1 B'd_j, sigma^2 L H^-1 L'),
  B = M_j L, H = sigma^2 I + B'B, d_j = e*_j - F_j (beta - beta*), stable as sigma -> 0
  (a group with no information on u_j gets its prior N(0, Sigma));
* :func:`draw_beta`: beta | Sigma, sigma, y ~ N(beta* + P^-1 g, P^-1) with P and g as in
  :mod:`hierlin_stan.model.glm_density`.

Each takes n draws of the parameters (leading axis) and works through them in blocks so
that memory stays bounded for large J.
"""

from __future__ import annotations

import numpy as np

from .sums import SufficientStats

__all__ = ["draw_u", "draw_beta", "sigma_factor"]

#: Largest number of (draw, group) q x q blocks held at once.
BLOCK_ELEMENTS = 400_000


def sigma_factor(tau: np.ndarray, low_omega: np.ndarray | None) -> np.ndarray:
    """L with Sigma = L L' for every draw: diag(tau) L_Omega, or diag(tau) without correlations.

    Parameters
    ----------
    tau : numpy.ndarray (n, q)
    low_omega : numpy.ndarray (n, q, q) or None
        Cholesky factors of the correlation matrices (None: independent terms).

    Returns
    -------
    numpy.ndarray (n, q, q)
    """
    tau = np.asarray(tau, float)
    if low_omega is None:
        return tau[:, :, None] * np.eye(tau.shape[1])[None]
    return tau[:, :, None] * np.asarray(low_omega, float)


def _blocks(n: int, per_draw: int) -> list[slice]:
    size = max(1, BLOCK_ELEMENTS // max(per_draw, 1))
    return [slice(s, min(n, s + size)) for s in range(0, n, size)]


def draw_u(stats: SufficientStats, beta: np.ndarray, low: np.ndarray, sigma: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Draw the group effects u exactly given beta, Sigma = L L' and sigma, for n draws.

    Parameters
    ----------
    stats : SufficientStats
        The design's sums (:attr:`hierlin_stan.model.glm.Design.stats`).
    beta : numpy.ndarray (n, p)
    low : numpy.ndarray (n, q, q)
        A lower-triangular factor of Sigma per draw (:func:`sigma_factor`).
    sigma : numpy.ndarray (n,)
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray (n, J, q)
    """
    j, p, q = stats.shape
    beta = np.atleast_2d(np.asarray(beta, float))
    low = np.asarray(low, float)
    sigma = np.asarray(sigma, float).reshape(-1)
    n = sigma.size
    out = np.zeros((n, j, q))
    if q == 0:
        return out
    m, e_star, f = stats.blocks.m, stats.e_star, stats.blocks.f
    eye = np.eye(q)
    for sl in _blocks(n, j * q * q):
        lw = low[sl]                                                    # (b, q, q)
        s2 = (sigma[sl] ** 2)[:, None, None, None]
        delta = beta[sl] - stats.residual.beta_star                     # (b, p)
        d = e_star[None] - np.einsum("jqp,bp->bjq", f, delta)           # (b, J, q)
        bmat = np.einsum("jac,bcd->bjad", m, lw)                        # B = M L: (b, J, q, q)
        h = s2 * eye + np.einsum("bjai,bjak->bjik", bmat, bmat)         # sigma^2 I + B'B
        lh = np.linalg.cholesky(h)
        rhs = np.einsum("bjai,bja->bji", bmat, d)                       # B'd
        mean_w = np.linalg.solve(h, rhs[..., None])[..., 0]
        z = rng.standard_normal(mean_w.shape)
        # w = mean + sigma LH'^-1 z: covariance sigma^2 (LH LH')^-1 = sigma^2 H^-1
        noise = np.linalg.solve(np.swapaxes(lh, -1, -2), z[..., None])[..., 0]
        w = mean_w + sigma[sl][:, None, None] * noise
        out[sl] = np.einsum("bqc,bjc->bjq", lw, w)
    return out


def draw_beta(stats: SufficientStats, low: np.ndarray, sigma: np.ndarray, beta_loc: np.ndarray,
              beta_scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw the common coefficients exactly given Sigma = L L' and sigma (collapsed posterior), for n draws.

    Parameters
    ----------
    stats : SufficientStats
    low : numpy.ndarray (n, q, q)
    sigma : numpy.ndarray (n,)
    beta_loc, beta_scale : numpy.ndarray (p,)
        The normal prior of beta.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray (n, p)
    """
    j, p, q = stats.shape
    sigma = np.asarray(sigma, float).reshape(-1)
    n = sigma.size
    out = np.empty((n, p))
    if p == 0:
        return out
    prec0 = 1.0 / np.asarray(beta_scale, float) ** 2
    bstar = stats.residual.beta_star
    g0 = prec0 * (np.asarray(beta_loc, float) - bstar)
    low = np.asarray(low, float)
    eye = np.eye(q)
    for sl in _blocks(n, max(j * q * (q + p), 1)):
        s2 = sigma[sl] ** 2
        pmat = np.diag(prec0)[None] + stats.residual.c2[None] / s2[:, None, None]
        g = np.broadcast_to(g0, (s2.size, p)).copy()
        if q:
            sig = np.einsum("bik,bjk->bij", low[sl], low[sl])
            a = s2[:, None, None, None] * eye + np.einsum("jab,kbc,jdc->kjad", stats.blocks.m, sig, stats.blocks.m)
            la = np.linalg.cholesky(a)
            fa = np.linalg.solve(la, np.broadcast_to(stats.blocks.f, (s2.size, j, q, p)))
            ea = np.linalg.solve(la, np.broadcast_to(stats.e_star, (s2.size, j, q))[..., None])[..., 0]
            pmat = pmat + np.einsum("kjqa,kjqb->kab", fa, fa)
            g = g + np.einsum("kjqa,kjq->ka", fa, ea)
        lp = np.linalg.cholesky(pmat)
        w = np.linalg.solve(lp, g[..., None])[..., 0] + rng.standard_normal(g.shape)
        out[sl] = bstar + np.linalg.solve(np.swapaxes(lp, -1, -2), w[..., None])[..., 0]
    return out
