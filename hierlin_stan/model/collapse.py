"""The notebook model's marginal and collapsed densities: constants from the rows, scaling, numpy twins.

Both Stan programs (``marginal.stan``, ``collapsed.stan`` and their fused twins) take the
per-group sums n_j, Sx_j, Sxx_j and constants computed **once, here, from the rows**, so
that nothing large cancels inside Stan (:func:`row_constants`):

* ``RSSperp(a) = sum_j [sum (y - a)^2 - (sum x (y - a))^2 / Sxx_j] = rss_min + c2 (a - a*)^2``.
  Written per row as ``sum (v_i - a u_i)^2`` with ``u_i = 1 - x_i Sx_j / Sxx_j`` and
  ``v_i = y_i - x_i Sxy_j / Sxx_j`` (``u = 1, v = y`` for a group whose x are all 0), so
  ``c2 = sum u^2``, ``a* = sum u v / c2`` and ``rss_min`` is the sum of squares of the
  residual vector ``v - a* u`` itself. The textbook ``c0 + c1 a + c2 a^2`` from y'y-type
  sums loses every digit when the data fit exactly (c0 ~ 1e7 against a minimum ~ 1e-19 on
  ``simulate(groups=[100_000] * 100)``: an error of 350 in the log density at eps = 1e-4).
  One-point groups with x != 0 contribute exactly 0 and are left out.
* ``r*_j = sum_i x_i (y_i - a* - mu* x_i)`` per group, with ``mu* = sum x (y - a*) / sum x^2``:
  then ``Sxr_j(a, mu_b) = r*_j - (a - a*) Sx_j - (mu_b - mu*) Sxx_j``.

The collapsed program also gets an affine scaling of its two unconstrained coordinates
(:func:`collapsed_scaling`): a centre and a width of log sigma_b and log eps (logit for
uniform priors) from least squares. Stan's diagonal-metric adaptation regularises every
variance towards 1e-3, far too wide for eps at N = 1e7; and random inits far from the mode
cost minutes of warm-up at J = 1e6.

The numpy functions :func:`collapsed_loglik`, :func:`beta_conditional` and :func:`draw_b`
are the Stan programs' formulas (tests hold them equal), used for checks and to draw the
slopes after sampling when J is too large for Stan to write them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

__all__ = ["RowConstants", "row_constants", "collapsed_scaling", "scale_to_unconstrained", "collapsed_loglik",
           "beta_conditional", "draw_b", "CHUNK_ROWS"]

#: Rows per chunk of the passes over the data (bounds the temporary memory).
CHUNK_ROWS = 1 << 20


@dataclasses.dataclass(frozen=True, eq=False)
class RowConstants:
    """Constants of the marginal and collapsed programs, computed from the rows.

    Attributes
    ----------
    a_star, c2, rss_min : float
        RSSperp(a) = rss_min + c2 (a - a_star)^2 (c2 = 0: RSSperp does not depend on a, and
        a_star is the pooled least-squares intercept).
    mu_star : float
        sum x (y - a*) / sum x^2 (the centre of mu_b).
    r_star : numpy.ndarray (J,)
        sum_i x_i (y_i - a* - mu* x_i) per group.
    """

    a_star: float
    mu_star: float
    c2: float
    rss_min: float
    r_star: np.ndarray

    def to_stan_data(self) -> dict[str, Any]:
        """The entries of the programs' data."""
        return {"a_star": self.a_star, "mu_star": self.mu_star, "c2": self.c2, "rss_min": self.rss_min,
                "r_star": self.r_star}


def _chunks(n: int) -> list[slice]:
    return [slice(s, min(n, s + CHUNK_ROWS)) for s in range(0, n, CHUNK_ROWS)] or [slice(0, 0)]


