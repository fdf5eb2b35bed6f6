"""Per-group sufficient statistics: the only view of the data the marginal and collapsed programs need.

For the model y = X beta + Z u_g + e, e ~ N(0, sigma^2), u_j ~ N(0, Sigma), two passes over
the rows (in chunks, so the data never need to fit in memory at once) give everything:

**Pass 1** (:class:`GroupSums`, additive over chunks and partitions): per group j the count
n_j, G_j = Z_j'Z_j, Z_j'X_j, Z_j'y_j; globally X'X, X'y, y'y and column sums.

**Blocks** (:func:`group_blocks`, from pass 1): the eigen-decomposition G_j = W Lambda W',
keeping the k_j eigenvalues above a relative tolerance, S_j = Lambda^(1/2) and

    M_j = S_j W_j'                  (k x q)  so that Z_j Sigma Z_j' acts as M_j Sigma M_j'
    e_j = S_j^-1 W_j' Z_j'y_j       (k)      = U_j'y with U_j = Z_j W_j S_j^-1 orthonormal
    F_j = S_j^-1 W_j' Z_j'X_j       (k x p)  = U_j'X

padded with zero rows to q rows (a padded row adds exactly log sigma^2 to log det V_j,
which the programs account for).

**Pass 2** (:func:`residual_qr`): the part of y and X orthogonal to every group's Z,
row by row (y - Z_i G_j^+ Z_j'y_j, likewise X), reduced by a streaming QR (TSQR). It gives
RSSperp(beta) = sum_j |r_j|^2 - |U_j'r_j|^2 = RSSmin + (beta - beta*)' C2 (beta - beta*)
with RSSmin taken from the residual vector itself (never y'y minus a projection: that
difference of large sums loses every digit when the data fit exactly), so the marginal
and collapsed densities stay exact as sigma -> 0. Groups with k_j = n_j contribute
exactly 0 and are skipped.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator

import numpy as np

__all__ = ["GroupSums", "GroupBlocks", "ResidualStats", "SufficientStats", "group_blocks", "residual_qr", "sufficient_stats", "RANK_TOL"]

#: Eigenvalues of G_j below RANK_TOL times its largest count as zero (Z_j rank-deficient).
RANK_TOL = 1e-10
#: Singular values of the residual design below this fraction of the largest count as zero.
NULL_TOL = 1e-11

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # y (n), X (n, p), Z (n, q), codes (n)


@dataclasses.dataclass
class GroupSums:
    """Pass 1: additive sums over rows, per group and global.

    Attributes
    ----------
    n : numpy.ndarray (J,)
        Rows per group.
    ztz : numpy.ndarray (J, q, q)
    ztx : numpy.ndarray (J, q, p)
    zty : numpy.ndarray (J, q)
    xtx : numpy.ndarray (p, p)
    xty : numpy.ndarray (p,)
    yty : float
    y_sum : float
    x_sum : numpy.ndarray (p,)
    z_sum, z_sq : numpy.ndarray (q,)
        Column sums and sums of squares of Z (for data-scaled priors and checks).
    """

    n: np.ndarray
    ztz: np.ndarray
    ztx: np.ndarray
    zty: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    y_sum: float
    x_sum: np.ndarray
    z_sum: np.ndarray
    z_sq: np.ndarray

    @classmethod
    def zeros(cls, n_groups: int, p: int, q: int) -> "GroupSums":
        """Empty sums for J groups, p common and q group terms."""
        j = int(n_groups)
        return cls(np.zeros(j, dtype=np.int64), np.zeros((j, q, q)), np.zeros((j, q, p)), np.zeros((j, q)),
                   np.zeros((p, p)), np.zeros(p), 0.0, 0.0, np.zeros(p), np.zeros(q), np.zeros(q))

    @property
    def N(self) -> int:  # noqa: N802 - the model's N
        """Total rows."""
        return int(self.n.sum())

    @property
    def shape(self) -> tuple[int, int, int]:
        """(J, p, q)."""
        return int(self.n.size), int(self.xtx.shape[0]), int(self.zty.shape[1])

    def add(self, y: np.ndarray, x: np.ndarray, z: np.ndarray, codes: np.ndarray) -> "GroupSums":
        """Add the rows of one chunk (in place); return self."""
        j, p, q = self.shape
        codes = np.asarray(codes, dtype=np.int64)
        self.n += np.bincount(codes, minlength=j)
        for a in range(q):
            za = z[:, a]
            self.zty[:, a] += np.bincount(codes, weights=za * y, minlength=j)
            for b in range(a, q):
                s = np.bincount(codes, weights=za * z[:, b], minlength=j)
                self.ztz[:, a, b] += s
                if b != a:
                    self.ztz[:, b, a] += s
            for c in range(p):
                self.ztx[:, a, c] += np.bincount(codes, weights=za * x[:, c], minlength=j)
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.yty += float(y @ y)
        self.y_sum += float(y.sum())
        self.x_sum += x.sum(axis=0)
        self.z_sum += z.sum(axis=0)
        self.z_sq += (z * z).sum(axis=0)
        return self

    def combine(self, other: "GroupSums") -> "GroupSums":
        """The sums of both (for partitions computed apart); neither is changed."""
        if self.shape != other.shape:
            raise ValueError(f"cannot combine sums of shapes {self.shape} and {other.shape}")
        return GroupSums(self.n + other.n, self.ztz + other.ztz, self.ztx + other.ztx, self.zty + other.zty,
                         self.xtx + other.xtx, self.xty + other.xty, self.yty + other.yty,
                         self.y_sum + other.y_sum, self.x_sum + other.x_sum, self.z_sum + other.z_sum,
                         self.z_sq + other.z_sq)

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk], n_groups: int, p: int, q: int) -> "GroupSums":
        """Pass 1 over an iterable of ``(y, X, Z, codes)`` chunks."""
        out = cls.zeros(n_groups, p, q)
        for y, x, z, codes in chunks:
            out.add(y, x, z, codes)
        return out


@dataclasses.dataclass
class GroupBlocks:
    """Per-group blocks from the eigen-decomposition of G_j, padded to q rows.

    Attributes
    ----------
    rank : numpy.ndarray (J,)
        k_j, the rank of Z_j.
    m : numpy.ndarray (J, q, q)
        M_j = S_j W_j' (rows beyond k_j are zero).
    e : numpy.ndarray (J, q)
        e_j = S_j^-1 W_j' Z_j'y_j.
    f : numpy.ndarray (J, q, p)
        F_j = S_j^-1 W_j' Z_j'X_j.
    hy : numpy.ndarray (J, q)
        G_j^+ Z_j'y_j (projection coefficients of pass 2).
    hx : numpy.ndarray (J, q, p)
        G_j^+ Z_j'X_j.
    """

    rank: np.ndarray
    m: np.ndarray
    e: np.ndarray
    f: np.ndarray
    hy: np.ndarray
    hx: np.ndarray

    @property
    def K(self) -> int:  # noqa: N802 - the model's K
        """Sum of the ranks."""
        return int(self.rank.sum())


def group_blocks(sums: GroupSums, tol: float = RANK_TOL) -> GroupBlocks:
    """Eigen-decompose every G_j (batched) and build M_j, e_j, F_j and the projections.

    Parameters
    ----------
    sums : GroupSums
    tol : float
        Relative tolerance: eigenvalues <= tol * max eigenvalue of G_j count as zero.
    """
    j, p, q = sums.shape
    rank = np.zeros(j, dtype=np.int64)
    m = np.zeros((j, q, q))
    e = np.zeros((j, q))
    f = np.zeros((j, q, p))
    hy = np.zeros((j, q))
    hx = np.zeros((j, q, p))
    if q == 0 or j == 0:
        return GroupBlocks(rank, m, e, f, hy, hx)
    lam, w = np.linalg.eigh(sums.ztz)  # ascending eigenvalues, (J, q) and (J, q, q)
    lam, w = lam[:, ::-1], w[:, :, ::-1]  # largest first: kept rows come first
    top = lam[:, :1]
    keep = lam > tol * np.where(top > 0, top, np.inf)
    rank = keep.sum(axis=1).astype(np.int64)
    s = np.sqrt(np.where(keep, lam, 0.0))
    inv_s = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
    wt = np.swapaxes(w, 1, 2)  # rows are eigenvectors
    m = s[:, :, None] * wt
    e = inv_s * np.einsum("jab,jb->ja", wt, sums.zty)
    f = inv_s[:, :, None] * np.einsum("jab,jbc->jac", wt, sums.ztx)
    # G^+ = W diag(1/lambda) W' on the kept eigenvalues
    inv_lam = inv_s * inv_s
    ginv = np.einsum("jak,jk,jbk->jab", w, inv_lam, w)
    hy = np.einsum("jab,jb->ja", ginv, sums.zty)
    hx = np.einsum("jab,jbc->jac", ginv, sums.ztx)
    return GroupBlocks(rank, m, e, f, hy, hx)


@dataclasses.dataclass
class ResidualStats:
    """Pass 2: RSSperp(beta) = rss_min + (beta - beta_star)' c2 (beta - beta_star).

    Attributes
    ----------
    c2 : numpy.ndarray (p, p)
    beta_star : numpy.ndarray (p,)
        A minimiser (the minimum-norm one when c2 is singular, e.g. for group-level predictors).
    rss_min : float
        The minimum, from the residual vector itself.
    r : numpy.ndarray (p + 1, p + 1)
        The TSQR factor of [X_perp, y_perp] (upper triangular).
    null_rank : int
        Dimension of the null space of c2 (directions only the group effects inform).
    """

    c2: np.ndarray
    beta_star: np.ndarray
    rss_min: float
    r: np.ndarray
    null_rank: int


def residual_rows(y: np.ndarray, x: np.ndarray, z: np.ndarray, codes: np.ndarray, sums: GroupSums,
                  blocks: GroupBlocks) -> np.ndarray:
    """[X_perp, y_perp] for one chunk: the rows with every group's Z projected out.

    Rows of groups with k_j = n_j (fully explained by their own Z) are exactly zero.
    """
    q = z.shape[1]
    if q:
        yp = y - np.einsum("nq,nq->n", z, blocks.hy[codes])
        xp = x - np.einsum("nq,nqp->np", z, blocks.hx[codes])
        full = (blocks.rank == sums.n)[codes]
        yp[full] = 0.0
        xp[full] = 0.0
    else:
        yp, xp = y, x
    return np.column_stack([xp, yp])


def tsqr_factor(rows: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Upper-triangular R of ``vstack([previous, rows])`` (a streaming QR step), padded to square."""
    stacked = rows if previous is None else np.vstack([previous, rows])
    width = stacked.shape[1]
    if stacked.shape[0] == 0:
        return np.zeros((width, width))
    r = np.linalg.qr(stacked, mode="r")
    if r.shape[0] < width:
        r = np.vstack([r, np.zeros((width - r.shape[0], width))])
    return r


