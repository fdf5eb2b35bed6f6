"""A formula and data become a :class:`Design`: the design pieces, once, before any sampler sees them.

    d = hs.design(radon, "log_radon ~ floor + log_uppm + (1 + floor | county)")
    d.term_names, d.group_term_names, d.group_labels      # what the fit's coordinates will be
    d.stats                                               # per-group sufficient statistics

Like lme4's ``lFormula`` -> ``mkReTrms`` and bambi's ``Model`` -> terms: every backend
(the Stan programs, the numpy densities, PyMC) builds from the same pieces. The rows are
read once (only the formula's columns), checked (missing values, types, collinearity),
and summarised per group in chunks; they are kept only while small, since the marginal
and collapsed programs never need them.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .dask_sums import LOCAL, is_dask_frame, is_glob
from .design import DataError, DesignSpec, build_spec, check_missing
from .formula import Formula, FormulaError, parse_formula
from .sums import Chunk, GroupSums, SufficientStats, chunked, sufficient_stats
from .tables import TableLike, describe_source, first_non_numeric, read_columns

__all__ = ["Design", "RowData", "design", "CHUNK_ROWS", "MAX_KEPT_ROW_VALUES"]

#: Rows per chunk when summarising.
CHUNK_ROWS = 250_000
#: Keep the rows (y, X, Z, codes) for the centered/non-centered programs and plots while
#: they hold at most this many numbers (8 bytes each: 160 MB).
MAX_KEPT_ROW_VALUES = 20_000_000
#: Relative tolerance of the collinearity check (residual variance of a standardised column).
COLLINEAR_TOL = 1e-9


@dataclasses.dataclass
class RowData:
    """The rows as design pieces: y (N), X (N, p), Z (N, q), 0-based group codes (N)."""

    y: np.ndarray
    x: np.ndarray
    z: np.ndarray
    codes: np.ndarray


@dataclasses.dataclass
class Design:
    """Everything a sampler needs to know about a formula fitted to data.

    Attributes
    ----------
    spec : DesignSpec
        Terms, levels, group labels and column recipes.
    stats : SufficientStats
        Per-group sums, blocks and residual statistics (all the marginal and collapsed
        programs see).
    rows : RowData or None
        The rows, kept while small (for the centered and non-centered programs and plots).
    source : str
        Where the data came from.
    dropped_rows : int
        Rows dropped for missing values (``dropna=True``).
    truth : dict or None
        True values when the data were simulated (:func:`hierlin_stan.simulate`).
    summarise_seconds : float
        Time spent reading and summarising.
    notes : list of str
        Things worth knowing about the design (e.g. a group term constant within groups).
    sums_info : dict
        How the sums were computed when not in this process (Dask: scheduler, workers,
        partitions, rows, seconds per pass); recorded in a fit's ``idata.attrs``.
    """

    spec: DesignSpec
    stats: SufficientStats
    rows: RowData | None
    source: str = ""
    dropped_rows: int = 0
    truth: dict[str, Any] | None = None
    summarise_seconds: float = float("nan")
    notes: list[str] = dataclasses.field(default_factory=list)
    frame: pd.DataFrame | None = dataclasses.field(default=None, repr=False)
    sums_info: dict[str, Any] = dataclasses.field(default_factory=dict)

    # ---------------------------------------------------------------- views
    @property
    def formula(self) -> Formula:
        """The parsed formula."""
        return self.spec.formula

    @property
    def N(self) -> int:  # noqa: N802
        """Rows used."""
        return self.stats.N

    @property
    def J(self) -> int:  # noqa: N802
        """Groups (distinct labels)."""
        return self.spec.n_groups

    @property
    def p(self) -> int:
        """Common terms."""
        return self.spec.p

    @property
    def q(self) -> int:
        """Group terms."""
        return self.spec.q

    @property
    def term_names(self) -> list[str]:
        """The ``term`` coordinate (X columns)."""
        return self.spec.term_names

    @property
    def group_term_names(self) -> list[str]:
        """The ``group_term`` coordinate (Z columns)."""
        return self.spec.group_term_names

    @property
    def group_labels(self) -> np.ndarray:
        """The ``group`` coordinate: the user's labels, in group order."""
        return self.spec.group_labels

    @property
    def correlated(self) -> bool:
        """``|`` (correlated group terms) rather than ``||``."""
        return self.spec.correlated

    def data_summary(self) -> dict[str, Any]:
        """Means and standard deviations of y and of the X and Z columns (for data-scaled priors)."""
        s = self.stats.sums
        n = max(self.N, 1)
        y_mean = s.y_sum / n
        y_var = max(s.yty / n - y_mean**2, 0.0)
        if self.rows is not None:  # exact from the rows when they are at hand
            y_var = float(np.var(self.rows.y))
        x_mean = s.x_sum / n
        x_var = np.maximum(np.diag(s.xtx) / n - x_mean**2, 0.0)
        z_mean = s.z_sum / n
        z_var = np.maximum(s.z_sq / n - z_mean**2, 0.0)
        return {"n": self.N, "y_mean": y_mean, "y_sd": math.sqrt(y_var), "x_mean": x_mean,
                "x_sd": np.sqrt(x_var), "z_sd": np.sqrt(z_var)}

    def group_sizes(self) -> pd.Series:
        """Rows per group, indexed by label."""
        return pd.Series(self.stats.sums.n, index=pd.Index(self.group_labels, name="group"), name="n")

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator[Chunk]:
        """The rows as ``(y, X, Z, codes)`` chunks (from the kept rows, or rebuilt from the table)."""
        if self.rows is not None:
            r = self.rows
            for sl in chunked(r.y.size, size):
                yield r.y[sl], r.x[sl], r.z[sl], r.codes[sl]
            return
        if self.frame is None:
            raise DataError("this design keeps no rows (it was built from sums only); the centered and "
                            "non-centered programs need them: use parameterization='marginal' or 'collapsed'")
        for sl in chunked(len(self.frame), size):
            yield self.spec.matrices(self.frame.iloc[sl])

    def row_data(self) -> RowData:
        """All rows as design pieces (built when not kept; may be large)."""
        if self.rows is not None:
            return self.rows
        parts = list(self.chunks())
        return RowData(*(np.concatenate([p[i] for p in parts]) for i in range(4)))

    def describe(self) -> str:
        """What was fitted to what, in a few lines."""
        lines = [self.spec.describe(), f"N = {self.N} rows from {self.source}"]
        if self.dropped_rows:
            lines[-1] += f" ({self.dropped_rows} rows with missing values dropped)"
        if self.sums_info.get("sums_backend") == "dask":
            i = self.sums_info
            lines.append(f"per-group sums computed with Dask: {i['sums_partitions']} partitions, {i['sums_rows']} rows, "
                         f"{i['sums_seconds']:.1f} s on {i['sums_scheduler']} ({i['sums_workers']} workers)")
        lines += self.notes
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Design({self.formula.canonical!r}, N={self.N}, J={self.J}, p={self.p}, q={self.q})"