def row_constants(x: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int) -> RowConstants:
    """a*, mu*, c2, rss_min and r*_j from the rows (three passes, in chunks of :data:`CHUNK_ROWS`).

    Parameters
    ----------
    x, y : numpy.ndarray
        The observations.
    group : numpy.ndarray of int
        Group labels 1..n_groups.
    n_groups : int
        J.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    idx = np.asarray(group, dtype=np.int64) - 1
    j = int(n_groups)
    n = np.bincount(idx, minlength=j)
    sx = np.bincount(idx, x, minlength=j)
    sxx = np.bincount(idx, x * x, minlength=j)
    sxy = np.bincount(idx, x * y, minlength=j)
    pos = sxx > 0
    safe = np.where(pos, sxx, 1.0)
    ratio_x, ratio_y = np.where(pos, sx / safe, 0.0), np.where(pos, sxy / safe, 0.0)
    kept_group = (n >= 2) | ~pos  # a one-point group with x != 0 has RSSperp = 0 exactly

    def uv(part: slice) -> tuple[np.ndarray, np.ndarray]:
        g = idx[part]
        keep = kept_group[g]
        xs, g = x[part][keep], g[keep]
        return 1.0 - xs * ratio_x[g], y[part][keep] - xs * ratio_y[g]

    suu = suv = 0.0
    for part in _chunks(x.size):
        u, v = uv(part)
        suu += float(u @ u)
        suv += float(u @ v)
    if suu > 0:
        a_star = suv / suu
    else:  # RSSperp does not depend on a: centre a on the pooled least-squares intercept
        xm, ym = float(x.mean()), float(y.mean())
        sxx_c = float(np.sum((x - xm) ** 2))
        slope = float(np.sum((x - xm) * (y - ym)) / sxx_c) if sxx_c > 0 else 0.0
        a_star = ym - slope * xm
    rss = 0.0
    for part in _chunks(x.size):
        u, v = uv(part)
        res = v - a_star * u  # the residual vector itself: no difference of large sums
        rss += float(res @ res)
    total_xx = float(sxx.sum())
    mu_star = float(np.sum(x * (y - a_star)) / total_xx) if total_xx > 0 else 0.0
    r_star = np.zeros(j)
    for part in _chunks(x.size):
        xs = x[part]
        r_star += np.bincount(idx[part], xs * (y[part] - a_star - mu_star * xs), minlength=j)
    return RowConstants(float(a_star), mu_star, float(suu), rss, r_star)


# ------------------------------------------------------------------ scaling
def scale_to_unconstrained(value: float, family: str | int, scale: float) -> float:
    """The collapsed program's unconstrained value of a scale parameter (before offset/multiplier).

    ``logit(value / scale)`` for a uniform(0, scale) prior (family ``"uniform"`` or 1),
    ``log(value)`` for a half-normal one.
    """
    if family in ("uniform", 1):
        p = value / scale
        return math.log(p) - math.log1p(-p)
    return math.log(value)


def collapsed_scaling(constants: RowConstants, n_group: np.ndarray, sum_xx: np.ndarray,
                      priors: Mapping[str, Any]) -> dict[str, float]:
    """Offsets and multipliers of the collapsed program's unconstrained (sigma_b, eps).

    Centres from least squares: sigma_b from the robust spread (1.4826 MAD) of the per-group
    least-squares slopes of the better-determined half of the groups (largest Sxx; with
    noise, slopes of groups with x near 0 carry errors eps / x, unbounded, which put a plain
    standard deviation far out); eps from sqrt(rss_min / (N - K)) (0.1 sigma_b when N - K < 2:
    one point per group leaves no residual information on eps). Widths: the smallest
    plausible posterior sd of the log, 1 / sqrt(2 K) and 1 / sqrt(2 (N - K)) (1 for the
    guessed eps): too small a width only makes the adapted metric larger (harmless), too
    large a one brings back the 1e-3 regularisation of Stan's adaptation.

    Parameters
    ----------
    constants : RowConstants
    n_group, sum_xx : numpy.ndarray
        Per-group counts and sums of x^2.
    priors : mapping
        ``Priors.to_stan_data()`` (families 1 = uniform, 2 = half-normal, and scales).
    """
    sxx = np.asarray(sum_xx, dtype=float)
    pos = sxx > 0
    n_total, k = int(np.sum(n_group)), int(pos.sum())
    slopes = constants.mu_star + np.asarray(constants.r_star)[pos] / sxx[pos]
    sb = 1.0
    if k > 1:
        top = slopes[sxx[pos] >= np.median(sxx[pos])]
        sb = float(1.4826 * np.median(np.abs(top - np.median(top))))
        if not sb > 0:
            sb = float(np.std(slopes)) or 1.0
    if n_total - k >= 2 and constants.rss_min > 0:
        ep, ep_width = math.sqrt(constants.rss_min / (n_total - k)), 1.0 / math.sqrt(2.0 * (n_total - k))
    else:
        ep, ep_width = 0.1 * sb, 1.0
    out: dict[str, float] = {}
    for name, value, width in (("sigma_b", sb, 1.0 / math.sqrt(2.0 * max(k, 1))), ("eps", ep, ep_width)):
        family, scale = priors[f"{name}_family"], float(priors[f"{name}_scale"])
        if family == 1:  # u = logit(s / scale): du / dlog s = 1 / (1 - s / scale)
            value = min(max(value, 1e-8 * scale), 0.9 * scale)
            out[f"{name}_offset"] = scale_to_unconstrained(value, 1, scale)
            out[f"{name}_multiplier"] = width / (1.0 - value / scale)
        else:
            out[f"{name}_offset"] = math.log(max(value, 1e-300))
            out[f"{name}_multiplier"] = width
    return out


# ------------------------------------------------------------ numpy twins
def _positive(sums: Mapping[str, np.ndarray], constants: RowConstants) -> tuple[np.ndarray, ...]:
    sxx = np.asarray(sums["sum_xx"], dtype=float)
    pos = sxx > 0
    return np.asarray(sums["sum_x"], dtype=float)[pos], sxx[pos], np.asarray(constants.r_star)[pos]


def _collapsed_parts(sums: Mapping[str, np.ndarray], constants: RowConstants, priors: Mapping[str, Any],
                     sigma_b: float, eps: float) -> dict[str, Any]:
    sx, sxx, r = _positive(sums, constants)
    e, s = eps * eps, sigma_b * sigma_b
    d = e + s * sxx
    t = 1.0 / (sxx * d)
    va, vm = float(priors["a_scale"]) ** 2, float(priors["mu_b_scale"]) ** 2
    pa0, pm0 = float(priors["a_loc"]) - constants.a_star, float(priors["mu_b_loc"]) - constants.mu_star
    pmat = np.array([[constants.c2 / e + np.sum(t * sx * sx) + 1.0 / va, np.sum(t * sx * sxx)],
                     [np.sum(t * sx * sxx), np.sum(t * sxx * sxx) + 1.0 / vm]])
    g = np.array([pa0 / va + np.sum(t * sx * r), pm0 / vm + np.sum(t * sxx * r)])
    chol = np.linalg.cholesky(pmat)
    m = np.linalg.solve(pmat, g)
    return {"sx": sx, "sxx": sxx, "r": r, "d": d, "t": t, "e": e, "va": va, "vm": vm, "p0": (pa0, pm0),
            "chol": chol, "m": m}


def collapsed_loglik(sums: Mapping[str, np.ndarray], constants: RowConstants, priors: Mapping[str, Any],
                     sigma_b: float, eps: float) -> float:
    """log p(y | sigma_b, eps) with the slopes and (a, mu_b) integrated out: ``collapsed.stan``'s likelihood.

    Parameters
    ----------
    sums : mapping
        :meth:`Dataset.group_sums` (``n_group``, ``sum_x``, ``sum_xx``).
    constants : RowConstants
    priors : mapping
        ``Priors.to_stan_data()``: the normal priors of a and mu_b are integrated against.
    sigma_b, eps : float
    """
    k = _collapsed_parts(sums, constants, priors, sigma_b, eps)
    n_total, big_k = int(np.sum(sums["n_group"])), k["sxx"].size
    m1, m2 = k["m"]
    res = k["r"] - m1 * k["sx"] - m2 * k["sxx"]
    pa0, pm0 = k["p0"]
    quad = (float(np.sum(k["t"] * res * res)) + constants.c2 * m1 * m1 / k["e"] + (m1 - pa0) ** 2 / k["va"]
            + (m2 - pm0) ** 2 / k["vm"])
    logdet = 2.0 * float(np.log(np.diag(k["chol"])).sum())
    return -0.5 * (n_total * math.log(2 * math.pi) + (n_total - big_k) * math.log(k["e"])
                   + float(np.log(k["d"]).sum()) + math.log(k["va"]) + math.log(k["vm"]) + logdet
                   + constants.rss_min / k["e"] + quad)


def beta_conditional(sums: Mapping[str, np.ndarray], constants: RowConstants, priors: Mapping[str, Any],
                     sigma_b: float, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (a, mu_b) | sigma_b, eps, y: what ``collapsed.stan`` draws from."""
    k = _collapsed_parts(sums, constants, priors, sigma_b, eps)
    chol_inv = np.linalg.inv(k["chol"])
    return np.array([constants.a_star, constants.mu_star]) + k["m"], chol_inv.T @ chol_inv


