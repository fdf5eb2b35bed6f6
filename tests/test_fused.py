"""The notebook model's marginal and collapsed densities: exact, stable, and fused C++ = pure Stan.

* The collapsed log likelihood (numpy, the Stan programs' formula) equals the marginal one
  integrated over (a, mu_b) against their normal priors: a dense N x N Gaussian in 90-digit
  mpmath, 1e-10 relative, down to eps = 1e-6, with one-point groups, groups whose x are all 0,
  an empty group and data that fit exactly; both prior presets.
* Stan's collapsed lp__ (pure program, both engines) equals that + priors + Jacobians.
* The marginal program on exact-fit data with a large intercept at eps = 1e-5, where the
  old ``c0 + c1 a + c2 a^2`` lost every digit, equals a 50-digit dense reference.
* The fused programs (CmdStan, C++ header) equal the pure ones: lp__ and its gradient
  through CmdStan's log_prob method, 1e-10 relative, at >= 100 random points each, a third
  of them with eps ~ 1e-6; PyStan's pure lp equals the fused lp to 1e-12.
* A point where P underflows is rejected (an error), not a crash or a NaN.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import hierlin_stan as hs
from hierlin_stan.engines import get_engine
from hierlin_stan.engines.programs import header_hash, program_hash, program_key, program_source
from hierlin_stan.model.collapse import collapsed_loglik, scale_to_unconstrained
from hierlin_stan.model.priors import resolve_priors
from tests.conftest import requires_cmdstan

REL = 1e-10


def _datasets() -> dict[str, hs.Dataset]:
    # group 1: x all 0; group 6: one point at x = 0; groups 3, 4, 7: one point; group 8: empty
    x = np.array([0.0, 0.0, 1.5, 2.5, 3.0, 0.7, 0.0, 4.0, 0.0, 6.0])
    g = np.array([1, 1, 2, 2, 3, 4, 5, 5, 6, 7])
    slopes = np.array([0.0, 1.3, 2.2, 0.4, 3.1, 0.0, 1.7, 0.0])
    noise = np.random.default_rng(7).normal(0, 0.3, x.size)
    return {
        "notebook_eps0": hs.simulate(n=10, seed=3),                               # J = N, eps = 0
        "grouped_noise": hs.simulate(groups=[3, 1, 4, 2], eps=0.5, seed=2),       # a one-point group
        "exact_fit_zero_x": hs.Dataset.from_arrays(x, 1.5 + slopes[g - 1] * x, g, 8),
        "zero_x_noise": hs.Dataset.from_arrays(x, 1.5 + slopes[g - 1] * x + noise, g, 8),
    }


DATASETS = _datasets()
POINTS = [(1.0, 0.5), (0.3, 1e-6), (2.0, 1e-3), (0.05, 2.0), (1.3, 1e-6), (5.0, 3e-6), (0.01, 0.2)]


def _mp_logpdf(cov: list, r: list) -> float:
    """log N(r | 0, cov) by Cholesky, in the current mpmath precision."""
    low = mp.cholesky(mp.matrix(cov))
    n = len(r)
    z: list = []
    for i in range(n):
        z.append((r[i] - mp.fsum(low[i, k] * z[k] for k in range(i))) / low[i, i])
    logdet = 2 * mp.fsum(mp.log(low[i, i]) for i in range(n))
    return float(-(n * mp.log(2 * mp.pi) + logdet + mp.fsum(v * v for v in z)) / 2)


def _dense(ds: hs.Dataset, sigma_b: float, eps: float, mean_a, mean_mu, var_a=0, var_mu=0, dps: int = 90) -> float:
    """log N(y | mean_a + mean_mu x, eps^2 I + sigma_b^2 [same group] x x' + var_a + var_mu x x'), exactly."""
    with mp.workdps(dps):
        xs, ys = [mp.mpf(float(v)) for v in ds.x], [mp.mpf(float(v)) for v in ds.y]
        s, e = mp.mpf(float(sigma_b)) ** 2, mp.mpf(float(eps)) ** 2
        va, vm, ma, mm = (mp.mpf(float(v)) for v in (var_a, var_mu, mean_a, mean_mu))
        n = len(xs)
        cov = [[va + vm * xs[i] * xs[k] + (s * xs[i] * xs[k] if ds.group[i] == ds.group[k] else 0) + (e if i == k else 0)
                for k in range(n)] for i in range(n)]
        return _mp_logpdf(cov, [ys[i] - ma - mm * xs[i] for i in range(n)])


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_collapsed_equals_marginal_integrated_over_beta(name):
    ds = DATASETS[name]
    for preset in ("notebook", "weakly_informative"):
        pri = resolve_priors(preset)
        pdata = pri.to_stan_data()
        for sb, eps in POINTS:
            ref = _dense(ds, sb, eps, pri.a_loc, pri.mu_b_loc, pri.a_scale**2, pri.mu_b_scale**2)
            got = collapsed_loglik(ds.group_sums(), ds.row_constants, pdata, sb, eps)
            assert got == pytest.approx(ref, rel=REL), (name, preset, sb, eps)


def _collapsed_point(data: dict, sb: float, eps: float) -> dict:
    return {"sigma_b_u": scale_to_unconstrained(sb, data["sigma_b_family"], data["sigma_b_scale"]),
            "eps_u": scale_to_unconstrained(eps, data["eps_family"], data["eps_scale"])}


def _log_prior_and_jacobian(data: dict, sb: float, eps: float) -> float:
    """Priors of sigma_b, eps with the Jacobian of u -> s and of the offset/multiplier map."""
    total = 0.0
    for name, value in (("sigma_b", sb), ("eps", eps)):
        scale = data[f"{name}_scale"]
        if data[f"{name}_family"] == 1:   # uniform(0, U): -log U, Jacobian log(s (1 - s/U))
            total += -math.log(scale) + math.log(value * (1 - value / scale))
        else:                             # half-normal: log 2 + normal_lpdf, Jacobian log s
            total += math.log(2) - 0.5 * math.log(2 * math.pi) - math.log(scale) - 0.5 * (value / scale) ** 2
            total += math.log(value)
        total += math.log(data[f"{name}_multiplier"])
    return total


@pytest.mark.slow
def test_collapsed_stan_lp_equals_reference(engine_name):
    """lp__ of collapsed.stan (pure, either engine) = the exact collapsed likelihood + priors + Jacobians."""
    engine = get_engine(engine_name, verbose=False)
    for preset in ("notebook", "weakly_informative"):
        for name in ("grouped_noise", "exact_fit_zero_x"):
            ds = DATASETS[name]
            data = ds.to_stan_data("collapsed", resolve_priors(preset).to_stan_data(), write_b=False)
            got = engine.log_density_many("collapsed", data, [_collapsed_point(data, sb, e) for sb, e in POINTS])
            for (sb, eps), lp in zip(POINTS, got):
                ref = _dense(ds, sb, eps, data["a_loc"], data["mu_b_loc"], data["a_scale"] ** 2,
                             data["mu_b_scale"] ** 2) + _log_prior_and_jacobian(data, sb, eps)
                assert lp == pytest.approx(ref, rel=REL), (preset, name, sb, eps)


@pytest.mark.slow
def test_marginal_exact_fit_large_intercept_small_eps(engine_name):
    """The marginal density where c0 + c1 a + c2 a^2 cancelled (c0 ~ 4e7 against a minimum ~ 1e-25)."""
    ds = hs.simulate(groups=[8] * 5, a=1000.0, eps=0.0, seed=4)
    pri = resolve_priors("weakly_informative")
    data = ds.to_stan_data("marginal", pri.to_stan_data(), write_b=False)
    engine = get_engine(engine_name, verbose=False)
    rng = np.random.default_rng(3)
    points = []
    for eps in (1e-5, 1e-4, 1e-2):
        points.append({"a": data["a_star"] + eps * rng.normal(), "mu_b": 2.0 + rng.normal(0, 0.3),
                       "sigma_b": 0.9, "eps": eps})
    got = engine.log_density_many("marginal", data, points, jacobian=False)
    for p, lp in zip(points, got):
        prior = (-0.5 * ((p["a"] - pri.a_loc) / pri.a_scale) ** 2 - math.log(pri.a_scale)
                 - 0.5 * ((p["mu_b"] - pri.mu_b_loc) / pri.mu_b_scale) ** 2 - math.log(pri.mu_b_scale)
                 - math.log(2 * math.pi))
        for s, scale in ((p["sigma_b"], pri.sigma_b_scale), (p["eps"], pri.eps_scale)):
            prior += math.log(2) - 0.5 * math.log(2 * math.pi) - math.log(scale) - 0.5 * (s / scale) ** 2
        ref = prior + _dense(ds, p["sigma_b"], p["eps"], p["a"], p["mu_b"], dps=50)
        assert lp == pytest.approx(ref, rel=REL), p


# ------------------------------------------------------------------ fused = pure
DATASETS_FUSED = {**DATASETS, "n203_eps0.5": hs.simulate(n=203, eps=0.5, seed=5),
                  "groups_mixed": hs.simulate(groups=[1, 5, 1, 2, 40, 1, 3] * 5, eps=0.2, seed=6)}


def _points(rng: np.random.Generator, n: int, kind: str, data: dict) -> list[dict]:
    """Random points, eps log-uniform on [1e-6, 5] with every third at ~1e-6, in declaration order."""
    rows = []
    for i in range(n):
        eps = 10 ** rng.uniform(-6.2, -5.8) if i % 3 == 0 else 10 ** rng.uniform(-6, math.log10(5))
        sb = 10 ** rng.uniform(-2, math.log10(20))
        if kind == "marginal":
            rows.append({"a": data["a_star"] + rng.normal(0, 1), "mu_b": data["mu_star"] + rng.normal(0, 1),
                         "sigma_b": sb, "eps": eps})
        else:
            rows.append(_collapsed_point(data, sb, eps))
    return rows


def _jsonable(data: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in data.items()}


def _stan_csv_row(point: dict) -> tuple[list[str], list[float]]:
    """Stan CSV columns (a, beta.1, L_Omega.2.1, ... column-major) and values of one constrained point."""
    names, values = [], []
    for name, value in point.items():
        arr = np.asarray(value, dtype=float)
        for idx in np.ndindex(*arr.shape[::-1]):
            idx = idx[::-1]
            names.append(name + "".join(f".{k + 1}" for k in idx))
            values.append(float(arr[idx]))
    return names, values


def log_prob_and_gradient(program: str, data: dict, rows: list[dict], folder) -> tuple[np.ndarray, np.ndarray]:
    """CmdStan's log_prob method (jacobian=True) at many constrained points: lp (n,), gradient (n, dim)."""
    engine = get_engine("cmdstan", verbose=False)
    engine.compile(program)
    path = folder / f"{program}.csv"
    with open(path, "w") as fh:
        for k, point in enumerate(rows):
            names, values = _stan_csv_row(point)
            if k == 0:
                fh.write(",".join(["lp__", *names]) + "\n")
            fh.write(",".join(["0", *(repr(v) for v in values)]) + "\n")
    frame = engine._models[program].log_prob(str(path), _jsonable(data), jacobian=True, sig_figs=18)
    return frame["lp__"].to_numpy(), frame[[c for c in frame.columns if c.startswith("g_")]].to_numpy()


