"""Stan's log density in numpy, on the unconstrained space, for many points at once.

For each Stan program (``centered``, ``noncentered``, ``marginal``) :class:`Target`
evaluates exactly what Stan's ``log_prob`` with ``jacobian=True`` returns (``lp__``):
every density is fully normalised (the programs use ``target +=``), the
unconstrained coordinates are Stan's, in Stan's order, and the Jacobians of Stan's
transforms are added:

* ``a``, ``mu_b``, ``b``, ``z``: unconstrained, identity.
* ``sigma_b``, ``eps`` under a ``uniform(0, U)`` prior (declared
  ``real<lower=0, upper=U>``): ``x = U inv_logit(u)``,
  ``log|J| = log U + log_inv_logit(u) + log1m_inv_logit(u)``.
* ``sigma_b``, ``eps`` under a half-normal prior (``real<lower=0>``):
  ``x = exp(u)``, ``log|J| = u``.

Points are rows: ``theta`` has shape ``(k, dim)`` (or ``(dim,)`` for one point) and
the result shape ``(k,)`` (or a float), so all chains of a sampler are evaluated with
one call. Everything that depends on the data alone (per-group sums, the quadratic
coefficients of RSSperp, normalising constants) is computed once per :class:`Target`:
an evaluation costs O(J) for ``marginal`` and O(N + J) for the others, with no Python
loop over groups or points. The numpy Metropolis sampler
(:mod:`hierlin_stan.metropolis`) runs on these targets.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ..model.dataset import TRUTH_KEYS, Dataset, rss_coefficients
from ..model.priors import Priors, PriorsLike, resolve_priors

__all__ = ["KINDS", "HYPER", "Target"]

#: The Stan programs a :class:`Target` reproduces.
KINDS: tuple[str, ...] = ("centered", "noncentered", "marginal")
#: The hyperparameters, first in Stan's parameter order.
HYPER: tuple[str, ...] = TRUTH_KEYS

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class PointsDensity:
    """What every numpy target shares: :meth:`log_density` at one point or many, with its checks.

    Subclasses set ``dim``, ``kind`` and ``names`` and define ``log_density_unchecked``.
    """

    dim: int
    kind: str
    names: list[str]

    def log_density(self, theta: np.ndarray | Any) -> np.ndarray | float:
        """Stan's ``lp__`` (with Jacobian) at unconstrained points.

        Parameters
        ----------
        theta : array-like, shape (k, dim) or (dim,)
            Unconstrained points, one per row, coordinates in :attr:`names` order.

        Returns
        -------
        numpy.ndarray of shape (k,), or float for a single point
            ``-inf`` (or NaN) where the density vanishes numerically, as Stan's.
        """
        arr = self._as_points(theta)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            out = self.log_density_unchecked(arr if arr.ndim == 2 else arr[None, :])
        return float(out[0]) if arr.ndim == 1 else out

    def _as_points(self, theta: Any) -> np.ndarray:
        arr = np.asarray(theta, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.dim:
            raise ValueError(
                f"theta has shape {arr.shape}; the {self.kind} target needs (k, {self.dim}) or ({self.dim},) "
                f"with coordinates {self._names_hint()}"
            )
        return arr

    def _names_hint(self) -> str:
        if len(self.names) <= 6:
            return ", ".join(self.names)
        return ", ".join(self.names[:5]) + f", ..., {self.names[-1]}"


class Target(PointsDensity):
    """The log density of one of the Stan programs, on Stan's unconstrained space.

    Parameters
    ----------
    dataset : Dataset
        The observations.
    kind : {"centered", "noncentered", "marginal"}
        Which Stan program to reproduce. ``centered`` is the full posterior of
        (a, mu_b, sigma_b, eps, b[1..J]); ``noncentered`` samples z with
        b = mu_b + sigma_b z; ``marginal`` has b integrated out (4 dimensions).
    priors : None, str, mapping or Priors
        As for :func:`hierlin_stan.fit`; default the notebook's priors.

    Attributes
    ----------
    dataset : Dataset
    kind : str
    priors : Priors
    dim : int
        Number of unconstrained coordinates: 4 (marginal) or 4 + J.
    names : tuple of str
        Coordinate names in Stan's order: ``a, mu_b, sigma_b, eps`` then
        ``b[1] .. b[J]`` (centered) or ``z[1] .. z[J]`` (non-centered).

    Examples
    --------
    >>> import hierlin_stan as hs
    >>> target = Target(hs.simulate(seed=1), "marginal")
    >>> theta = np.zeros((3, target.dim))
    >>> target.log_density(theta).shape
    (3,)
    """

    def __init__(self, dataset: Dataset, kind: str = "marginal", priors: PriorsLike = None) -> None:
        if not isinstance(dataset, Dataset):
            raise ValueError(
                f"dataset must be a hierlin_stan.Dataset (from simulate() or Dataset.from_csv()); "
                f"got {type(dataset).__name__}"
            )
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is unknown; use one of {list(KINDS)}")
        self.dataset = dataset
        self.kind = kind
        self.priors: Priors = resolve_priors(priors)
        j = dataset.n_groups
        self.n_groups = j
        vector = {"centered": "b", "noncentered": "z"}.get(kind)
        self._vector = vector
        self.dim = 4 + (j if vector else 0)
        self.names: tuple[str, ...] = HYPER + (
            tuple(f"{vector}[{i}]" for i in range(1, j + 1)) if vector else ()
        )
        self._setup_priors()
        if kind == "marginal":
            self._setup_marginal()
        else:
            self._setup_full()

    # ------------------------------------------------------------------ setup
    def _setup_priors(self) -> None:
        p = self.priors
        self._loc2 = np.array([p.a_loc, p.mu_b_loc])
        self._half_inv_var2 = 0.5 / np.array([p.a_scale, p.mu_b_scale]) ** 2
        const = -_LOG_2PI - math.log(p.a_scale) - math.log(p.mu_b_scale)
        families = (p.sigma_b_family, p.eps_family)
        scales = np.array([p.sigma_b_scale, p.eps_scale], dtype=float)
        self._uniform = np.array([f == "uniform" for f in families])
        self._scale_kind = "uniform" if self._uniform.all() else ("halfnormal" if not self._uniform.any() else "mixed")
        # Constants of the scale priors plus Jacobians. Uniform: prior -log U and
        # Jacobian +log U cancel. Half-normal: log 2 - log s - log(2 pi) / 2.
        for uniform, scale in zip(self._uniform, scales):
            if not uniform:
                const += _LOG_2 - math.log(scale) - 0.5 * _LOG_2PI
        self._const_hyper = const
        self._scales = scales
        # Uniform: log U (log of the upper end); half-normal: 1 / (2 s^2).
        self._log_upper = np.where(self._uniform, np.log(scales), 0.0)
        self._half_inv_scale2 = np.where(self._uniform, 0.0, 0.5 / scales**2)

    def _setup_full(self) -> None:
        ds = self.dataset
        self._x = ds.x.copy()
        self._y = ds.y.copy()
        self._gidx = (ds.group - 1).astype(np.intp)
        self._identity_groups = ds.n == ds.n_groups and bool(np.array_equal(self._gidx, np.arange(ds.n)))
        self._n = ds.n
        # normal_lpdf(b | mu_b, sigma_b) or std_normal_lpdf(z), and normal_lpdf(y | ., eps).
        self._const = self._const_hyper - 0.5 * _LOG_2PI * (self.n_groups + ds.n)
        # log density = const + ... - J log sigma_b - N log eps (centered);
        # the non-centered program has no -J log sigma_b term.
        jlog = self.n_groups if self.kind == "centered" else 0
        self._log_scale_weights = np.array([jlog, ds.n], dtype=float)

    def _setup_marginal(self) -> None:
        sums = self.dataset.group_sums()
        n_group = sums["n_group"]
        sx, sxx, sxy = sums["sum_x"], sums["sum_xx"], sums["sum_xy"]
        pos = sxx > 0
        sxx_safe = np.where(pos, sxx, 1.0)
        # RSSperp(a) = c0 + c1 a + c2 a^2: the same coefficients as marginal.stan's transformed data.
        self._c0, self._c1, self._c2 = rss_coefficients(sums)
        self._n = int(n_group.sum())
        self._sum_x = sx
        self._sum_xx = sxx
        self._sum_xy = sxy
        self._inv_sxx_safe = 1.0 / sxx_safe
        # sxr = sum_xy - a sum_x - mu_b sum_xx = sum_xy + theta[:, :2] @ _neg_sums
        self._neg_sums = -np.vstack([sx, sxx])
        self._const = self._const_hyper - 0.5 * self._n * _LOG_2PI
        # -(N - J) / 2 log eps^2 = -(N - J) log eps
        self._eps_power = float(self._n - self.n_groups)

    # ------------------------------------------------------------- transforms
    def _scale_terms(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Constrain the two scale columns ``u`` (k, 2).

        Returns (s, log s, prior + log Jacobian without constants), shapes (k, 2),
        (k, 2), (k,).
        """
        if self._scale_kind == "uniform":
            # t = -log_inv_logit(u); log1m_inv_logit(u) = -(t + u)
            t = np.logaddexp(0.0, -u)
            log_s = self._log_upper - t
            s = np.exp(log_s)
            extra = -(t + t + u).sum(axis=1)
            return s, log_s, extra
        if self._scale_kind == "halfnormal":
            s = np.exp(u)
            extra = (u - s * s * self._half_inv_scale2).sum(axis=1)
            return s, u, extra
        t = np.logaddexp(0.0, -u)
        log_s = np.where(self._uniform, self._log_upper - t, u)
        s = np.exp(log_s)
        extra = np.where(self._uniform, -(t + t + u), u - s * s * self._half_inv_scale2).sum(axis=1)
        return s, log_s, extra

    def _free_scales(self, s: np.ndarray) -> np.ndarray:
        """Inverse of the scale transforms: constrained (k, 2) -> unconstrained (k, 2)."""
        p = np.where(self._uniform, s / self._scales, 0.5)
        return np.where(self._uniform, np.log(p) - np.log1p(-p), np.log(s))

    # ------------------------------------------------------------ densities
    def log_density_unchecked(self, theta: np.ndarray) -> np.ndarray:
        """:meth:`log_density` without checks: ``theta`` must be float64 of shape (k, dim).

        The samplers' hot path; the caller handles numpy's floating-point warnings.
        """
        if self.kind == "marginal":
            return self._lp_marginal(theta)
        return self._lp_full(theta)

    def _lp_hyper(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = theta[:, :2] - self._loc2
        s, log_s, extra = self._scale_terms(theta[:, 2:4])
        lp = extra - (d * d) @ self._half_inv_var2
        return lp, s, log_s

    def _lp_full(self, theta: np.ndarray) -> np.ndarray:
        lp, s, log_s = self._lp_hyper(theta)
        a = theta[:, 0:1]
        mu = theta[:, 1:2]
        v = theta[:, 4:]
        inv_s2 = 1.0 / (s * s)
        if self.kind == "centered":
            b = v
            db = b - mu
            quad_prior = np.einsum("ij,ij->i", db, db)
        else:
            b = mu + s[:, 0:1] * v
            quad_prior = np.einsum("ij,ij->i", v, v)
            inv_s2[:, 0] = 1.0  # std_normal_lpdf(z): no sigma_b
        bg = b if self._identity_groups else b[:, self._gidx]
        r = (self._y - a) - bg * self._x
        quad_lik = np.einsum("ij,ij->i", r, r)
        return (
            self._const
            + lp
            - 0.5 * (quad_prior * inv_s2[:, 0] + quad_lik * inv_s2[:, 1])
            - log_s @ self._log_scale_weights
        )

    def _lp_marginal(self, theta: np.ndarray) -> np.ndarray:
        lp, s, log_s = self._lp_hyper(theta)
        a = theta[:, 0]
        s2 = s * s
        sb2 = s2[:, 0:1]
        eps2 = s2[:, 1:2]
        d = eps2 + sb2 * self._sum_xx
        sxr = self._sum_xy + theta[:, :2] @ self._neg_sums
        rss = np.maximum(self._c0 + (self._c1 + self._c2 * a) * a, 0.0)
        quad = (sxr * sxr / d) @ self._inv_sxx_safe + rss / eps2[:, 0]
        # (N - J) log eps^2 / 2 = (N - J) log eps
        return self._const + lp - 0.5 * (np.log(d).sum(axis=1) + quad) - self._eps_power * log_s[:, 1]

    # --------------------------------------------------- constrain / unconstrain
    def constrain(self, theta: np.ndarray | Any) -> dict[str, np.ndarray]:
        """Map unconstrained points to the Stan program's parameters.

        Parameters
        ----------
        theta : array-like, shape (k, dim) or (dim,)

        Returns
        -------
        dict
            ``a``, ``mu_b``, ``sigma_b``, ``eps`` (shape (k,), or floats for one point)
            and, for the full targets, ``b`` (k, J); the non-centered target also
            gives ``z`` (k, J). Arrays are new (not views of ``theta``).
        """
        arr = self._as_points(theta)
        single = arr.ndim == 1
        pts = arr[None, :] if single else arr
        with np.errstate(over="ignore", under="ignore"):
            s, _, _ = self._scale_terms(pts[:, 2:4])
        out: dict[str, Any] = {
            "a": pts[:, 0].copy(),
            "mu_b": pts[:, 1].copy(),
            "sigma_b": s[:, 0].copy(),
            "eps": s[:, 1].copy(),
        }
        if self.kind == "centered":
            out["b"] = pts[:, 4:].copy()
        elif self.kind == "noncentered":
            out["z"] = pts[:, 4:].copy()
            out["b"] = pts[:, 1:2] + s[:, 0:1] * pts[:, 4:]
        if single:
            out = {k: (float(v[0]) if v.ndim == 1 else v[0]) for k, v in out.items()}
        return out

    def unconstrain(self, params: Mapping[str, Any]) -> np.ndarray:
        """Map the Stan program's parameters to unconstrained points.

        Parameters
        ----------
        params : mapping
            ``a``, ``mu_b``, ``sigma_b``, ``eps`` (scalars or shape (k,)) and ``b``
            (centered) or ``z`` (non-centered), shape (J,) or (k, J). Other keys
            (such as ``b`` for the non-centered target) are ignored.

        Returns
        -------
        numpy.ndarray
            Shape (dim,) when all hyperparameters are scalars, else (k, dim).

        Raises
        ------
        ValueError
            When a value is missing, has the wrong length or is outside its support
            (sigma_b, eps must be > 0, and < U under a uniform(0, U) prior).
        """
        missing = [k for k in HYPER + ((self._vector,) if self._vector else ()) if k not in params]
        if missing:
            raise ValueError(f"params lacks {missing}; the {self.kind} target needs {list(self.param_names)}")
        hyper = [np.asarray(params[k], dtype=float) for k in HYPER]
        single = all(h.ndim == 0 for h in hyper)
        k = 1 if single else max(h.size for h in hyper)
        cols = []
        for name, h in zip(HYPER, hyper):
            flat = h.reshape(-1)
            if flat.size not in (1, k) or h.ndim > 1:
                raise ValueError(f"{name} has shape {h.shape}; give a scalar or a vector of length {k}")
            cols.append(np.broadcast_to(flat, (k,)))
        s = np.column_stack(cols[2:])
        upper = np.where(self._uniform, self._scales, np.inf)
        bad = ~((s > 0) & (s < upper)) | ~np.isfinite(s)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            name = HYPER[2 + col]
            bound = f"in (0, {upper[col]:g})" if self._uniform[col] else "> 0"
            raise ValueError(f"{name}={float(s[row, col])!r} is outside its support: it must be {bound}")
        out = np.empty((k, self.dim))
        out[:, 0] = cols[0]
        out[:, 1] = cols[1]
        out[:, 2:4] = self._free_scales(s)
        if self._vector:
            v = np.asarray(params[self._vector], dtype=float)
            j = self.n_groups
            if v.shape not in ((j,), (k, j)):
                raise ValueError(f"{self._vector} has shape {v.shape}; give shape ({j},) or ({k}, {j})")
            out[:, 4:] = v
        for name, col in zip(HYPER[:2], cols[:2]):
            if not np.all(np.isfinite(col)):
                raise ValueError(f"{name} must be finite; got {float(col[~np.isfinite(col)][0])!r}")
        return out[0] if single else out

    @property
    def param_names(self) -> tuple[str, ...]:
        """The Stan program's parameter names (``a, mu_b, sigma_b, eps`` and ``b`` or ``z``)."""
        return HYPER + ((self._vector,) if self._vector else ())

    # ----------------------------------------------------------------- slopes
    def draw_b(self, theta: np.ndarray | Any, rng: np.random.Generator) -> np.ndarray:
        """Draw the slopes exactly from their conditional posterior (marginal target).

        With ``d_j = eps^2 + sigma_b^2 Sxx_j``:
        ``b_j ~ N((mu_b eps^2 + sigma_b^2 (Sxy_j - a Sx_j)) / d_j, sqrt(sigma_b^2 eps^2 / d_j))``,
        the formulas of marginal.stan's generated quantities (stable as eps -> 0; a
        group without information on its slope gets N(mu_b, sigma_b)).

        Parameters
        ----------
        theta : array-like, shape (k, 4) or (4,)
            Unconstrained (a, mu_b, sigma_b, eps) points.
        rng : numpy.random.Generator
            Source of the normal draws.

        Returns
        -------
        numpy.ndarray
            Shape (k, J), or (J,) for one point.
        """
        if self.kind != "marginal":
            raise ValueError(
                f"draw_b is for the marginal target, where b is integrated out; the {self.kind} "
                "target has b among its coordinates (see constrain())"
            )
        arr = self._as_points(theta)
        single = arr.ndim == 1
        pts = arr[None, :] if single else arr
        with np.errstate(over="ignore", under="ignore"):
            s, _, _ = self._scale_terms(pts[:, 2:4])
        s2 = s * s
        sb2 = s2[:, 0:1]
        eps2 = s2[:, 1:2]
        d = eps2 + sb2 * self._sum_xx
        mean = (pts[:, 1:2] * eps2 + sb2 * (self._sum_xy - pts[:, 0:1] * self._sum_x)) / d
        sd = np.sqrt(sb2 * eps2 / d)
        b = mean + sd * rng.standard_normal(mean.shape)
        return b[0] if single else b

    # ------------------------------------------------------------ batch kernel
    def batch_log_density(self, k: int) -> "BatchLogDensity":
        """A fast evaluator of :meth:`log_density` for batches of exactly ``k`` points.

        The samplers' kernel: buffers are allocated once, the data-only parts are
        folded into small matrices, and one evaluation is about fifteen numpy calls
        (a dense matrix product for the residuals of the full targets when the
        problem is small, the direct O(N) formulas otherwise). Results equal
        :meth:`log_density` to rounding.

        Parameters
        ----------
        k : int
            Number of points per call (the number of chains).

        Returns
        -------
        BatchLogDensity
            Call it with a (k, dim) float64 array, or write the points into its
            ``x`` buffer and call it with no argument.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k={k!r} must be an integer >= 1")
        k = int(k)
        if self.kind == "marginal":
            return _MarginalBatch(self, k)
        if self.kind == "centered" and (self.dim + 3) * (self.n_groups + self._n + 2) <= _FUSED_MAX:
            return _CenteredBatch(self, k)
        return BatchLogDensity(self, k)

    # ----------------------------------------------------------------- helpers
    def stan_data(self) -> dict[str, Any]:
        """The data dictionary of the Stan program this target reproduces."""
        return self.dataset.to_stan_data(self.kind, self.priors.to_stan_data())


    def __repr__(self) -> str:
        return f"Target({self.kind!r}, dim={self.dim}, {self.dataset!r}, priors: {self.priors.describe()})"


# Largest dense residual matrix (entries) for which the centered kernel uses one
# matrix product; above it the direct O(N) formulas are cheaper.
_FUSED_MAX = 60_000


class BatchLogDensity:
    """Evaluate a :class:`Target`'s log density for batches of ``k`` points.

    The generic version calls :meth:`Target.log_density_unchecked`; the centered and
    marginal targets get faster subclasses. Create with
    :meth:`Target.batch_log_density`.

    Attributes
    ----------
    target : Target
    k : int
    x : numpy.ndarray
        A (k, dim) buffer: write points here and call with no argument to avoid a copy.
    """

    def __init__(self, target: Target, k: int) -> None:
        self.target = target
        self.k = k
        self.x = np.zeros((k, target.dim))

    def __call__(self, theta: np.ndarray | None = None) -> np.ndarray:
        """Log density (k,) at ``theta`` (k, dim), or at the points in :attr:`x`.

        The caller handles numpy floating-point warnings (e.g. ``np.errstate``).
        """
        if theta is not None and theta is not self.x:
            np.copyto(self.x, theta)
        return self._evaluate()

    def _evaluate(self) -> np.ndarray:
        return self.target.log_density_unchecked(self.x)


class _FusedBatch(BatchLogDensity):
    """Shared part of the fused kernels: a work row ``z`` = [theta, f1, f2, 1, ...].

    ``f_c`` is the nonlinear feature of scale column c: softplus(-u) for a uniform
    prior (log s = log U - f), exp(2u) = s^2 for a half-normal prior (log s = u);
    every other term of the scale priors, Jacobians and ``-n log s`` factors is
    linear in (u, f, 1) and folded into the weight vector ``self.w_lin``.
    """

    extra_columns = 0

    def __init__(self, target: Target, k: int, log_s_counts: tuple[float, float], constant: float) -> None:
        super().__init__(target, k)
        d = target.dim
        self.z = np.zeros((k, d + 3 + self.extra_columns))
        self.z[:, d + 2] = 1.0
        self.x = self.z[:, :d]
        self.f = self.z[:, d : d + 2]
        self.u = self.z[:, 2:4]
        self._tmp = np.empty((k, 2))
        uniform = target._uniform
        self._kind = target._scale_kind
        self._log_upper = target._log_upper
        self._two_log_upper = 2.0 * target._log_upper
        w = np.zeros(self.z.shape[1])
        const = constant
        for c in range(2):
            n_c = log_s_counts[c]
            if uniform[c]:
                # Jacobian + prior: -(2 f + u); -n log s = -n log U + n f
                w[2 + c] = -1.0
                w[d + c] = -2.0 + n_c
                const -= n_c * target._log_upper[c]
            else:
                # Jacobian + prior: u - f / (2 s^2) (+ constant); -n log s = -n u
                w[2 + c] = 1.0 - n_c
                w[d + c] = -target._half_inv_scale2[c]
        w[d + 2] = const
        self.w_lin = w

    def _features(self, want_inverse: bool, out: np.ndarray) -> None:
        """Fill ``self.f`` and ``out`` = s^2 (or 1 / s^2 with ``want_inverse``)."""
        u, f, tmp = self.u, self.f, self._tmp
        if self._kind == "uniform":
            np.negative(u, out=tmp)
            np.logaddexp(0.0, tmp, out=f)
            if want_inverse:
                np.subtract(f, self._log_upper, out=tmp)
            else:
                np.subtract(self._log_upper, f, out=tmp)
            tmp *= 2.0
            np.exp(tmp, out=out)
        elif self._kind == "halfnormal":
            np.multiply(u, 2.0, out=tmp)
            np.exp(tmp, out=f)
            if want_inverse:
                np.divide(1.0, f, out=out)
            else:
                np.copyto(out, f)
        else:
            for c in range(2):
                if self.target._uniform[c]:
                    f[:, c] = np.logaddexp(0.0, -u[:, c])
                    sign = 1.0 if want_inverse else -1.0
                    out[:, c] = np.exp(sign * 2.0 * (f[:, c] - self._log_upper[c]))
                else:
                    f[:, c] = np.exp(2.0 * u[:, c])
                    out[:, c] = 1.0 / f[:, c] if want_inverse else f[:, c]


class _CenteredBatch(_FusedBatch):
    """Centered target: all residuals from one matrix product.

    ``R = z @ M`` holds b_j - mu_b (J columns), y_i - a - b_g[i] x_i (N columns) and
    the standardised a and mu_b; ``(R * R) @ P`` sums them per block with weight -1/2,
    and the blocks are weighted by 1 / sigma_b^2, 1 / eps^2 and 1.
    """

    def __init__(self, target: Target, k: int) -> None:
        j, n, d = target.n_groups, target._n, target.dim
        p = target.priors
        const = -0.5 * _LOG_2PI * (j + n + 2) - math.log(p.a_scale) - math.log(p.mu_b_scale)
        for c, family in enumerate((p.sigma_b_family, p.eps_family)):
            if family != "uniform":
                const += _LOG_2 - math.log(target._scales[c]) - 0.5 * _LOG_2PI
        super().__init__(target, k, (float(j), float(n)), const)
        one = d + 2
        m = np.zeros((self.z.shape[1], j + n + 2))
        cols = np.arange(j)
        m[4 + cols, cols] = 1.0
        m[1, cols] = -1.0
        obs = j + np.arange(n)
        m[0, obs] = -1.0
        m[4 + target._gidx, obs] = -target._x
        m[one, obs] = target._y
        m[0, j + n] = 1.0 / p.a_scale
        m[one, j + n] = -p.a_loc / p.a_scale
        m[1, j + n + 1] = 1.0 / p.mu_b_scale
        m[one, j + n + 1] = -p.mu_b_loc / p.mu_b_scale
        self._m = m
        pm = np.zeros((j + n + 2, 3))
        pm[:j, 0] = -0.5
        pm[j : j + n, 1] = -0.5
        pm[j + n :, 2] = -0.5
        self._p = pm
        self._r = np.empty((k, j + n + 2))
        self._weights = np.ones((k, 3))
        self._inv_s2 = self._weights[:, :2]

    def _evaluate(self) -> np.ndarray:
        self._features(True, self._inv_s2)
        r = self._r
        np.dot(self.z, self._m, out=r)
        np.multiply(r, r, out=r)
        quad = np.vecdot(np.dot(r, self._p), self._weights)
        return np.dot(self.z, self.w_lin) + quad


class _MarginalBatch(_FusedBatch):
    """Marginal target: the formulas of marginal.stan as a few matrix products."""

    extra_columns = 2  # a^2 and mu_b^2: RSSperp(a) = c0 + c1 a + c2 a^2, and the normal priors

    def __init__(self, target: Target, k: int) -> None:
        j, n = target.n_groups, target._n
        super().__init__(target, k, (0.0, float(n - j)), target._const)
        one, a2, mu2 = 6, 7, 8
        # normal_lpdf(a | loc, scale) = -(a^2 - 2 a loc + loc^2) / (2 scale^2) + const
        p = target.priors
        for col, col2, loc, scale in ((0, a2, p.a_loc, p.a_scale), (1, mu2, p.mu_b_loc, p.mu_b_scale)):
            self.w_lin[col] += loc / scale**2
            self.w_lin[col2] -= 0.5 / scale**2
            self.w_lin[one] -= 0.5 * (loc / scale) ** 2
        self._s2 = np.empty((k, 2))
        self._s_to_d = np.vstack([target._sum_xx, np.ones(j)])  # d = s2 @ this
        m = np.zeros((9, j))
        m[0] = -target._sum_x
        m[1] = -target._sum_xx
        m[one] = target._sum_xy
        self._m = m
        rss = np.zeros(9)
        rss[one], rss[0], rss[a2] = target._c0, target._c1, target._c2
        self._rss_w = rss
        self._d = np.empty((k, j))
        self._sxr = np.empty((k, j))
        self._e = np.empty((k, 2 * j + 1))
        self._w_e = np.concatenate([-0.5 * target._inv_sxx_safe, np.full(j, -0.5), [-0.5]])
        self._j = j

    def _evaluate(self) -> np.ndarray:
        z, j, e, d, sxr = self.z, self._j, self._e, self._d, self._sxr
        self._features(False, self._s2)
        np.multiply(z[:, 0:2], z[:, 0:2], out=z[:, 7:9])
        np.dot(self._s2, self._s_to_d, out=d)
        np.dot(z, self._m, out=sxr)
        np.multiply(sxr, sxr, out=sxr)
        np.divide(sxr, d, out=e[:, :j])
        np.log(d, out=e[:, j : 2 * j])
        rss = np.dot(z, self._rss_w)
        np.maximum(rss, 0.0, out=rss)
        np.divide(rss, self._s2[:, 1], out=e[:, 2 * j])
        return np.dot(z, self.w_lin) + np.dot(e, self._w_e)
