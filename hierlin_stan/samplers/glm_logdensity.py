"""Stan's log density of the general programs in numpy, on Stan's unconstrained space, many points at once.

:class:`GLMTarget` reproduces ``lp__`` (Stan's ``log_prob`` with ``jacobian=True``) of
``glm_marginal.stan``, ``glm_collapsed.stan``, ``glm_centered.stan`` and
``glm_noncentered.stan`` for a :class:`~hierlin_stan.model.glm.Design` and its priors:
every density is fully normalised (the programs use ``target +=``), the unconstrained
coordinates are Stan's, in Stan's order, and the Jacobians of Stan's transforms are added.

Coordinates, in the order of the programs' ``parameters`` blocks:

* ``beta`` (p; not in ``collapsed``): unconstrained, identity.
* ``tau`` (q), ``sigma``: ``<lower=0, upper=U>`` with U the upper end of a
  ``uniform(0, U)`` prior, else no upper bound. Stan's ``lub_constrain``:
  ``s = U inv_logit(x)``, ``log|J| = log U + log_inv_logit(x) + log1m_inv_logit(x)``;
  with U infinite ``lb_constrain``: ``s = exp(x)``, ``log|J| = x``.
* ``L_Omega`` (``cholesky_factor_corr[q]`` for correlated terms, q >= 2): q(q-1)/2
  unconstrained values y, ``z = tanh(y)`` (canonical partial correlations,
  ``log|J| += sum log(1 - z^2)``), then row by row, Stan's ``cholesky_corr_constrain``:
  ``L[i, 0] = z``; ``L[i, j] = z sqrt(1 - sum_{k<j} L[i, k]^2)`` with
  ``log|J| += 0.5 log(1 - sum_{k<j} L[i, k]^2)``; ``L[i, i] = sqrt(1 - sum_{k<i} L[i, k]^2)``.
* ``u`` (``centered``) or ``z`` (``noncentered``), ``matrix[J, q]``: identity, in Stan's
  column-major order (u[1, 1], u[2, 1], ..., u[J, 1], u[1, 2], ...).

Densities (each exactly the ``target +=`` statements of its program):

* priors: ``normal_lpdf(beta | loc, scale)``, ``glm_scale_lpdf`` of each tau and of sigma
  (uniform, half-normal, half-Student-t, exponential; normalised), and
  ``lkj_corr_cholesky_lpdf(L_Omega | eta)`` with its constant;
* ``marginal``: :func:`hierlin_stan.model.glm_density.marginal_loglik` (u integrated out);
* ``collapsed``: :func:`~hierlin_stan.model.glm_density.collapsed_loglik` (beta too);
* ``centered``: ``multi_normal_cholesky_lpdf(u_j | 0, L)`` per group and
  ``normal_lpdf(y | X beta + rows_dot_product(Z, u[g]), sigma)``;
* ``noncentered``: ``std_normal_lpdf(z)`` and the same likelihood with ``u = z L'``.

Points are rows: ``theta`` has shape (k, dim) (or (dim,)), the result (k,) (or a float),
so all chains of a sampler are evaluated with one call; for one or two group terms the
per-group algebra is in closed form, vectorised over points and groups.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy.special import gammaln

from ..model.glm import Design
from ..model.glm_density import lkj_constant
from ..model.glm_priors import SCALE_FAMILY_CODES, GLMPriors, resolve_glm_priors
from .logdensity import PointsDensity

__all__ = ["GLM_KINDS", "GLMTarget", "cholesky_corr_constrain", "cholesky_corr_free"]

#: The Stan programs a :class:`GLMTarget` reproduces (``glm_<kind>.stan``).
GLM_KINDS: tuple[str, ...] = ("marginal", "collapsed", "centered", "noncentered")

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
_UNIFORM = SCALE_FAMILY_CODES["uniform"]
_HALFNORMAL = SCALE_FAMILY_CODES["halfnormal"]
_HALFT = SCALE_FAMILY_CODES["halfstudent_t"]
_EXPONENTIAL = SCALE_FAMILY_CODES["exponential"]


# ------------------------------------------------------------------ transforms
def _log_inv_logit(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def cholesky_corr_constrain(y: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Stan's ``cholesky_corr_constrain``: (k, q(q-1)/2) unconstrained -> (k, q, q) Cholesky factors.

    Returns
    -------
    (L, log_jacobian)
        ``L`` (k, q, q) lower triangular with unit-norm rows; ``log_jacobian`` (k,).
    """
    y = np.asarray(y, float)
    k = y.shape[0]
    low = np.zeros((k, q, q))
    if q == 0:
        return low, np.zeros(k)
    low[:, 0, 0] = 1.0
    z = np.tanh(y)
    # log(1 - tanh(y)^2) = 2 (log 2 - |y| - log1p(exp(-2|y|))), stable for large |y|
    ay = np.abs(y)
    lp = (2.0 * (_LOG_2 - ay - np.log1p(np.exp(-2.0 * ay)))).sum(axis=1)
    pos = 0
    for i in range(1, q):
        low[:, i, 0] = z[:, pos]
        pos += 1
        sum_sqs = low[:, i, 0] ** 2
        for j in range(1, i):
            lp = lp + 0.5 * np.log1p(-sum_sqs)
            low[:, i, j] = z[:, pos] * np.sqrt(1.0 - sum_sqs)
            pos += 1
            sum_sqs = sum_sqs + low[:, i, j] ** 2
        low[:, i, i] = np.sqrt(1.0 - sum_sqs)
    return low, lp