def check_fused_equals_pure(pure: str, data: dict, rows: list[dict], folder, dim: int, rel: float = REL,
                            what=()) -> int:
    """lp and gradient of ``pure`` and its ``_fused`` twin at ``rows`` agree (:func:`assert_close`); returns len(rows)."""
    lp_p, g_p = log_prob_and_gradient(pure, data, rows, folder)
    lp_f, g_f = log_prob_and_gradient(f"{pure}_fused", data, rows, folder)
    assert np.all(np.isfinite(lp_p)) and g_p.shape == (len(rows), dim), what
    assert_close(lp_p, lp_f, g_p, g_f, rel=rel, what=what)
    return len(rows)


def assert_close(lp_pure, lp_fused, g_pure=None, g_fused=None, rel=REL, what=""):
    """lp relative to itself; each gradient component relative to the gradient's size at that point."""
    bad = np.abs(lp_fused - lp_pure) > rel * np.abs(lp_pure)
    assert not bad.any(), (what, "lp", np.c_[lp_pure, lp_fused][bad][:5])
    if g_pure is not None:
        scale = np.maximum(np.abs(g_pure), np.max(np.abs(g_pure), axis=1, keepdims=True) * 1e-3)
        err = np.abs(g_fused - g_pure) / scale
        assert (err <= rel).all(), (what, "gradient", err.max(), np.c_[g_pure, g_fused][(err > rel).any(axis=1)][:3])