def residual_qr(chunks: Iterable[Chunk], sums: GroupSums, blocks: GroupBlocks) -> ResidualStats:
    """Pass 2 over the same rows as pass 1: TSQR of the projected residual design."""
    r = None
    for y, x, z, codes in chunks:
        r = tsqr_factor(residual_rows(y, x, z, codes, sums, blocks), r)
    p = sums.xtx.shape[0]
    if r is None:
        r = np.zeros((p + 1, p + 1))
    return residual_stats(r, np.sqrt(np.diag(sums.xtx)))


def residual_stats(r: np.ndarray, x_norms: np.ndarray | None = None) -> ResidualStats:
    """beta*, RSSmin and C2 from the TSQR factor of [X_perp, y_perp].

    Parameters
    ----------
    r : numpy.ndarray (p + 1, p + 1)
    x_norms : numpy.ndarray (p,), optional
        Norms of the columns of X itself (before projection): a direction of C2 whose
        singular value is below :data:`NULL_TOL` times them is a null direction (e.g. a
        group-level predictor next to a group intercept leaves only round-off).
    """
    p = r.shape[0] - 1
    r_xx, r_xy, r_yy = r[:p, :p], r[:p, p], float(r[p, p])
    c2 = r_xx.T @ r_xx
    if p == 0:
        return ResidualStats(c2, np.zeros(0), r_yy * r_yy, r, 0)
    norms = np.ones(p) if x_norms is None else np.where(np.asarray(x_norms) > 0, x_norms, 1.0)
    u, s, vt = np.linalg.svd(r_xx / norms[None, :])
    keep = s > NULL_TOL
    uk, sk, vk = u[:, keep], s[keep], vt[keep].T
    coef = uk.T @ r_xy
    beta_star = (vk @ (coef / sk)) / norms
    left = r_xy - uk @ coef  # the part of r_xy no beta can reach (null directions of C2)
    rss_min = r_yy * r_yy + float(left @ left)
    if (~keep).any():
        # Null directions carry only round-off: drop it from C2 as well, so C2 and beta* agree.
        s_clean = np.where(keep, s, 0.0)
        r_clean = (u * s_clean) @ vt * norms[None, :]
        c2 = r_clean.T @ r_clean
    return ResidualStats(c2, beta_star, rss_min, r, int((~keep).sum()))