def design(data: TableLike | Design, formula: str | Formula, dropna: bool = False,
           chunk_rows: int = CHUNK_ROWS, keep_rows: bool | None = None, scheduler: Any = None) -> Design:
    """Read, check and summarise ``data`` for ``formula``.

    Parameters
    ----------
    data : DataFrame, CSV/Parquet path, Dataset, Design or dask.dataframe.DataFrame
        Only the columns the formula names are read. A Dask DataFrame (or, with
        ``scheduler``, Parquet data: a file, a folder or a glob such as
        ``"data/*.parquet"``) is summarised on a Dask cluster
        (:mod:`hierlin_stan.model.dask_sums`): the rows never come to this process.
    formula : str or Formula
        E.g. ``"y ~ x + (1 + x | g)"`` (:func:`hierlin_stan.model.formula.parse_formula`).
    dropna : bool
        Drop rows with missing values in the used columns (and say how many); by
        default they are an error naming the columns and counts.
    chunk_rows : int
        Rows per chunk while summarising.
    keep_rows : bool, optional
        Keep the design rows in memory (default: while they hold at most
        :data:`MAX_KEPT_ROW_VALUES` numbers).
    scheduler : None, "local", str or distributed.Client
        Compute the per-group sums with Dask: a ``distributed.Client``, a scheduler
        address (``"tcp://host:8786"``) or ``"local"`` (a LocalCluster on this machine,
        closed afterwards). None: in this process, except for a Dask DataFrame, which
        uses the current Client (a LocalCluster when there is none). The design then
        keeps no rows (the marginal and collapsed programs need none), and
        ``sums_info`` says how the sums were computed.

    Returns
    -------
    Design

    Raises
    ------
    FormulaError, DataError
        For a formula that cannot be read, an unknown column, missing values, a
        non-numeric response, collinear predictors, too few rows.
    """
    if isinstance(data, Design):
        return data
    start = time.perf_counter()
    form = formula if isinstance(formula, Formula) else parse_formula(formula)
    if scheduler is not None or is_dask_frame(data):
        return _dask_design(data, form, scheduler, dropna)
    if is_glob(data):
        raise DataError(f"{data} is a glob pattern, which the in-memory reader does not expand: summarise the files "
                        f"with Dask (scheduler={LOCAL!r} for a LocalCluster on this machine, or a scheduler address; "
                        "CLI: --dask or --scheduler ADDRESS), or give one file or a folder")
    frame = read_columns(data, form.columns)
    frame = _numeric_columns(frame, form)
    frame, dropped = check_missing(form, frame, dropna)
    if len(frame) < 2:
        raise DataError(f"only {len(frame)} row(s) to fit: give at least two")
    spec = build_spec(form, frame)
    codes = spec.group_codes(frame)
    n = len(frame)
    keep = keep_rows if keep_rows is not None else n * (spec.p + spec.q + 2) <= MAX_KEPT_ROW_VALUES
    rows = None
    if keep:
        y, x, z, _ = spec.matrices(frame, codes)
        rows = RowData(y, x, z, codes)

    def chunks() -> Iterator[Chunk]:
        if rows is not None:
            for sl in chunked(n, chunk_rows):
                yield rows.y[sl], rows.x[sl], rows.z[sl], rows.codes[sl]
        else:
            for sl in chunked(n, chunk_rows):
                yield spec.matrices(frame.iloc[sl], codes[sl])

    sums = GroupSums.from_chunks(chunks(), spec.n_groups, spec.p, spec.q)
    check_collinear(sums.xtx, spec.term_names, "common terms")
    notes = check_group_terms(sums, spec)
    stats = sufficient_stats(chunks, spec.n_groups, spec.p, spec.q, sums=sums)
    truth = _truth_of(data, spec)
    out = Design(spec, stats, rows, describe_source(data), dropped, truth, time.perf_counter() - start, notes,
                 frame=None if rows is not None else frame)
    if dropped:
        warnings.warn(f"dropped {dropped} row(s) with missing values in {', '.join(form.columns)} (dropna=True); "
                      f"{out.N} rows remain", stacklevel=2)
    return out


