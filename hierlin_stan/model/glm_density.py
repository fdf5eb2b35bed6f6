"""Log likelihoods of the general model in numpy: marginal (group effects integrated out) and
collapsed (common coefficients integrated out too), from the sufficient statistics alone.

These are the formulas the Stan programs ``glm_marginal.stan`` and ``glm_collapsed.stan``
implement (tests hold them equal to Stan's log density and to a dense multivariate-normal
reference), and the exact conditional draws of beta and u used after sampling.

Notation (see :mod:`hierlin_stan.model.sums`): per group A_j = sigma^2 I + M_j Sigma M_j'
(q x q, padded rows carry sigma^2 alone), d_j(beta) = e*_j - F_j (beta - beta*):

    log p(y | beta, Sigma, sigma) = -1/2 [ N log 2 pi + (N - J q) log sigma^2 + sum_j log det A_j
                                          + (RSSmin + delta' C2 delta) / sigma^2 + sum_j d_j' A_j^-1 d_j ]

with delta = beta - beta*. Integrating beta ~ N(m0, S0) (S0 diagonal) out gives, with
P = S0^-1 + C2 / sigma^2 + sum_j F_j' A_j^-1 F_j and g = S0^-1 (m0 - beta*) + sum_j F_j' A_j^-1 e*_j:

    log p(y | Sigma, sigma) = -1/2 [ N log 2 pi + (N - J q) log sigma^2 + sum_j log det A_j + log det S0
                                    + log det P + RSSmin / sigma^2 + q0 - g' P^-1 g ],
    q0 = sum_j e*_j' A_j^-1 e*_j + (beta* - m0)' S0^-1 (beta* - m0),

and beta | Sigma, sigma, y ~ N(beta* + P^-1 g, P^-1). Nothing large cancels as sigma -> 0.
"""

from __future__ import annotations

import math

import numpy as np

from .sums import SufficientStats

__all__ = ["marginal_loglik", "collapsed_loglik", "beta_conditional", "u_conditional", "dense_loglik",
           "log_prior", "lkj_cholesky_logpdf"]

_LOG_2PI = math.log(2.0 * math.pi)


def _group_terms(stats: SufficientStats, sigma: float, sigma_u: np.ndarray) -> tuple[float, np.ndarray]:
    """sum_j log det A_j and the Cholesky factors of A_j (J, q, q)."""
    j, p, q = stats.shape
    if q == 0:
        return 0.0, np.zeros((j, 0, 0))
    m = stats.blocks.m
    a = np.einsum("jab,bc,jdc->jad", m, sigma_u, m) + sigma * sigma * np.eye(q)
    chol = np.linalg.cholesky(a)
    logdet = 2.0 * float(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum())
    return logdet, chol