def chunked(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` of at most ``size`` rows."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@dataclasses.dataclass
class SufficientStats:
    """Everything the marginal and collapsed programs need: per-group blocks and residual statistics.

    Attributes
    ----------
    sums : GroupSums
    blocks : GroupBlocks
    residual : ResidualStats
    e_star : numpy.ndarray (J, q)
        e_j - F_j beta*: what the programs use, so that beta enters as beta - beta*.
    """

    sums: GroupSums
    blocks: GroupBlocks
    residual: ResidualStats
    e_star: np.ndarray

    @property
    def N(self) -> int:  # noqa: N802
        """Total rows."""
        return self.sums.N

    @property
    def shape(self) -> tuple[int, int, int]:
        """(J, p, q)."""
        return self.sums.shape

    @property
    def K(self) -> int:  # noqa: N802
        """Sum of the group ranks."""
        return self.blocks.K


def sufficient_stats(chunks: Callable[[], Iterable[Chunk]], n_groups: int, p: int, q: int,
                     sums: GroupSums | None = None) -> SufficientStats:
    """Both passes over the rows.

    Parameters
    ----------
    chunks : callable
        Returns a fresh iterable of ``(y, X, Z, codes)`` chunks each time it is called
        (it is called twice: once per pass; once if ``sums`` is given).
    n_groups, p, q : int
    sums : GroupSums, optional
        Pass 1 already done (e.g. on a cluster).
    """
    if sums is None:
        sums = GroupSums.from_chunks(chunks(), n_groups, p, q)
    blocks = group_blocks(sums)
    residual = residual_qr(chunks(), sums, blocks)
    e_star = blocks.e - np.einsum("jqp,p->jq", blocks.f, residual.beta_star)
    return SufficientStats(sums, blocks, residual, e_star)