def design_from_stats(spec: DesignSpec, stats: SufficientStats, source: str, seconds: float,
                      truth: dict[str, Any] | None = None, sums_info: dict[str, Any] | None = None) -> Design:
    """A design whose rows were summarised elsewhere (e.g. on a Dask cluster)."""
    check_collinear(stats.sums.xtx, spec.term_names, "common terms")
    notes = check_group_terms(stats.sums, spec)
    return Design(spec, stats, None, source, 0, truth, seconds, notes, sums_info=dict(sums_info or {}))


def _dask_design(data: Any, form: Formula, scheduler: Any, dropna: bool) -> Design:
    """:func:`design` with the per-group sums computed by Dask (:mod:`hierlin_stan.model.dask_sums`)."""
    from .dask_sums import dask_sufficient_stats

    start = time.perf_counter()

    def check(sums: GroupSums, spec: DesignSpec) -> None:  # before the second pass reads the data again
        check_collinear(sums.xtx, spec.term_names, "common terms")

    out = dask_sufficient_stats(data, form, scheduler=scheduler, dropna=dropna, check_sums=check)
    d = design_from_stats(out.spec, out.stats, out.source, time.perf_counter() - start, sums_info=out.info)
    d.dropped_rows = out.dropped_rows
    if out.dropped_rows:
        warnings.warn(f"dropped {out.dropped_rows} row(s) with missing values in {', '.join(form.columns)} "
                      f"(dropna=True); {d.N} rows remain", stacklevel=3)
    return d


