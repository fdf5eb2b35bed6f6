"""From a formula and a table to design pieces: X (common terms), Z (group terms), y, group codes.

:class:`DesignSpec` is decided once, from the whole table: which variables are numeric
and which categorical (strings, booleans, pandas categoricals, anything in ``C()``), the
levels of each categorical (reference coding: the first level is the reference, and
each other level gets a column named ``variable[level]``), the group labels (sorted, or
in a categorical's own order; never a range 1..max), and the recipe of every column.
:meth:`DesignSpec.matrices` then builds X, Z, y and the group codes for any chunk of
rows, so the per-group sums (:mod:`hierlin_stan.model.sums`) can stream over data of
any size.

Coding follows R (and lme4, brms, bambi): a categorical factor in a term is coded with
contrasts (reference coding) when the rest of the term is already in the model (for a
main effect: the intercept), else with one column per level; ``y ~ 0 + county`` gets
one column per county.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .formula import Factor, Formula, Term

__all__ = ["Column", "DesignSpec", "DataError", "build_spec", "check_columns", "check_missing"]

_TRANSFORMS = {
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
}


class DataError(ValueError):
    """The data cannot be used with the formula; the message names the column and the fix."""


@dataclasses.dataclass(frozen=True)
class Column:
    """Recipe of one column of X or Z: the product of its parts.

    Attributes
    ----------
    name : str
        ``Intercept``, ``x``, ``county_type[urban]``, ``floor:log(uppm)``.
    parts : tuple of (Factor, level or None)
        A numeric factor contributes its (transformed) values, a categorical one the
        indicator of ``level``.
    """

    name: str
    parts: tuple[tuple[Factor, Any], ...]


@dataclasses.dataclass(frozen=True)
class DesignSpec:
    """How to build the design pieces of a formula from rows of a table.

    Attributes
    ----------
    formula : Formula
    common : tuple of Column
        Columns of X, in order; their names are the ``term`` coordinate.
    group : tuple of Column
        Columns of Z; their names are the ``group_term`` coordinate.
    levels : dict
        Categorical variable (factor name) -> its levels, reference first.
    group_labels : numpy.ndarray
        The distinct labels of the grouping column, in group order (J of them).
    correlated : bool
        ``|`` (True) or ``||``.
    """

    formula: Formula
    common: tuple[Column, ...]
    group: tuple[Column, ...]
    levels: Mapping[str, tuple[Any, ...]]
    group_labels: np.ndarray
    correlated: bool

    @property
    def p(self) -> int:
        """Number of common terms."""
        return len(self.common)

    @property
    def q(self) -> int:
        """Number of group terms (0 without group effects)."""
        return len(self.group)

    @property
    def n_groups(self) -> int:
        """J: distinct group labels (1 when the formula has no group term)."""
        return int(self.group_labels.size)

    @property
    def term_names(self) -> list[str]:
        """Names of the X columns."""
        return [c.name for c in self.common]

    @property
    def group_term_names(self) -> list[str]:
        """Names of the Z columns."""
        return [c.name for c in self.group]

    @property
    def group_factor(self) -> str | None:
        """The grouping column, or None."""
        return self.formula.group.factor if self.formula.group else None

    # ------------------------------------------------------------- building
    def matrices(self, frame: pd.DataFrame, codes: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Build ``y`` (n), ``X`` (n, p), ``Z`` (n, q) and group codes (n, 0-based) for rows of a table.

        Parameters
        ----------
        frame : pandas.DataFrame
            Rows holding the formula's columns, without missing values.
        codes : numpy.ndarray, optional
            Group codes when already known (else looked up from the labels).
        """
        n = len(frame)
        cache: dict[Factor, np.ndarray] = {}
        y = _numeric(frame, self.formula.response, cache, what="response")
        x = np.empty((n, self.p))
        for k, col in enumerate(self.common):
            x[:, k] = self._column(frame, col, cache)
        z = np.empty((n, self.q))
        for k, col in enumerate(self.group):
            z[:, k] = self._column(frame, col, cache)
        if codes is None:
            codes = self.group_codes(frame)
        return y, x, z, codes

    def group_codes(self, frame: pd.DataFrame) -> np.ndarray:
        """0-based group of each row (all zeros without a group term)."""
        if self.group_factor is None:
            return np.zeros(len(frame), dtype=np.int64)
        values = frame[self.group_factor]
        labels = self.group_labels
        if values.dtype.kind == "f" and labels.dtype.kind in "iu":
            values = values.astype(np.int64)
        # a categorical with our labels as categories gives the codes without Python objects
        codes = pd.Categorical(values, categories=labels).codes.astype(np.int64)
        if (codes < 0).any():
            bad = values.iloc[int(np.flatnonzero(codes < 0)[0])]
            raise DataError(f"group label {bad!r} of column {self.group_factor!r} was not seen when the design "
                            "was built; build the design from all the rows")
        return codes.astype(np.int64)

    def _column(self, frame: pd.DataFrame, col: Column, cache: dict[Factor, np.ndarray]) -> np.ndarray:
        out = np.ones(len(frame))
        for factor, level in col.parts:
            if level is None:
                out = out * _numeric(frame, factor, cache, what="predictor")
            else:
                out = out * (_categorical_values(frame, factor) == level)
        return out

    def describe(self) -> str:
        """One paragraph naming the terms and groups."""
        text = f"{self.formula.canonical}: {self.p} common term(s) [{', '.join(self.term_names)}]"
        if self.q:
            kind = "correlated" if self.correlated else "independent"
            text += (f"; {self.q} {kind} group term(s) [{', '.join(self.group_term_names)}] "
                     f"varying over {self.n_groups} groups of {self.group_factor!r}")
        return text