def cholesky_corr_free(low: np.ndarray) -> np.ndarray:
    """Inverse of :func:`cholesky_corr_constrain`: (k, q, q) Cholesky factors -> (k, q(q-1)/2)."""
    low = np.asarray(low, float)
    k, q = low.shape[0], low.shape[1]
    out = np.empty((k, q * (q - 1) // 2))
    pos = 0
    for i in range(1, q):
        out[:, pos] = np.arctanh(low[:, i, 0])
        pos += 1
        sum_sqs = low[:, i, 0] ** 2
        for j in range(1, i):
            out[:, pos] = np.arctanh(low[:, i, j] / np.sqrt(1.0 - sum_sqs))
            pos += 1
            sum_sqs = sum_sqs + low[:, i, j] ** 2
    return out


class _Scales:
    """The q + 1 scale parameters (tau, then sigma): transforms, Jacobians and priors, vectorised."""

    def __init__(self, families: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        self.family = np.asarray(families, dtype=np.int64)
        self.a = np.asarray(a, float)
        self.b = np.asarray(b, float)
        self.uniform = self.family == _UNIFORM
        self.upper = np.where(self.uniform, self.a, np.inf)
        self.log_upper = np.where(self.uniform, np.log(np.where(self.uniform, self.a, 1.0)), 0.0)
        # prior constants (normalised, as glm_scale_lpdf)
        const = np.zeros(self.family.size)
        for c, (f, a, b) in enumerate(zip(self.family, self.a, self.b)):
            if f == _UNIFORM:
                const[c] = -math.log(a)
            elif f == _HALFNORMAL:
                const[c] = _LOG_2 - 0.5 * _LOG_2PI - math.log(a)
            elif f == _HALFT:
                const[c] = (_LOG_2 + gammaln(0.5 * (b + 1.0)) - gammaln(0.5 * b) - 0.5 * math.log(b * math.pi)
                            - math.log(a))
            else:
                const[c] = math.log(a)
        self.const = float(const.sum())
        self.any_uniform = bool(self.uniform.any())
        # vectorised prior terms by family: indices and parameters
        self._hn = np.flatnonzero(self.family == _HALFNORMAL)
        self._hn_w = 0.5 / self.a[self._hn] ** 2
        self._ht = np.flatnonzero(self.family == _HALFT)
        self._ht_df, self._ht_inv = self.b[self._ht], 1.0 / (self.a[self._ht] ** 2 * self.b[self._ht])
        self._ex = np.flatnonzero(self.family == _EXPONENTIAL)
        self._ex_rate = self.a[self._ex]
        self._un = np.flatnonzero(self.uniform)

    def constrain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, m) unconstrained -> (scales, log|J| (k,))."""
        if not self.any_uniform:  # lb_constrain only: s = exp(x), log|J| = x
            return np.exp(x), x.sum(axis=1)
        lil = _log_inv_logit(x)
        log_s = np.where(self.uniform, self.log_upper + lil, x)
        jac = np.where(self.uniform, self.log_upper + lil + _log_inv_logit(-x), x)
        return np.exp(log_s), jac.sum(axis=1)

    def free(self, s: np.ndarray) -> np.ndarray:
        """(k, m) scales -> unconstrained."""
        frac = np.where(self.uniform, s / np.where(self.uniform, self.a, 1.0), 0.5)
        return np.where(self.uniform, np.log(frac) - np.log1p(-frac), np.log(s))

    def log_prior(self, s: np.ndarray) -> np.ndarray:
        """Sum over the m scales of glm_scale_lpdf (k,), without the constants (:attr:`const`)."""
        out = np.zeros(s.shape[0])
        if self._hn.size:
            out = out - (s[:, self._hn] ** 2) @ self._hn_w
        if self._ht.size:
            out = out - (0.5 * (self._ht_df + 1.0) * np.log1p(s[:, self._ht] ** 2 * self._ht_inv)).sum(axis=1)
        if self._ex.size:
            out = out - s[:, self._ex] @ self._ex_rate
        if self._un.size:
            inside = (s[:, self._un] >= 0) & (s[:, self._un] <= self.a[self._un])
            out = out + np.where(inside.all(axis=1), 0.0, -np.inf)
        return out


class GLMTarget(PointsDensity):
    """The log density of a general Stan program (``glm_<kind>.stan``) on Stan's unconstrained space.

    Parameters
    ----------
    design : Design
        The formula and data (:func:`hierlin_stan.design`). ``centered`` and
        ``noncentered`` need its rows (kept for designs up to
        :data:`hierlin_stan.model.glm.MAX_KEPT_ROW_VALUES` numbers).
    kind : {"marginal", "collapsed", "centered", "noncentered"}
        Which program to reproduce.
    priors : GLMPriors, mapping or None
        As for :func:`hierlin_stan.fit` with a formula (data-scaled defaults for what is
        not given).

    Attributes
    ----------
    design : Design
    kind : str
    priors : GLMPriors
    dim : int
        Number of unconstrained coordinates.
    names : tuple of str
        Coordinate names in Stan's order (``beta[Intercept]``, ``tau[x]``, ``sigma``,
        ``L_Omega[1]``, ..., ``u[g01, Intercept]``, ...).

    Examples
    --------
    >>> import hierlin_stan as hs
    >>> d = hs.design(hs.simulate(formula="y ~ x + (1 + x | g)", seed=1), "y ~ x + (1 + x | g)")
    >>> target = GLMTarget(d, "marginal")
    >>> target.log_density(np.zeros((3, target.dim))).shape
    (3,)
    """

    def __init__(self, design: Design, kind: str = "marginal", priors: GLMPriors | Mapping[str, Any] | None = None
                 ) -> None:
        if not isinstance(design, Design):
            raise ValueError(f"design must be a hierlin_stan.Design (from hs.design(data, formula)); "
                             f"got {type(design).__name__}")
        if kind not in GLM_KINDS:
            raise ValueError(f"kind={kind!r} is unknown; use one of {list(GLM_KINDS)}")
        self.design = design
        self.kind = kind
        self.priors = resolve_glm_priors(priors, design.term_names, design.group_term_names, design.data_summary())
        j, p, q = design.stats.shape
        self.J, self.p, self.q = j, p, q
        self.correlated = bool(design.correlated and q > 1)
        self.n_corr = q * (q - 1) // 2 if self.correlated else 0
        pd_ = self.priors.to_stan_data()
        self._beta_loc = np.asarray(pd_["beta_loc"], float)
        self._beta_scale = np.asarray(pd_["beta_scale"], float)
        self._eta = float(pd_["lkj_eta"])
        self._scales = _Scales(np.append(pd_["tau_family"], pd_["sigma_family"]),
                               np.append(pd_["tau_a"], pd_["sigma_a"]), np.append(pd_["tau_b"], pd_["sigma_b"]))
        # layout
        off = 0
        self._sl_beta = slice(off, off + (p if kind != "collapsed" else 0))
        off = self._sl_beta.stop
        self._sl_scales = slice(off, off + q + 1)
        off = self._sl_scales.stop
        self._sl_corr = slice(off, off + self.n_corr)
        off = self._sl_corr.stop
        self._sl_effects = slice(off, off + (j * q if kind in ("centered", "noncentered") else 0))
        self.dim = self._sl_effects.stop
        names = [f"beta[{t}]" for t in design.term_names] if kind != "collapsed" else []
        names += [f"tau[{t}]" for t in design.group_term_names] + ["sigma"]
        names += [f"L_Omega[{i + 1}]" for i in range(self.n_corr)]
        if kind in ("centered", "noncentered"):
            v = "u" if kind == "centered" else "z"
            names += [f"{v}[{g}, {t}]" for t in design.group_term_names for g in design.group_labels]
        self.names: tuple[str, ...] = tuple(names)
        self._setup_constants()

    # ------------------------------------------------------------------ setup
    def _setup_constants(self) -> None:
        d = self.design
        st = d.stats
        const = self._scales.const
        if self.kind != "collapsed" and self.p:
            const += float((-0.5 * _LOG_2PI - np.log(self._beta_scale)).sum())
        if self.correlated:
            const += lkj_constant(self._eta, self.q)
        n = d.N
        if self.kind in ("marginal", "collapsed"):
            const -= 0.5 * n * _LOG_2PI
            self._m = st.blocks.m
            self._e_star = st.e_star
            self._f = st.blocks.f
            self._c2 = st.residual.c2
            self._bstar = st.residual.beta_star
            self._rss_min = float(st.residual.rss_min)
            self._setup_vector_data()
            if self.kind == "collapsed":
                self._prec0 = 1.0 / self._beta_scale**2
                self._g0 = self._prec0 * (self._beta_loc - self._bstar)
                self._q00 = float(((self._bstar - self._beta_loc) ** 2 * self._prec0).sum())
                const -= 0.5 * float(np.log(self._beta_scale**2).sum())
        else:
            rows = d.row_data()
            self._y, self._x, self._z, self._codes = rows.y, rows.x, rows.z, rows.codes
            const -= 0.5 * (n + self.J * self.q) * _LOG_2PI
        self._const = const

    def _setup_vector_data(self) -> None:
        """For q = 1, 2: the products glm_vector_data.stan precomputes, so an evaluation is a few matrix products.

        q = 1: m2_j = M_j^2. q = 2: the coefficients of (S11, S12, S22) in the entries of
        M_j Sigma M_j' (MA11, MA12, MA22, each J x 3) and det(M_j)^2; for the collapsed
        program the products of F and e* that the entries of A_j^-1 weight (flattened p x p).
        """
        q, p, j = self.q, self.p, self.J
        if q not in (1, 2):
            return
        m, f, e = self._m, self._f, self._e_star
        self._f1, self._e1 = f[:, 0, :], e[:, 0]
        if q == 1:
            self._m2 = m[:, 0, 0] ** 2
            pairs = [(0, 0)]
        else:
            m11, m12, m21, m22 = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
            self._ma11 = np.column_stack([m11**2, 2 * m11 * m12, m12**2])
            self._ma12 = np.column_stack([m11 * m21, m11 * m22 + m12 * m21, m12 * m22])
            self._ma22 = np.column_stack([m21**2, 2 * m21 * m22, m22**2])
            self._detm2 = (m11 * m22 - m12 * m21) ** 2
            self._f2, self._e2 = f[:, 1, :], e[:, 1]
            pairs = [(0, 0), (0, 1), (1, 1)]
        if self.kind != "collapsed":
            return
        # weights of the A^-1 entries [11, 12, 22]: off-diagonal products counted twice
        ff, fe, ee = [], [], []
        for a, b in pairs:
            fa, fb, ea, eb = f[:, a, :], f[:, b, :], e[:, a], e[:, b]
            sym = a != b
            ff.append((np.einsum("ja,jb->jab", fa, fb) + (np.einsum("ja,jb->jab", fb, fa) if sym else 0.0))
                      .reshape(j, p * p))
            fe.append(fa * eb[:, None] + (fb * ea[:, None] if sym else 0.0))
            ee.append(ea * eb * (2.0 if sym else 1.0))
        self._ff, self._fe, self._ee = ff, fe, ee

    def _inverse_entries(self, tau: np.ndarray, low_omega: np.ndarray | None, s2: np.ndarray
                         ) -> tuple[np.ndarray, list[np.ndarray]]:
        """q = 1, 2: sum_j log det A_j (k,) and the entries of A_j^-1 ([11] or [11, 12, 22], each (k, J)).

        det A_j = s2 (s2 + tr(M Sigma M')) + det(M)^2 det(Sigma): non-negative terms, nothing
        cancels (glm_q2_inverse of glm_functions.stan).
        """
        if self.q == 1:
            a = s2[:, None] + (tau[:, 0:1] ** 2) * self._m2[None, :]
            return np.log(a).sum(axis=1), [1.0 / a]
        rho = low_omega[:, 1, 0] if low_omega is not None else np.zeros(s2.size)
        l22 = low_omega[:, 1, 1] if low_omega is not None else np.ones(s2.size)
        svec = np.column_stack([tau[:, 0] ** 2, rho * tau[:, 0] * tau[:, 1], tau[:, 1] ** 2])
        sdet = (tau[:, 0] * tau[:, 1] * l22) ** 2
        b11 = svec @ self._ma11.T
        b22 = svec @ self._ma22.T
        a12 = svec @ self._ma12.T
        det = s2[:, None] * (s2[:, None] + b11 + b22) + sdet[:, None] * self._detm2[None, :]
        inv_det = 1.0 / det
        return np.log(det).sum(axis=1), [(s2[:, None] + b22) * inv_det, -a12 * inv_det, (s2[:, None] + b11) * inv_det]

    # ---------------------------------------------------------------- unpack
    def _unpack(self, theta: np.ndarray) -> dict[str, Any]:
        """Constrained values and the log Jacobian, for points (k, dim)."""
        k = theta.shape[0]
        s, jac = self._scales.constrain(theta[:, self._sl_scales])
        out: dict[str, Any] = {"tau": s[:, : self.q], "sigma": s[:, self.q], "jacobian": jac, "scales": s}
        if self.kind != "collapsed":
            out["beta"] = theta[:, self._sl_beta]
        if self.correlated:
            low, ljac = cholesky_corr_constrain(theta[:, self._sl_corr], self.q)
            out["L_Omega"] = low
            out["jacobian"] = jac + ljac
        else:
            out["L_Omega"] = None
        if self.kind in ("centered", "noncentered"):
            v = theta[:, self._sl_effects].reshape(k, self.q, self.J).transpose(0, 2, 1)
            out["u" if self.kind == "centered" else "z"] = v
        return out

    def _factor(self, tau: np.ndarray, low_omega: np.ndarray | None) -> np.ndarray:
        if low_omega is None:
            return tau[:, :, None] * np.eye(self.q)[None]
        return tau[:, :, None] * low_omega

    # ------------------------------------------------------------- densities
    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """:meth:`log_density_unchecked`: the samplers' hot path ((k, dim) float64 in, (k,) out)."""
        return self.log_density_unchecked(theta)

    def log_density_unchecked(self, theta: np.ndarray) -> np.ndarray:
        """:meth:`log_density` without checks; the caller handles numpy's floating-point warnings."""
        v = self._unpack(theta)
        lp = self._const + v["jacobian"] + self._scales.log_prior(v["scales"])
        if self.kind != "collapsed" and self.p:
            zb = (v["beta"] - self._beta_loc) / self._beta_scale
            lp = lp - 0.5 * np.einsum("kp,kp->k", zb, zb)
        if self.correlated:
            logd = np.log(np.diagonal(v["L_Omega"], axis1=1, axis2=2)[:, 1:])
            weights = (self.q - np.arange(2, self.q + 1)) + 2.0 * self._eta - 2.0
            lp = lp + logd @ weights
        if self.kind in ("marginal", "collapsed") and self.q in (1, 2):
            s2 = v["sigma"] * v["sigma"]
            logdet_a, inv = self._inverse_entries(v["tau"], v["L_Omega"], s2)
            if self.kind == "marginal":
                return lp + self._marginal_vec(v["beta"], s2, logdet_a, inv)
            return lp + self._collapsed_vec(s2, logdet_a, inv)
        low = self._factor(v["tau"], v["L_Omega"]) if self.q else None
        if self.kind == "marginal":
            return lp + self._marginal(v["beta"], low, v["sigma"])
        if self.kind == "collapsed":
            return lp + self._collapsed(low, v["sigma"])
        return lp + self._full(v, low)

    def _marginal_vec(self, beta: np.ndarray, s2: np.ndarray, logdet_a: np.ndarray, inv: list[np.ndarray]
                      ) -> np.ndarray:
        """hierlin_glm_marginal_ll (glm_pure_functions.stan) for q = 1, 2, vectorised over points and groups."""
        delta = beta - self._bstar
        quad = (self._rss_min + np.einsum("ka,ab,kb->k", delta, self._c2, delta)) / s2
        d1 = self._e1[None, :] - delta @ self._f1.T
        if self.q == 1:
            quad = quad + np.einsum("kj,kj->k", d1 * d1, inv[0])
        else:
            d2 = self._e2[None, :] - delta @ self._f2.T
            quad = quad + np.einsum("kj,kj->k", inv[0], d1 * d1) + 2.0 * np.einsum("kj,kj->k", inv[1], d1 * d2) \
                + np.einsum("kj,kj->k", inv[2], d2 * d2)
        logdet = (self.design.N - self.J * self.q) * np.log(s2) + logdet_a
        return -0.5 * (logdet + quad)

    def _collapsed_vec(self, s2: np.ndarray, logdet_a: np.ndarray, inv: list[np.ndarray]) -> np.ndarray:
        """hierlin_glm_collapsed_ll (glm_pure_functions.stan) for q = 1, 2, vectorised over points and groups."""
        k, p = s2.size, self.p
        pflat = (np.diag(self._prec0)[None] + self._c2[None] / s2[:, None, None]).reshape(k, p * p)
        g = np.broadcast_to(self._g0, (k, p)).copy()
        q0 = np.full(k, self._q00)
        for w, ff, fe, ee in zip(inv, self._ff, self._fe, self._ee):
            pflat = pflat + w @ ff
            g = g + w @ fe
            q0 = q0 + w @ ee
        rest = (self.design.N - self.J * self.q) * np.log(s2) + logdet_a + self._rss_min / s2 + q0
        if p == 0:
            return -0.5 * rest
        lp_ = np.linalg.cholesky(pflat.reshape(k, p, p))
        w = np.linalg.solve(lp_, g[..., None])[..., 0]
        return -0.5 * (rest + 2.0 * np.log(np.diagonal(lp_, axis1=1, axis2=2)).sum(axis=1)
                       - np.einsum("ka,ka->k", w, w))

    def _group_inverse(self, low: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, Any]:
        """sum_j log det A_j (k,) and a solver of A_j x = b (A_j = s2 I + M_j Sigma M_j')."""
        m = self._m
        q = self.q
        if q == 1:
            a = s2[:, None] + (m[None, :, 0, 0] * low[:, None, 0, 0]) ** 2     # (k, J)
            logdet = np.log(a).sum(axis=1)
            return logdet, ("diag", a)
        sig = np.einsum("kab,kcb->kac", low, low)
        a = np.einsum("jab,kbc,jdc->kjad", m, sig, m) + s2[:, None, None, None] * np.eye(q)
        if q == 2:
            det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
            inv = np.empty_like(a)
            inv[..., 0, 0] = a[..., 1, 1] / det
            inv[..., 1, 1] = a[..., 0, 0] / det
            inv[..., 0, 1] = inv[..., 1, 0] = -a[..., 0, 1] / det
            return np.log(det).sum(axis=1), ("inv", inv)
        la = np.linalg.cholesky(a)
        logdet = 2.0 * np.log(np.diagonal(la, axis1=-2, axis2=-1)).sum(axis=(1, 2))
        return logdet, ("chol", la)

    @staticmethod
    def _quad(solver: Any, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """x_j' A_j^-1 y_j for (k, J, q[, r]) arrays: (k, J[, r, r]) ... summed per point as the caller needs."""
        kind, obj = solver
        y = x if y is None else y
        if kind == "diag":
            if x.ndim == 3:  # (k, J, 1)
                return (x[..., 0] * y[..., 0] / obj)
            return np.einsum("kja,kjb->kjab", x[:, :, 0, :], y[:, :, 0, :]) / obj[..., None, None]
        if kind == "inv":
            if x.ndim == 3:
                return np.einsum("kja,kjab,kjb->kj", x, obj, y)
            return np.einsum("kjqa,kjqr,kjrb->kjab", x, obj, y)
        if x.ndim == 3:
            vx = np.linalg.solve(obj, x[..., None])[..., 0]
            vy = vx if y is x else np.linalg.solve(obj, y[..., None])[..., 0]
            return np.einsum("kja,kja->kj", vx, vy)
        vx = np.linalg.solve(obj, x)
        vy = vx if y is x else np.linalg.solve(obj, y)
        return np.einsum("kjqa,kjqb->kjab", vx, vy)

    def _marginal(self, beta: np.ndarray, low: np.ndarray | None, sigma: np.ndarray) -> np.ndarray:
        s2 = sigma * sigma
        delta = beta - self._bstar
        quad = (self._rss_min + np.einsum("ka,ab,kb->k", delta, self._c2, delta)) / s2
        logdet = (self.design.N - self.J * self.q) * np.log(s2)
        if self.q:
            gl, solver = self._group_inverse(low, s2)
            d = self._e_star[None] - np.einsum("jqp,kp->kjq", self._f, delta)
            logdet = logdet + gl
            quad = quad + self._quad(solver, d).sum(axis=1)
        return -0.5 * (logdet + quad)

    def _collapsed(self, low: np.ndarray | None, sigma: np.ndarray) -> np.ndarray:
        k = sigma.size
        s2 = sigma * sigma
        p = self.p
        pmat = np.diag(self._prec0)[None] + self._c2[None] / s2[:, None, None]
        g = np.broadcast_to(self._g0, (k, p)).copy()
        q0 = np.full(k, self._q00)
        logdet = (self.design.N - self.J * self.q) * np.log(s2)
        if self.q:
            gl, solver = self._group_inverse(low, s2)
            f = np.broadcast_to(self._f, (k,) + self._f.shape)
            e = np.broadcast_to(self._e_star, (k,) + self._e_star.shape)
            pmat = pmat + self._quad(solver, f).sum(axis=1)
            g = g + self._quad(solver, f, e[..., None]).sum(axis=1)[..., 0]
            q0 = q0 + self._quad(solver, e).sum(axis=1)
            logdet = logdet + gl
        rest = logdet + self._rss_min / s2 + q0
        if p == 0:
            return -0.5 * rest
        lp_ = np.linalg.cholesky(pmat)
        w = np.linalg.solve(lp_, g[..., None])[..., 0]
        return -0.5 * (rest + 2.0 * np.log(np.diagonal(lp_, axis1=1, axis2=2)).sum(axis=1)
                       - np.einsum("ka,ka->k", w, w))

    def _full(self, v: dict[str, Any], low: np.ndarray | None) -> np.ndarray:
        sigma = v["sigma"]
        mu = v["beta"] @ self._x.T if self.p else np.zeros((sigma.size, self._y.size))
        lp = np.zeros(sigma.size)
        if self.q:
            if self.kind == "centered":
                u = v["u"]
                # multi_normal_cholesky_lpdf(u_j | 0, L): -sum log diag(L) - |L^-1 u_j|^2 / 2 per group
                w = np.linalg.solve(low, np.swapaxes(u, 1, 2))               # (k, q, J)
                lp = lp - self.J * np.log(np.diagonal(low, axis1=1, axis2=2)).sum(axis=1)
                lp = lp - 0.5 * np.einsum("kqj,kqj->k", w, w)
            else:
                z = v["z"]
                lp = lp - 0.5 * np.einsum("kjq,kjq->k", z, z)
                u = np.einsum("kjc,kqc->kjq", z, low)                        # u = z L'
            mu = mu + np.einsum("nq,knq->kn", self._z, u[:, self._codes, :])
        r = self._y[None] - mu
        n = self._y.size
        return lp - n * np.log(sigma) - 0.5 * np.einsum("kn,kn->k", r, r) / (sigma * sigma)

    # --------------------------------------------------- constrain / unconstrain
    def constrain(self, theta: np.ndarray | Any) -> dict[str, np.ndarray]:
        """Map unconstrained points to the program's parameters (and Omega).

        Returns
        -------
        dict
            ``beta`` (k, p) (not for ``collapsed``), ``tau`` (k, q), ``sigma`` (k,),
            ``L_Omega`` and ``Omega`` (k, q, q) for correlated terms, ``u`` (k, J, q) for
            ``centered`` and ``noncentered`` (which also gives ``z``). A single point
            gives arrays without the leading axis (``sigma`` a float).
        """
        arr = self._as_points(theta)
        single = arr.ndim == 1
        pts = arr[None, :] if single else arr
        with np.errstate(over="ignore", under="ignore"):
            v = self._unpack(pts)
        out: dict[str, Any] = {"tau": v["tau"].copy(), "sigma": np.asarray(v["sigma"]).copy()}
        if "beta" in v:
            out["beta"] = v["beta"].copy()
        if self.correlated:
            out["L_Omega"] = v["L_Omega"]
            out["Omega"] = np.einsum("kab,kcb->kac", v["L_Omega"], v["L_Omega"])
        if self.kind == "centered":
            out["u"] = v["u"].copy()
        elif self.kind == "noncentered":
            out["z"] = v["z"].copy()
            out["u"] = np.einsum("kjc,kqc->kjq", v["z"], self._factor(v["tau"], v["L_Omega"]))
        if single:
            out = {k: (float(x[0]) if np.ndim(x) == 1 else x[0]) for k, x in out.items()}
        return out

    def stan_parameters(self, theta: np.ndarray | Any) -> list[dict[str, Any]]:
        """The program's parameters at each point, named and shaped as Stan declares them.

        What an engine's ``log_density_many(f"glm_{kind}", data, points)`` takes, e.g.
        ``{"beta": [...], "tau": [...], "sigma": 0.7, "L_Omega": [[...]], "u": [[...]]}``.
        """
        arr = self._as_points(theta)
        pts = arr[None, :] if arr.ndim == 1 else arr
        v = self.constrain(pts)
        out = []
        for i in range(pts.shape[0]):
            point: dict[str, Any] = {}
            if "beta" in v:
                point["beta"] = v["beta"][i].tolist()
            point["tau"] = v["tau"][i].tolist()
            point["sigma"] = float(v["sigma"][i])
            if self.correlated:
                point["L_Omega"] = v["L_Omega"][i].tolist()
            if self.kind == "centered":
                point["u"] = v["u"][i].tolist()
            elif self.kind == "noncentered":
                point["z"] = v["z"][i].tolist()
            out.append(point)
        return out

    def unconstrain(self, params: Mapping[str, Any]) -> np.ndarray:
        """Map the program's parameters (``beta``, ``tau``, ``sigma``, ``L_Omega`` or ``Omega``, ``u``/``z``) to points.

        Values may carry a leading axis of k points. Returns (dim,) for one point, else (k, dim).

        Raises
        ------
        ValueError
            Naming a missing parameter, a wrong shape or a value outside its support.
        """
        needed = (["beta"] if self.kind != "collapsed" else []) + ["tau", "sigma"]
        if self.kind == "centered":
            needed.append("u")
        elif self.kind == "noncentered":
            needed.append("z")
        missing = [n for n in needed if n not in params]
        if self.correlated and "L_Omega" not in params and "Omega" not in params:
            missing.append("L_Omega (or Omega)")
        if missing:
            raise ValueError(f"params lacks {missing}; the {self.kind} target needs {needed}"
                             + (" and L_Omega" if self.correlated else ""))
        sigma = np.asarray(params["sigma"], float)
        single = sigma.ndim == 0
        k = 1 if single else sigma.size
        tau = np.asarray(params["tau"], float).reshape(k, self.q)
        scales = np.column_stack([tau, sigma.reshape(k)])
        ok = (scales > 0) & (scales < self._scales.upper) & np.isfinite(scales)
        if not ok.all():
            row, col = np.argwhere(~ok)[0]
            name = "sigma" if col == self.q else f"tau[{self.design.group_term_names[col]}]"
            bound = f"in (0, {self._scales.upper[col]:g})" if self._scales.uniform[col] else "> 0"
            raise ValueError(f"{name}={float(scales[row, col])!r} is outside its support: it must be {bound}")
        out = np.empty((k, self.dim))
        if self.kind != "collapsed":
            out[:, self._sl_beta] = np.asarray(params["beta"], float).reshape(k, self.p)
        out[:, self._sl_scales] = self._scales.free(scales)
        if self.correlated:
            if "L_Omega" in params:
                low = np.asarray(params["L_Omega"], float).reshape(k, self.q, self.q)
            else:
                low = np.linalg.cholesky(np.asarray(params["Omega"], float).reshape(k, self.q, self.q))
            out[:, self._sl_corr] = cholesky_corr_free(low)
        if self.kind in ("centered", "noncentered"):
            v = np.asarray(params["u" if self.kind == "centered" else "z"], float).reshape(k, self.J, self.q)
            out[:, self._sl_effects] = v.transpose(0, 2, 1).reshape(k, -1)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"GLMTarget({self.kind!r}, dim={self.dim}, {self.design!r})"
