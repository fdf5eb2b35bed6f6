"""Datasets: simulate the notebook's data, or bring your own; convert to Stan data."""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..utils.files import atomic_path
from .collapse import RowConstants, collapsed_scaling, row_constants
from .sizes import group_sizes as _group_sizes

TRUTH_KEYS = ("a", "mu_b", "sigma_b", "eps")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Observations of the hierarchical linear regression.

    Build with :func:`simulate`, :meth:`from_arrays`, :meth:`from_csv` or
    :meth:`from_json`; all validate their input.

    Attributes
    ----------
    x, y : numpy.ndarray
        Predictor and response, float64, length N.
    group : numpy.ndarray
        Group label of each observation, integers in 1..n_groups (Stan's 1-based
        convention). One slope per point is ``group = 1..N``.
    n_groups : int
        J. Groups without observations are allowed: their slopes follow the prior.
    truth : dict or None
        True a, mu_b, sigma_b, eps when the data were simulated.
    true_b : numpy.ndarray or None
        True slopes (length J) when simulated.
    labels : numpy.ndarray or None
        The user's name of each group (length J: strings, sparse ids, ...), kept as the
        ``group`` coordinate of fits; None means the groups are called 1..J.
    """

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray
    n_groups: int
    truth: dict[str, float] | None = None
    true_b: np.ndarray | None = None
    labels: np.ndarray | None = None

    # ---------------------------------------------------------------- building
    @classmethod
    def from_arrays(
        cls,
        x: Sequence[float] | np.ndarray,
        y: Sequence[float] | np.ndarray,
        group: Sequence[int] | np.ndarray | None = None,
        n_groups: int | None = None,
        truth: Mapping[str, float] | None = None,
        true_b: Sequence[float] | np.ndarray | None = None,
        labels: Sequence[Any] | np.ndarray | None = None,
    ) -> "Dataset":
        """Validate arrays and build a Dataset.

        Parameters
        ----------
        x, y : array-like
            Equal-length finite numbers, at least two observations.
        group : array-like of int, optional
            Labels in 1..n_groups; None gives one slope per point (1..N).
        n_groups : int, optional
            J; defaults to the largest label.
        truth, true_b : optional
            Known true values, for recovery checks.
        labels : sequence, optional
            A name for each of the J groups (distinct), e.g. county names.

        Raises
        ------
        ValueError
            Naming the problem: NaN/inf, unequal lengths, too few points, bad labels.
        """
        x_arr = _float_vector(x, "x")
        y_arr = _float_vector(y, "y")
        if x_arr.size != y_arr.size:
            raise ValueError(f"x has {x_arr.size} values but y has {y_arr.size}; give one y per x")
        if x_arr.size == 0:
            raise ValueError("the data are empty: give at least two (x, y) observations")
        if x_arr.size < 2:
            raise ValueError("only one observation: a, mu_b, sigma_b and eps need at least two (x, y) points")
        if group is None:
            g = np.arange(1, x_arr.size + 1, dtype=np.int64)
        else:
            g = _group_vector(group, x_arr.size)
        j = int(g.max()) if n_groups is None else n_groups
        if isinstance(j, bool) or not isinstance(j, numbers.Integral) or j < 1:
            raise ValueError(f"n_groups={n_groups!r} must be a positive integer")
        if g.max() > j:
            raise ValueError(
                f"group label {int(g.max())} is out of range for n_groups={j}; labels must be in 1..{j}"
            )
        truth_dict = None
        if truth is not None:
            missing = [k for k in TRUTH_KEYS if k not in truth]
            if missing:
                raise ValueError(f"truth lacks {missing}; give all of {list(TRUTH_KEYS)}")
            truth_dict = {k: float(truth[k]) for k in TRUTH_KEYS}
        tb = None
        if true_b is not None:
            tb = _float_vector(true_b, "true_b")
            if tb.size != j:
                raise ValueError(f"true_b has {tb.size} values but there are {j} groups")
        lab = None
        if labels is not None:
            lab = np.asarray(labels)
            if lab.ndim != 1 or lab.size != j:
                raise ValueError(f"labels has {lab.size} names but there are {j} groups; give one name per group")
            if len(set(lab.tolist())) != j:
                raise ValueError("labels repeats a name; give each group its own")
        return cls(x_arr, y_arr, g, int(j), truth_dict, tb, lab)

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike[str], x: str = "x", y: str = "y", group: str | None = None
    ) -> "Dataset":
        """Read a CSV with a header row (only the named columns; pyarrow or pandas, never a dict per row).

        Parameters
        ----------
        path : path-like
            The CSV file.
        x, y : str
            Column names of predictor and response.
        group : str, optional
            Column of group labels: any labels (names, sparse ids); groups are numbered
            in sorted label order and the labels kept. None for one slope per point.
        """
        import pandas as pd

        from .design import DataError
        from .tables import first_non_numeric, read_columns

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"CSV file {path} does not exist (or is not a file)")
        wanted = [c for c in (x, y, group) if c is not None]
        try:
            frame = read_columns(path, wanted)
        except DataError as err:
            text = str(err)
            if "has no column" in text:
                text += ". Name the right ones with x=, y=, group= (CLI: --x, --y, --group)"
            raise ValueError(text) from None
        for c in (x, y):
            bad = first_non_numeric(frame[c])
            if bad is not None:
                raise ValueError(f"{path}, line {bad[0] + 2}, column {c!r}: {str(bad[1])!r} is not a number")
        xs = frame[x].to_numpy(dtype=np.float64)
        ys = frame[y].to_numpy(dtype=np.float64)
        if group is None:
            return cls.from_arrays(xs, ys)
        labels_col = frame[group]
        missing = np.flatnonzero(labels_col.isna().to_numpy())
        if missing.size:
            raise ValueError(f"{path}, line {missing[0] + 2}, column {group!r}: the group label is missing "
                             f"({missing.size} missing); give every observation a label")
        values = labels_col.to_numpy()
        if values.dtype.kind == "f" and np.all(values == np.round(values)):
            values = values.astype(np.int64)
        try:
            codes, uniques = pd.factorize(values, sort=True)
        except TypeError:
            raise ValueError(f"{path}, column {group!r}: the group labels mix types; make them one type") from None
        uniques = np.asarray(uniques)
        j = uniques.size
        labels = None if (uniques.dtype.kind in "iu" and np.array_equal(uniques, np.arange(1, j + 1))) else uniques
        return cls.from_arrays(xs, ys, codes + 1, j, labels=labels)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> "Dataset":
        """Read Stan JSON written by :meth:`to_json` (or any JSON with N, J, x, y, g)."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"JSON file {path} does not exist") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        for key in ("x", "y"):
            if key not in doc:
                raise ValueError(f"{path} has no {key!r} entry; Stan JSON needs x, y and optionally g, J")
        truth = None
        if all(f"true_{k}" in doc for k in TRUTH_KEYS):
            truth = {k: doc[f"true_{k}"] for k in TRUTH_KEYS}
        return cls.from_arrays(doc["x"], doc["y"], doc.get("g"), doc.get("J"), truth, doc.get("true_b"),
                               doc.get("group_labels"))

    # ---------------------------------------------------------------- views
    @property
    def n(self) -> int:
        """Number of observations N."""
        return int(self.x.size)

    @property
    def group_coords(self) -> np.ndarray:
        """The J group names: the labels when given, else 1..J."""
        return self.labels if self.labels is not None else np.arange(1, self.n_groups + 1)

    @property
    def group_labels(self) -> np.ndarray:
        """The group name of each observation."""
        return self.group_coords[self.group - 1]

    @property
    def one_slope_per_point(self) -> bool:
        """True when every observation has its own slope (the notebook's case)."""
        return self.n_groups == self.n and bool(np.array_equal(self.group, np.arange(1, self.n + 1)))

    def group_sums(self) -> dict[str, np.ndarray]:
        """Per-group n, sum x, sum x^2, sum y, sum xy, sum y^2 (what the marginal program needs)."""
        idx = self.group - 1
        j = self.n_groups

        def total(w: np.ndarray) -> np.ndarray:
            return np.bincount(idx, weights=w, minlength=j)

        return {
            "n_group": np.bincount(idx, minlength=j).astype(np.int64),
            "sum_x": total(self.x),
            "sum_xx": total(self.x * self.x),
            "sum_y": total(self.y),
            "sum_xy": total(self.x * self.y),
            "sum_yy": total(self.y * self.y),
        }

    @functools.cached_property
    def row_constants(self) -> RowConstants:
        """Constants of the marginal and collapsed programs, computed once from the rows (then cached).

        See :func:`hierlin_stan.model.collapse.row_constants`: RSSperp(a) = rss_min + c2 (a - a*)^2
        from the residual vector itself, and r*_j = sum x (y - a* - mu* x) per group.
        """
        return row_constants(self.x, self.y, self.group, self.n_groups)

    def to_stan_data(
        self,
        parameterization: str,
        priors: Mapping[str, Any],
        write_y_rep: bool = False,
        write_b: bool = True,
    ) -> dict[str, Any]:
        """Return the data dictionary of a fitting program.

        Parameters
        ----------
        parameterization : {"collapsed", "marginal", "centered", "noncentered"}
            The fused twins take the same data.
        priors : mapping
            ``Priors.to_stan_data()``.
        write_y_rep : bool
            Draw replicated y.
        write_b : bool
            (marginal, collapsed) draw the slopes in generated quantities.
        """
        data: dict[str, Any] = {"J": self.n_groups, **priors, "write_y_rep": int(write_y_rep)}
        if parameterization in ("marginal", "collapsed"):
            sums = self.group_sums()
            data.update({k: sums[k] for k in ("n_group", "sum_x", "sum_xx")})
            data.update(self.row_constants.to_stan_data())
            if parameterization == "collapsed":
                data.update(collapsed_scaling(self.row_constants, sums["n_group"], sums["sum_xx"], priors))
            data["write_b"] = int(write_b)
            data["N_rep"] = self.n if write_y_rep else 0
            data["x_rep"] = self.x if write_y_rep else np.zeros(0)
            data["g_rep"] = self.group if write_y_rep else np.zeros(0, dtype=np.int64)
        else:
            data.update({"N": self.n, "x": self.x, "y": self.y, "g": self.group})
        return data

    def to_dict(self) -> dict[str, Any]:
        """Stan-JSON-ready dict: N, J, x, y, g, plus true_* when known."""
        doc: dict[str, Any] = {
            "N": self.n,
            "J": self.n_groups,
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "g": self.group.tolist(),
        }
        if self.truth is not None:
            doc.update({f"true_{k}": v for k, v in self.truth.items()})
        if self.true_b is not None:
            doc["true_b"] = self.true_b.tolist()
        if self.labels is not None:
            doc["group_labels"] = [v.item() if isinstance(v, np.generic) else v for v in self.labels]
        return doc

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write Stan JSON (atomically); CmdStan reads it as data, extra true_* keys are ignored."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        return Path(path)

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write columns x, y, group (atomically)."""
        with atomic_path(path) as tmp:
            with tmp.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["x", "y", "group"])
                for xi, yi, gi in zip(self.x.tolist(), self.y.tolist(), self.group_labels.tolist()):
                    writer.writerow([repr(xi), repr(yi), gi])
        return Path(path)

    def __repr__(self) -> str:
        kind = "one slope per point" if self.one_slope_per_point else f"{self.n_groups} groups"
        truth = "" if self.truth is None else ", truth=" + ", ".join(f"{k}={v:g}" for k, v in self.truth.items())
        return f"Dataset(N={self.n}, {kind}{truth})"


def rss_coefficients(sums: Mapping[str, np.ndarray]) -> tuple[float, float, float]:
    """Coefficients of ``RSSperp(a) = c0 + c1 a + c2 a^2`` summed over groups.

    ``RSSperp_j(a) = sum (y - a)^2 - (sum x (y - a))^2 / Sxx_j`` is the residual sum
    of squares of group j orthogonal to its x (``sum (y - a)^2`` when its x are all
    0). It is exactly 0 for a one-point group with x != 0, whose term is left out so
    the marginal density stays finite as eps -> 0. The Stan programs use the stable
    form ``rss_min + c2 (a - a*)^2`` of :attr:`Dataset.row_constants` instead: these
    coefficients cancel catastrophically when the data fit (nearly) exactly.

    Parameters
    ----------
    sums : mapping
        :meth:`Dataset.group_sums`.
    """
    n_group = sums["n_group"]
    sxx = sums["sum_xx"]
    pos = sxx > 0
    safe = np.where(pos, sxx, 1.0)
    sx, sy, sxy, syy = sums["sum_x"], sums["sum_y"], sums["sum_xy"], sums["sum_yy"]
    c0 = np.where(pos, syy - sxy**2 / safe, syy)
    c1 = np.where(pos, -2.0 * sy + 2.0 * sxy * sx / safe, -2.0 * sy)
    c2 = np.where(pos, n_group - sx**2 / safe, n_group.astype(float))
    keep = (n_group >= 2) | ~pos
    return float(np.sum(c0[keep])), float(np.sum(c1[keep])), float(np.sum(c2[keep]))


def simulate(
    n: int | None = None,
    a: float = 2.0,
    mu_b: float = 2.0,
    sigma_b: float = 1.0,
    eps: float = 0.0,
    groups: int | Sequence[int] | None = None,
    x_low: float = 0.0,
    x_high: float = 10.0,
    seed: int | None = None,
    formula: str | None = None,
    data: Any = None,
    truth: Mapping[str, Any] | None = None,
) -> "Dataset | Any":
    """Simulate data from the hierarchical linear regression.

    Without ``formula``: the notebook's model (a, mu_b, sigma_b, eps), returned as a
    :class:`Dataset`. With ``formula`` (e.g. ``"y ~ x + (1 + x | g)"``): the general
    model, returned as a pandas DataFrame whose ``attrs["hierlin_truth"]`` holds the
    true beta, tau, sigma, Omega and u (:func:`hierlin_stan.model.glm_simulate.simulate_formula`);
    the predictors come from ``data`` or are drawn (numeric ones uniform on
    [x_low, x_high], ``groups`` of the given sizes), and ``truth`` sets the true values
    (by term name; defaults: intercept 2, other coefficients 1, tau 1, sigma 0.5,
    Omega the identity; ``a, mu_b, sigma_b, eps`` are then not used).

    The defaults reproduce the notebook: N = 100 points, each with its own slope
    b_i ~ N(2, 1), x ~ U(0, 10), y = 2 + b x with no noise.

    Parameters
    ----------
    n : int, optional
        Number of observations; default 100, or the sum of ``groups`` sizes.
    a, mu_b, sigma_b, eps : float
        True intercept, mean slope, slope sd, noise sd (sigma_b, eps >= 0).
    groups : int or sequence of int, optional
        None: one slope per point. An int J: n points split into J groups of
        (nearly) equal size. A sequence: the group sizes.
    x_low, x_high : float
        x ~ U(x_low, x_high).
    seed : int, optional
        Seed of numpy's default_rng.

    Returns
    -------
    Dataset
        With ``truth`` and ``true_b`` set.
    """
    if formula is not None:
        from .glm_simulate import simulate_formula

        return simulate_formula(formula, data=data, truth=truth, n=n, groups=groups, x_low=x_low, x_high=x_high,
                                seed=seed)
    if data is not None or truth is not None:
        raise ValueError("data= and truth= go with formula=; the notebook's model takes a, mu_b, sigma_b, eps")
    for name, value in (("a", a), ("mu_b", mu_b), ("sigma_b", sigma_b), ("eps", eps), ("x_low", x_low), ("x_high", x_high)):
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name}={value!r} must be a finite number")
    for name, value in (("sigma_b", sigma_b), ("eps", eps)):
        if value < 0:
            raise ValueError(f"{name}={value} must be >= 0 (it is a standard deviation)")
    if not x_high > x_low:
        raise ValueError(f"x_high={x_high} must be greater than x_low={x_low}")
    sizes = _group_sizes(n, groups)
    rng = np.random.default_rng(seed)
    j = len(sizes)
    group = np.repeat(np.arange(1, j + 1), sizes)
    b = rng.normal(mu_b, sigma_b, size=j) if sigma_b > 0 else np.full(j, float(mu_b))
    x = rng.uniform(x_low, x_high, size=group.size)
    y = a + b[group - 1] * x
    if eps > 0:
        y = y + rng.normal(0.0, eps, size=group.size)
    truth = {"a": a, "mu_b": mu_b, "sigma_b": sigma_b, "eps": eps}
    return Dataset.from_arrays(x, y, group, j, truth, b)


def _float_vector(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers; got {values!r:.80}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{name}[{bad[0]}] = {arr[bad[0]]} is not finite ({bad.size} such value(s)); "
            "drop or impute those observations"
        )
    return arr


def _group_vector(values: Any, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"group has {arr.size} labels but there are {n} observations; give one label per point")
    if arr.dtype.kind not in "iu":
        try:
            as_float = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"group labels must be integers 1..J; got {arr[:3].tolist()!r}") from None
        missing = np.flatnonzero(np.isnan(as_float))
        if missing.size:
            raise ValueError(
                f"group label of observation {missing[0]} is missing ({missing.size} missing); "
                "give every observation an integer label 1..J"
            )
        if not np.all(np.isfinite(as_float)) or not np.all(as_float == np.round(as_float)):
            bad = as_float[~(np.isfinite(as_float) & (as_float == np.round(as_float)))][0]
            raise ValueError(f"group label {float(bad)!r} is not an integer; labels must be integers 1..J")
        arr = as_float.astype(np.int64)
    arr = arr.astype(np.int64)
    if arr.min() < 1:
        raise ValueError(f"group label {int(arr.min())} is out of range; labels are 1-based integers 1..J")
    return arr