@requires_cmdstan
@pytest.mark.requires_cmdstan
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["marginal", "collapsed"])
def test_fused_equals_pure_value_and_gradient(kind, tmp_path):
    rng = np.random.default_rng(11)
    total = 0
    for name, ds in DATASETS_FUSED.items():
        for preset in ("notebook", "weakly_informative"):
            data = ds.to_stan_data(kind, resolve_priors(preset).to_stan_data(), write_b=False)
            rows = _points(rng, 10, kind, data)
            total += check_fused_equals_pure(kind, data, rows, tmp_path, 4 if kind == "marginal" else 2,
                                             what=(kind, name, preset))
    assert total >= 100


@requires_cmdstan
@pytest.mark.requires_cmdstan
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["marginal", "collapsed"])
def test_pystan_pure_equals_cmdstan_fused(kind):
    pystan, cmdstan = get_engine("pystan", verbose=False), get_engine("cmdstan", verbose=False)
    rng = np.random.default_rng(12)
    for name in ("grouped_noise", "zero_x_noise", "groups_mixed"):
        data = DATASETS_FUSED[name].to_stan_data(kind, resolve_priors("notebook").to_stan_data(), write_b=False)
        rows = _points(rng, 6, kind, data)
        assert_close(pystan.log_density_many(kind, data, rows), cmdstan.log_density_many(f"{kind}_fused", data, rows),
                     rel=1e-12, what=(kind, name))