def _solve_lower(chol: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """L^-1 rhs per group (rhs (J, q) or (J, q, k))."""
    if rhs.ndim == 2:
        return np.linalg.solve(chol, rhs[..., None])[..., 0]
    return np.linalg.solve(chol, rhs)


def marginal_loglik(stats: SufficientStats, beta: np.ndarray, sigma_u: np.ndarray, sigma: float) -> float:
    """log p(y | beta, Sigma, sigma) with the group effects integrated out.

    Parameters
    ----------
    stats : SufficientStats
    beta : numpy.ndarray (p,)
    sigma_u : numpy.ndarray (q, q)
        Sigma, the covariance of the group effects.
    sigma : float
        Residual standard deviation (> 0).
    """
    j, p, q = stats.shape
    n = stats.N
    s2 = sigma * sigma
    delta = np.asarray(beta, float) - stats.residual.beta_star
    quad = (stats.residual.rss_min + float(delta @ stats.residual.c2 @ delta)) / s2
    logdet = (n - j * q) * math.log(s2)
    if q:
        gl, chol = _group_terms(stats, sigma, sigma_u)
        d = stats.e_star - np.einsum("jqp,p->jq", stats.blocks.f, delta)
        v = _solve_lower(chol, d)
        logdet += gl
        quad += float((v * v).sum())
    return -0.5 * (n * _LOG_2PI + logdet + quad)


def _collapsed_parts(stats: SufficientStats, sigma_u: np.ndarray, sigma: float, beta_loc: np.ndarray,
                     beta_scale: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
    """(log-lik terms without log det P and g'P^-1 g, P, g, rest)."""
    j, p, q = stats.shape
    s2 = sigma * sigma
    prec0 = 1.0 / np.asarray(beta_scale, float) ** 2
    bstar = stats.residual.beta_star
    pmat = np.diag(prec0) + stats.residual.c2 / s2
    g = prec0 * (np.asarray(beta_loc, float) - bstar)
    q0 = float(((bstar - beta_loc) ** 2 * prec0).sum())
    logdet = (stats.N - j * q) * math.log(s2) + float(np.log(np.asarray(beta_scale, float) ** 2).sum())
    if q:
        gl, chol = _group_terms(stats, sigma, sigma_u)
        fa = _solve_lower(chol, stats.blocks.f)  # (J, q, p)
        ea = _solve_lower(chol, stats.e_star)  # (J, q)
        pmat = pmat + np.einsum("jqa,jqb->ab", fa, fa)
        g = g + np.einsum("jqa,jq->a", fa, ea)
        q0 += float((ea * ea).sum())
        logdet += gl
    rest = logdet + stats.residual.rss_min / s2 + q0
    return rest, pmat, g, stats.N * _LOG_2PI


def collapsed_loglik(stats: SufficientStats, sigma_u: np.ndarray, sigma: float, beta_loc: np.ndarray,
                     beta_scale: np.ndarray) -> float:
    """log p(y | Sigma, sigma): beta ~ N(beta_loc, diag(beta_scale^2)) and the group effects integrated out."""
    rest, pmat, g, const = _collapsed_parts(stats, sigma_u, sigma, beta_loc, beta_scale)
    chol = np.linalg.cholesky(pmat)
    w = np.linalg.solve(chol, g)
    return -0.5 * (const + rest + 2.0 * float(np.log(np.diag(chol)).sum()) - float(w @ w))


def beta_conditional(stats: SufficientStats, sigma_u: np.ndarray, sigma: float, beta_loc: np.ndarray,
                     beta_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of beta | Sigma, sigma, y (the collapsed program's exact draw)."""
    _, pmat, g, _ = _collapsed_parts(stats, sigma_u, sigma, beta_loc, beta_scale)
    cov = np.linalg.inv(pmat)
    return stats.residual.beta_star + cov @ g, cov


def u_conditional(stats: SufficientStats, beta: np.ndarray, low: np.ndarray, sigma: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Mean (J, q) and covariance (J, q, q) of u_j | beta, Sigma, sigma, y.

    ``low`` is L, a lower-triangular factor of Sigma = L L' (diag(tau) L_Omega; tau may be 0).
    With B_j = M_j L: cov = L sigma^2 (sigma^2 I + B'B)^-1 L',
    mean = L (sigma^2 I + B'B)^-1 B' d_j, stable as sigma -> 0 (prior N(0, Sigma) when k_j = 0).
    """
    j, p, q = stats.shape
    b = np.einsum("jab,bc->jac", stats.blocks.m, low)
    inner = sigma * sigma * np.eye(q) + np.einsum("jab,jac->jbc", b, b)
    delta = np.asarray(beta, float) - stats.residual.beta_star
    d = stats.e_star - np.einsum("jqp,p->jq", stats.blocks.f, delta)
    inv = np.linalg.inv(inner)
    mean_w = np.einsum("jab,jcb,jc->ja", inv, b, d)
    mean = np.einsum("ab,jb->ja", low, mean_w)
    cov = sigma * sigma * np.einsum("ab,jbc,dc->jad", low, inv, low)
    return mean, cov


def dense_loglik(y: np.ndarray, x: np.ndarray, z: np.ndarray, codes: np.ndarray, beta: np.ndarray,
                 sigma_u: np.ndarray, sigma: float) -> float:
    """Reference: the multivariate-normal log density, group by group, with dense V_j = sigma^2 I + Z_j Sigma Z_j'."""
    total = 0.0
    for g in np.unique(codes):
        rows = codes == g
        zj = z[rows]
        v = sigma * sigma * np.eye(int(rows.sum())) + zj @ sigma_u @ zj.T
        r = y[rows] - x[rows] @ beta
        chol = np.linalg.cholesky(v)
        w = np.linalg.solve(chol, r)
        total += -0.5 * (rows.sum() * _LOG_2PI + 2.0 * np.log(np.diag(chol)).sum() + w @ w)
    return float(total)


# ------------------------------------------------------------------ priors
def lkj_constant(eta: float, k: int) -> float:
    """Stan's normalising constant of ``lkj_corr_cholesky_lpdf`` (Lewandowski, Kurowicka & Joe 2009)."""
    from scipy.special import gammaln

    km1 = k - 1
    if eta == 1.0:
        const = -sum(gammaln(2.0 * i) for i in range(1, km1 // 2 + 1))
        if k % 2 == 1:
            const -= 0.25 * (k * k - 1) * math.log(math.pi) - 0.25 * km1 * km1 * math.log(2.0) - km1 * gammaln(0.5 * (k + 1))
        else:
            const -= (0.25 * k * (k - 2) * math.log(math.pi) + 0.25 * (3 * k * k - 4 * k) * math.log(2.0)
                      + k * gammaln(0.5 * k) - km1 * gammaln(float(k)))
        return float(const)
    const = km1 * gammaln(eta + 0.5 * km1)
    for i in range(1, km1 + 1):
        const -= 0.5 * i * math.log(math.pi) + gammaln(eta + 0.5 * (km1 - i))
    return float(const)


def lkj_cholesky_logpdf(low: np.ndarray, eta: float) -> float:
    """``lkj_corr_cholesky_lpdf(L | eta)`` as Stan computes it (normalised)."""
    k = low.shape[0]
    if k == 0:
        return 0.0
    logd = np.log(np.diag(low)[1:])
    km1 = k - 1
    values = (km1 - np.arange(km1) - 1) * logd + (2.0 * eta - 2.0) * logd
    return lkj_constant(eta, k) + float(values.sum())


def scale_logpdf(s: float, family: int, a: float, b: float) -> float:
    """``glm_scale_lpdf`` of glm_functions.stan (family codes of :data:`~hierlin_stan.model.glm_priors.SCALE_FAMILY_CODES`)."""
    from scipy import stats

    if family == 1:
        return float(stats.uniform(0, a).logpdf(s))
    if family == 2:
        return float(stats.norm(0, a).logpdf(s) + math.log(2.0))
    if family == 3:
        return float(stats.t(b, 0, a).logpdf(s) + math.log(2.0))
    return float(stats.expon(scale=1.0 / a).logpdf(s))


def log_prior(prior_data: dict, beta: np.ndarray | None, tau: np.ndarray, sigma: float, low_omega: np.ndarray | None,
              correlated: bool) -> float:
    """The prior terms the glm programs add to ``target`` (beta omitted for the collapsed program)."""
    from scipy import stats

    total = 0.0
    if beta is not None and len(beta):
        total += float(stats.norm(prior_data["beta_loc"], prior_data["beta_scale"]).logpdf(beta).sum())
    for k in range(len(tau)):
        total += scale_logpdf(float(tau[k]), int(prior_data["tau_family"][k]), float(prior_data["tau_a"][k]),
                              float(prior_data["tau_b"][k]))
    total += scale_logpdf(sigma, int(prior_data["sigma_family"]), float(prior_data["sigma_a"]), float(prior_data["sigma_b"]))
    if correlated and len(tau) > 1 and low_omega is not None:
        total += lkj_cholesky_logpdf(low_omega, float(prior_data["lkj_eta"]))
    return total