# --------------------------------------------------------------------- spec
def build_spec(formula: Formula, frame: pd.DataFrame) -> DesignSpec:
    """Decide variable kinds, levels, group labels and column recipes from the whole table.

    Raises
    ------
    DataError
        For a column the data lack (with the closest names), a non-numeric response
        or predictor used numerically, a categorical variable with one level.
    """
    check_columns(formula, frame.columns)
    response = formula.response
    if _is_categorical(frame[response.column], response):
        sample = frame[response.column].dropna()
        example = repr(sample.iloc[0]) if len(sample) else "no values"
        raise DataError(
            f"the response {response.column!r} is not numeric (dtype {frame[response.column].dtype}, e.g. {example}); "
            "the response must hold numbers: convert it, or choose another column")
    kinds: dict[Factor, str] = {}
    levels: dict[str, tuple[Any, ...]] = {}
    group_terms = formula.group.terms if formula.group else ()
    for term in formula.terms + group_terms:
        for f in term.factors:
            if f in kinds:
                continue
            series = frame[f.column]
            if _is_categorical(series, f):
                kinds[f] = "categorical"
                lv = _levels(series)
                if len(lv) < 2:
                    raise DataError(f"{f.name} has a single level ({lv[0]!r} if any) in the data: it cannot "
                                    "explain anything; drop it from the formula")
                levels[f.name] = lv
            else:
                kinds[f] = "numeric"
    common = _columns(formula.terms, kinds, levels)
    group: tuple[Column, ...] = ()
    labels = np.array([0])
    if formula.group is not None:
        group = _columns(formula.group.terms, kinds, levels)
        labels = _group_labels(frame[formula.group.factor], formula.group.factor)
    return DesignSpec(formula, common, group, levels, labels,
                      correlated=bool(formula.group.correlated) if formula.group else False)