@requires_cmdstan
@pytest.mark.requires_cmdstan
@pytest.mark.slow
def test_underflowing_point_is_rejected_not_crashed():
    """eps = 1e-170: eps^2 underflows, P is not finite -> Stan rejects the point: an error, not a crash or NaN.

    (CmdStan's log_prob method then exits with code 1; its console names the reason, "P is not finite".)
    """
    ds = DATASETS["grouped_noise"]
    data = ds.to_stan_data("collapsed", resolve_priors("notebook").to_stan_data(), write_b=False)
    engine = get_engine("cmdstan", verbose=False)
    for program in ("collapsed", "collapsed_fused"):
        with pytest.raises(RuntimeError, match="log_prob' failed with return code 1"):
            engine.log_density_many(program, data, [_collapsed_point(data, 1.0, 1e-170)])


def test_compile_key_covers_the_header(monkeypatch):
    """cmdstanpy does not rebuild on a header change: the cache key must change with the header."""
    plain = program_hash(program_source("collapsed_fused"))
    key = program_key("collapsed_fused")
    assert key != plain and program_key("collapsed") == program_hash(program_source("collapsed"))
    import hierlin_stan.engines.programs as programs

    monkeypatch.setattr(programs, "header_hash", lambda: "0" * 16)
    assert programs.program_key("collapsed_fused") != key
    assert len(header_hash()) == 16