def _numeric_columns(frame: pd.DataFrame, form: Formula) -> pd.DataFrame:
    """Name the first bad value of a column that must be numeric and is read as text."""
    needs_numbers = {form.response.column}
    for term in form.terms + (form.group.terms if form.group else ()):
        for f in term.factors:
            if f.function not in (None, "C") and f.column in frame:
                needs_numbers.add(f.column)
    for col in needs_numbers:
        bad = first_non_numeric(frame[col])
        if bad is None:
            continue
        pos, value = bad
        what = "the response" if col == form.response.column else f"{col!r} (used in a function)"
        if col == form.response.column:
            raise DataError(f"{what} {col!r} is not numeric: row {pos} holds {value!r}; the response must hold "
                            "numbers (fix or drop those rows)")
        raise DataError(f"{what} is not numeric: row {pos} holds {value!r}")
    return frame


def check_collinear(xtx: np.ndarray, names: list[str], what: str) -> None:
    """Raise :class:`DataError` naming a column that is a linear combination of earlier ones.

    Works on the cross-product matrix (from the sums), standardised; column k is collinear
    when its residual after regressing on the kept columns is below :data:`COLLINEAR_TOL`.
    """
    p = xtx.shape[0]
    diag = np.diag(xtx).copy()
    for k in range(p):
        if diag[k] <= 0:
            raise DataError(f"{what}: {names[k]!r} is zero in every row; drop it from the formula")
    scale = 1.0 / np.sqrt(diag)
    c = xtx * scale[:, None] * scale[None, :]
    kept: list[int] = []
    for k in range(p):
        if kept:
            sub = c[np.ix_(kept, kept)]
            coef = np.linalg.solve(sub, c[kept, k])
            resid = c[k, k] - float(c[kept, k] @ coef)
        else:
            coef, resid = np.zeros(0), c[k, k]
        if resid < COLLINEAR_TOL:
            weights = coef * scale[kept] / scale[k] if kept else coef
            parts = [f"{'-' if w < 0 else '+'} {abs(w):.3g}*{names[i]}" for w, i in zip(weights, kept) if abs(w) > 1e-8]
            combo = " ".join(parts).lstrip("+ ") if parts else "0"
            raise DataError(
                f"{what} are collinear: {names[k]!r} = {combo} (up to round-off), so their coefficients cannot be "
                f"told apart; drop {names[k]!r} (or one of the others) from the formula")
        kept.append(k)


def check_group_terms(sums: GroupSums, spec: DesignSpec) -> list[str]:
    """Checks of the group terms: collinear ones are an error; notes for terms constant within groups."""
    if spec.q == 0:
        return []
    ztz = sums.ztz.sum(axis=0)
    check_collinear(ztz, spec.group_term_names, "group terms")
    notes = []
    names = spec.group_term_names
    if "Intercept" in names:
        i = names.index("Intercept")
        for k, name in enumerate(names):
            if k == i:
                continue
            within = sums.ztz[:, k, k] - np.where(sums.n > 0, sums.ztz[:, i, k] ** 2 / np.maximum(sums.n, 1), 0.0)
            if float(within.sum()) <= 1e-12 * float(sums.ztz[:, k, k].sum()):
                notes.append(f"note: {name!r} is constant within every group, so its group-specific effect "
                             f"cannot be told apart from the group intercept; its tau is informed by the prior alone. "
                             f"Keep {name!r} among the common terms only (a group-level predictor).")
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return notes


def _truth_of(data: Any, spec: DesignSpec) -> dict[str, Any] | None:
    """True values attached by :func:`hierlin_stan.simulate` (``DataFrame.attrs``), when they fit the design."""
    attrs = getattr(data, "attrs", None)
    if not isinstance(attrs, dict) or "hierlin_truth" not in attrs:
        return None
    truth = attrs["hierlin_truth"]
    beta = truth.get("beta", {})
    if set(beta) != set(spec.term_names) or set(truth.get("tau", {})) != set(spec.group_term_names):
        return None  # simulated for another formula: nothing to compare with
    return truth


__all__ += ["FormulaError", "DataError", "design_from_stats", "check_collinear"]
