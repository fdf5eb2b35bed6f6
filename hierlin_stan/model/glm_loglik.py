"""Log likelihoods per draw for model comparison (LOO): per observation and per group.

Two views of the same fitted general model y = X beta + Z u_g + e (see
:mod:`hierlin_stan.model.glm_density`), each an array (draws, units) that ArviZ's
``loo`` reads from the ``log_likelihood`` group:

* **per observation, given the group effects** (:func:`pointwise_loglik`):
  log normal(y_i | X_i beta + Z_i u_g[i], sigma). Needs the rows and draws of u.
  PSIS-LOO on it estimates leave-one-*observation*-out.
* **per group, with the group's effects integrated out** (:func:`group_loglik`):
  log p(y_j | beta, Sigma, sigma) = log MVN(y_j | X_j beta, sigma^2 I + Z_j Sigma Z_j').
  PSIS-LOO on it estimates leave-one-*group*-out: how well the model predicts a new
  group's data, the question behind "does the effect vary between groups?".

The per-group log likelihood is computed from the per-group blocks the marginal
program uses (M_j, e*_j, F_j; :mod:`hierlin_stan.model.sums`) plus, per group, the
residual quadratic RSSperp_j(beta) = rss_j - 2 b_j'delta + delta' C_j delta
(delta = beta - beta*), summed from the rows once (:func:`group_residuals`):

    log p(y_j | .) = -1/2 [ n_j log 2 pi + (n_j - q) log sigma^2 + log det A_j
                            + RSSperp_j / sigma^2 + d_j' A_j^-1 d_j ],
    A_j = sigma^2 I + M_j Sigma M_j',  d_j = e*_j - F_j delta

(padded rows of M_j carry sigma^2 alone, so n_j - q plus them is n_j - k_j). It is
vectorised over draws and groups, costs O(S J q^3 + S J p^2) whatever N is, and sums
over groups to :func:`~hierlin_stan.model.glm_density.marginal_loglik` (tests hold it
equal to a dense multivariate normal per group). For a model without group terms
(q = 0) the same formula gives the sum of the pointwise terms of each group of any
grouping, so a pooled model can take part in a leave-one-group-out comparison.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np

from .glm import Design
from .sums import residual_rows

__all__ = ["Grouping", "GroupResiduals", "model_grouping", "group_residuals", "group_loglik", "pointwise_loglik",
           "covariance_draws", "DRAW_BLOCK_VALUES"]

_LOG_2PI = math.log(2.0 * math.pi)
#: Draws are processed in blocks of about this many numbers per intermediate array.
DRAW_BLOCK_VALUES = 2_000_000


@dataclasses.dataclass(frozen=True)
class Grouping:
    """Which group each row belongs to, for leave-one-group-out.

    Attributes
    ----------
    factor : str
        The grouping column (e.g. ``"county"``).
    labels : numpy.ndarray (J,)
        The groups' labels, in group order (the ``group`` coordinate).
    codes : numpy.ndarray (N,)
        0-based group of each row, in the design's row order.
    """

    factor: str
    labels: np.ndarray
    codes: np.ndarray

    @property
    def n_groups(self) -> int:
        """J."""
        return int(self.labels.size)


@dataclasses.dataclass
class GroupResiduals:
    """Per group: n_j and the residual quadratic RSSperp_j(beta) around beta* (see the module doc).

    Attributes
    ----------
    n : numpy.ndarray (J,)
        Rows per group.
    rss : numpy.ndarray (J,)
        RSSperp_j(beta*), summed from the residual rows themselves (no cancellation).
    b : numpy.ndarray (J, p)
        X_perp,j' r*_j.
    c : numpy.ndarray (J, p, p)
        X_perp,j' X_perp,j.
    """

    n: np.ndarray
    rss: np.ndarray
    b: np.ndarray
    c: np.ndarray


def model_grouping(d: Design) -> Grouping:
    """The grouping of a design's own group factor.

    Raises
    ------
    ValueError
        When the formula has no group term (give a grouping explicitly).
    """
    if d.q == 0 or d.spec.group_factor is None:
        raise ValueError(f"{d.formula.canonical!r} has no grouping factor; give the grouping of the comparison "
                         "(e.g. group='g') to compute a per-group log likelihood")
    codes = np.concatenate([c for *_, c in d.chunks()]) if d.N else np.zeros(0, np.int64)
    return Grouping(str(d.spec.group_factor), np.asarray(d.group_labels), codes.astype(np.int64))


def group_residuals(d: Design, grouping: Grouping | None = None) -> GroupResiduals:
    """One pass over the rows: each group's residual quadratic (see :class:`GroupResiduals`).

    Parameters
    ----------
    d : Design
    grouping : Grouping, optional
        For a model with group terms it must be the model's own (the default);
        a model without group terms (q = 0) takes any grouping of its rows.

    Raises
    ------
    ValueError
        For a grouping of another factor than the model's own, or of another length.
    """
    j_model, p, q = d.stats.shape
    if grouping is None:
        grouping = model_grouping(d)
    elif q and (grouping.factor != d.spec.group_factor or grouping.n_groups != j_model
                or not np.array_equal(grouping.labels.astype(str), np.asarray(d.group_labels).astype(str))):
        raise ValueError(f"{d.formula.canonical!r} groups by {d.spec.group_factor!r} ({j_model} groups); its "
                         f"per-group likelihood cannot be taken by {grouping.factor!r} ({grouping.n_groups} groups): "
                         "leave out groups of the model's own factor, in its label order (model_grouping(design))")
    if grouping.codes.size != d.N:
        raise ValueError(f"the grouping has {grouping.codes.size} rows and the design {d.N}; build both from the "
                         "same rows")
    j = grouping.n_groups
    n = np.bincount(grouping.codes, minlength=j).astype(np.int64)
    rss, b, c = np.zeros(j), np.zeros((j, p)), np.zeros((j, p, p))
    beta_star = d.stats.residual.beta_star
    start = 0
    for y, x, z, codes in d.chunks():
        rows = residual_rows(y, x, z, codes, d.stats.sums, d.stats.blocks)
        xp, yp = rows[:, :p], rows[:, p]
        r = yp - xp @ beta_star
        g = grouping.codes[start:start + y.size] if q == 0 else codes
        start += y.size
        rss += np.bincount(g, weights=r * r, minlength=j)
        for a in range(p):
            b[:, a] += np.bincount(g, weights=xp[:, a] * r, minlength=j)
            for k in range(a, p):
                s = np.bincount(g, weights=xp[:, a] * xp[:, k], minlength=j)
                c[:, a, k] += s
                if k != a:
                    c[:, k, a] += s
    return GroupResiduals(n, rss, b, c)


def covariance_draws(tau: np.ndarray, omega: np.ndarray | None = None) -> np.ndarray:
    """Sigma = diag(tau) Omega diag(tau) per draw: (S, q, q) from tau (S, q) and Omega (S, q, q) or None (identity)."""
    tau = np.asarray(tau, float)
    cov = tau[:, :, None] * tau[:, None, :]
    if omega is None:
        return cov * np.eye(tau.shape[1])
    return cov * np.asarray(omega, float)


def _blocks(n_draws: int, per_draw: int) -> Iterator[slice]:
    size = max(1, DRAW_BLOCK_VALUES // max(per_draw, 1))
    for start in range(0, n_draws, size):
        yield slice(start, min(n_draws, start + size))


def group_loglik(d: Design, beta: np.ndarray, sigma: np.ndarray, sigma_u: np.ndarray | None,
                 residuals: GroupResiduals | None = None) -> np.ndarray:
    """log p(y_j | beta, Sigma, sigma) per draw and group, the group effects integrated out.

    Parameters
    ----------
    d : Design
    beta : numpy.ndarray (S, p)
    sigma : numpy.ndarray (S,)
        Residual standard deviation per draw (> 0).
    sigma_u : numpy.ndarray (S, q, q) or None
        Covariance of the group effects per draw (:func:`covariance_draws`); None when q = 0.
    residuals : GroupResiduals, optional
        From :func:`group_residuals` (computed with the model's own grouping when not given;
        pass one made with another grouping for a model without group terms).

    Returns
    -------
    numpy.ndarray (S, J)
    """
    res = group_residuals(d) if residuals is None else residuals
    _, p, q = d.stats.shape
    beta = np.asarray(beta, float).reshape(-1, p)
    sigma = np.asarray(sigma, float).reshape(-1)
    n_draws, j = beta.shape[0], res.n.size
    out = np.empty((n_draws, j))
    n = res.n.astype(float)[:, None]
    st = d.stats
    c_flat = res.c.reshape(j, p * p)
    # Work in the layout (q, q, J, s): every matrix entry is a contiguous (J, s) array, so the
    # q x q algebra below is a few vectorised operations per entry (batched 2 x 2 linear algebra
    # in numpy is slow); the blocks enter through matmuls.
    if q:
        m = st.blocks.m  # (J, q, q)
        # K[(a, e, j), (b, c)] = M[j, a, b] M[j, e, c], so that A_j = M_j Sigma M_j' is K @ vec(Sigma)
        kron = np.einsum("jab,jec->aejbc", m, m).reshape(q * q * j, q * q)
        f_flat = np.swapaxes(st.blocks.f, 0, 1).reshape(q * j, p)  # rows (k, j)
        e_t = st.e_star.T[:, :, None]  # (q, J, 1)
        sigma_u = np.asarray(sigma_u, float)
    for sl in _blocks(n_draws, j * max(q * q, p * p, 1)):
        s2 = sigma[sl] ** 2  # (s,)
        delta = beta[sl] - st.residual.beta_star  # (s, p)
        outer = (delta[:, :, None] * delta[:, None, :]).reshape(-1, p * p)
        rss = res.rss[:, None] - 2.0 * res.b @ delta.T + c_flat @ outer.T  # (J, s)
        rss = np.maximum(rss, 0.0)  # round-off only: RSSperp_j >= 0
        total = n * _LOG_2PI + (n - q) * np.log(s2)[None, :] + rss / s2[None, :]
        if q:
            a = (kron @ sigma_u[sl].reshape(-1, q * q).T).reshape(q, q, j, -1)
            for k in range(q):
                a[k, k] += s2[None, :]
            low = _cholesky(a)
            dvec = e_t - (f_flat @ delta.T).reshape(q, j, -1)
            v = _forward(low, dvec)
            for k in range(q):
                total += 2.0 * np.log(low[k][k]) + v[k] * v[k]
        out[sl] = -0.5 * total.T
    return out


def _cholesky(a: np.ndarray) -> list[list[np.ndarray]]:
    """Lower Cholesky factors of a batch of small positive-definite matrices, entry by entry.

    ``a`` is (q, q, ...): entry (i, k) of every matrix of the batch is ``a[i, k]``. Returns
    ``low[i][k]`` (i >= k), each an array of the batch's shape.

    Raises
    ------
    numpy.linalg.LinAlgError
        When a matrix is not positive definite.
    """
    q = a.shape[0]
    low: list[list[np.ndarray]] = [[None] * q for _ in range(q)]  # type: ignore[list-item]
    for k in range(q):
        diag = a[k, k] - sum(low[k][i] ** 2 for i in range(k)) if k else a[k, k]
        if not np.all(diag > 0):
            raise np.linalg.LinAlgError("a per-group covariance sigma^2 I + M Sigma M' is not positive definite "
                                        "(sigma = 0 in a draw?)")
        low[k][k] = np.sqrt(diag)
        for i in range(k + 1, q):
            acc = a[i, k] - sum(low[i][t] * low[k][t] for t in range(k)) if k else a[i, k]
            low[i][k] = acc / low[k][k]
    return low


def _forward(low: list[list[np.ndarray]], rhs: np.ndarray) -> list[np.ndarray]:
    """L^-1 rhs for the factors of :func:`_cholesky` and ``rhs`` (q, ...): one vectorised step per entry."""
    q = len(low)
    v: list[np.ndarray] = []
    for k in range(q):
        acc = rhs[k] - sum(low[k][i] * v[i] for i in range(k)) if k else rhs[k]
        v.append(acc / low[k][k])
    return v


def pointwise_loglik(d: Design, beta: np.ndarray, sigma: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    """log normal(y_i | X_i beta + Z_i u_g[i], sigma) per draw and row.

    Parameters
    ----------
    d : Design
        With its rows (kept, or rebuilt from the table).
    beta : numpy.ndarray (S, p)
    sigma : numpy.ndarray (S,)
    u : numpy.ndarray (S, J, q) or None
        Draws of the group effects (None when q = 0).

    Returns
    -------
    numpy.ndarray (S, N)

    Raises
    ------
    ValueError
        When the model has group terms and no draws of u are given.
    """
    _, p, q = d.stats.shape
    if q and u is None:
        raise ValueError("the pointwise log likelihood needs draws of the group effects u; fit with keep_u=True")
    rows = d.row_data()
    u = None if u is None else np.asarray(u, float)
    beta = np.asarray(beta, float).reshape(-1, p)
    sigma = np.asarray(sigma, float).reshape(-1)
    n_draws = beta.shape[0]
    out = np.empty((n_draws, d.N))
    for sl in _blocks(n_draws, d.N * max(q, 1)):
        mu = beta[sl] @ rows.x.T  # (s, N)
        for k in range(q):  # one gather per group term: no (s, N, q) temporary
            mu += np.ascontiguousarray(u[sl, :, k])[:, rows.codes] * rows.z[:, k]
        sd = sigma[sl][:, None]
        resid = (rows.y[None, :] - mu) / sd
        out[sl] = -0.5 * (_LOG_2PI + resid * resid) - np.log(sd)
    return out