def check_columns(formula: Formula, columns: Iterable[str]) -> None:
    """Raise :class:`DataError` naming the first column of the formula that the data lack."""
    have = [str(c) for c in columns]
    for name in formula.columns:
        if name not in have:
            close = difflib.get_close_matches(name, have, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            shown = have if len(have) <= 20 else have[:20] + ["..."]
            raise DataError(f"formula {formula.text!r} uses column {name!r}, which the data do not have{hint} "
                            f"(columns: {', '.join(shown)})")


def check_missing(formula: Formula, frame: pd.DataFrame, dropna: bool) -> tuple[pd.DataFrame, int]:
    """Rows with a missing value in a column the formula uses: an error, or dropped when ``dropna``.

    Returns
    -------
    (frame, dropped)
        The rows to use and how many were dropped.
    """
    cols = formula.columns
    missing = frame[cols].isna()
    counts = missing.sum()
    if not counts.any():
        return frame, 0
    rows = missing.any(axis=1)
    n_rows = int(rows.sum())
    if not dropna:
        worst = [f"{c!r} ({int(counts[c])})" for c in cols if counts[c]]
        first = int(np.flatnonzero(rows.to_numpy())[0])
        raise DataError(
            f"{n_rows} row(s) have missing values in the columns the formula uses: {', '.join(worst)}; "
            f"the first is row {first}. Drop them with dropna=True (CLI: --dropna) or impute them")
    kept = frame.loc[~rows.to_numpy()]
    if len(kept) == 0:
        raise DataError(f"every row has a missing value in {', '.join(c for c in cols if counts[c])}: nothing is left to fit")
    return kept, n_rows


def _columns(terms: Sequence[Term], kinds: Mapping[Factor, str], levels: Mapping[str, tuple[Any, ...]]
             ) -> tuple[Column, ...]:
    """Column recipes of terms, with R's rule for contrasts vs full dummy coding."""
    spanned: set[frozenset[Factor]] = set()
    if any(t.is_intercept for t in terms):
        spanned.add(frozenset())
    out: list[Column] = []
    for term in terms:
        if term.is_intercept:
            out.append(Column("Intercept", ()))
            continue
        choices: list[list[tuple[Factor, Any]]] = []
        for f in term.factors:
            if kinds[f] == "numeric":
                choices.append([(f, None)])
                continue
            margin = frozenset(g for g in term.factors if g != f)
            lv = levels[f.name]
            if margin in spanned:
                choices.append([(f, level) for level in lv[1:]])
            else:
                choices.append([(f, level) for level in lv])
                spanned.add(margin)
        spanned.add(term.key())
        for combo in _product(choices):
            name = ":".join(f.name if level is None else f"{f.name}[{level}]" for f, level in combo)
            out.append(Column(name, tuple(combo)))
    return tuple(out)


def _product(choices: list[list[tuple[Factor, Any]]]) -> list[list[tuple[Factor, Any]]]:
    combos: list[list[tuple[Factor, Any]]] = [[]]
    for options in choices:
        combos = [c + [o] for c in combos for o in options]
    return combos


def _is_categorical(series: pd.Series, factor: Factor) -> bool:
    if factor.categorical:
        return True
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _levels(series: pd.Series) -> tuple[Any, ...]:
    values = series.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        used = set(values.unique())
        return tuple(c for c in values.cat.categories if c in used)
    try:
        return tuple(_plain(v) for v in sorted(values.unique()))
    except TypeError:
        kinds = sorted({type(v).__name__ for v in values.unique()})
        raise DataError(f"column {series.name!r} mixes value types ({', '.join(kinds)}); make it one type "
                        "(e.g. all strings)") from None


def _group_labels(series: pd.Series, name: str) -> np.ndarray:
    """The distinct labels of the grouping column, in group order (a categorical's own order, else sorted).

    Works on the column without turning it into Python objects (text columns of
    10^7 rows would cost gigabytes): pandas factorizes arrow-backed strings and
    categoricals natively.
    """
    series = series.dropna()
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = np.zeros(len(series.cat.categories), dtype=bool)
        used[np.unique(series.cat.codes.to_numpy())] = True
        labels = np.asarray(series.cat.categories)[used]
        return labels.astype(np.int64) if labels.dtype.kind == "f" and np.all(labels == np.round(labels)) else labels
    if series.dtype == object:
        kinds = {("number" if isinstance(v, (int, float, np.integer, np.floating)) else type(v).__name__)
                 for v in pd.unique(series)}
        if len(kinds) > 1:
            raise DataError(f"the grouping column {name!r} mixes label types ({', '.join(sorted(kinds))}); make the "
                            "labels one type (e.g. all strings)")
    try:
        _, uniques = pd.factorize(series, sort=True)
    except TypeError:
        raise DataError(f"the grouping column {name!r} mixes label types; make the labels one type "
                        "(e.g. all strings)") from None
    labels = np.asarray(uniques)
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            bad = labels[labels != np.round(labels)][0]
            raise DataError(f"group label {bad!r} of column {name!r} is not a whole number; labels name groups: "
                            "use integers or strings")
        labels = labels.astype(np.int64)
    return labels


def _label_values(series: pd.Series) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        if finite.size and np.all(finite == np.round(finite)):
            return values.astype(np.int64) if finite.size == values.size else values
    return values


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _categorical_values(frame: pd.DataFrame, factor: Factor) -> np.ndarray:
    values = frame[factor.column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(object).to_numpy()
    return values.to_numpy()


def _numeric(frame: pd.DataFrame, factor: Factor, cache: dict[Factor, np.ndarray], what: str) -> np.ndarray:
    if factor in cache:
        return cache[factor]
    series = frame[factor.column]
    try:
        values = series.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"the {what} {factor.column!r} is not numeric (dtype {series.dtype}); "
                        "convert it, or wrap it in C() to treat it as categorical") from None
    if factor.function is not None:
        with np.errstate(all="ignore"):
            out = _TRANSFORMS[factor.function](values)
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{factor.name} is not finite for {bad.size} row(s), e.g. {factor.column} = "
                            f"{values[i]!r} (row {frame.index[i]!r}); transform only values in its domain")
        values = out
    else:
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"the {what} {factor.column!r} holds {values[i]!r} at row {frame.index[i]!r} "
                            f"({bad.size} non-finite value(s)); drop or impute those rows")
    cache[factor] = values
    return values