def draw_b(sums: Mapping[str, np.ndarray], constants: RowConstants, a: np.ndarray, mu_b: np.ndarray,
           sigma_b: np.ndarray, eps: np.ndarray, rng: np.random.Generator,
           out: np.ndarray | None = None) -> np.ndarray:
    """Draw the slopes b | a, mu_b, sigma_b, eps, y exactly, one row per draw (the programs' formula).

    ``b_j ~ N(mu_b + sigma_b^2 Sxr_j / d_j, sigma_b eps / sqrt(d_j))`` with ``d_j = eps^2 + sigma_b^2 Sxx_j``
    and ``Sxr_j = r*_j - (a - a*) Sx_j - (mu_b - mu*) Sxx_j``; the prior N(mu_b, sigma_b) for a
    group without x-information.

    Parameters
    ----------
    a, mu_b, sigma_b, eps : numpy.ndarray (n,)
        Hyperparameter draws.
    rng : numpy.random.Generator
    out : numpy.ndarray (n, J), optional
        Written in place (e.g. float32, to halve the memory).
    """
    sx = np.asarray(sums["sum_x"], dtype=float)
    sxx = np.asarray(sums["sum_xx"], dtype=float)
    r = np.asarray(constants.r_star, dtype=float)
    n = np.size(a)
    if out is None:
        out = np.empty((n, sx.size))
    for i in range(n):  # one draw at a time: temporaries of size J, not n x J
        e, s = float(eps[i]) ** 2, float(sigma_b[i]) ** 2
        d = e + s * sxx
        sxr = r - (float(a[i]) - constants.a_star) * sx - (float(mu_b[i]) - constants.mu_star) * sxx
        out[i] = float(mu_b[i]) + s * sxr / d + np.sqrt(s * e / d) * rng.standard_normal(sx.size)
    return out
