"""Per-group sums on a Dask cluster: data larger than one machine, a fit that stays O(J).

The marginal and collapsed programs see only the per-group sufficient statistics
(:mod:`hierlin_stan.model.sums`), so the rows never need to meet in one process. Given a
``dask.dataframe.DataFrame`` or Parquet files (a file, a folder or a glob such as
``"data/*.parquet"``), :func:`dask_sufficient_stats` runs three passes over the
partitions on whatever cluster the scheduler names, reading only the formula's columns:

0. **Schema** (one small record per partition, reduced in a tree on the cluster): the
   columns present and their kinds, missing values per column, the distinct values of
   the categorical variables and of the grouping column. Levels and group labels are
   decided once, globally, by the very functions the in-memory path uses
   (:func:`hierlin_stan.model.design.build_spec`, fed a frame holding exactly the distinct
   values), so every partition codes groups and levels identically and the labels are
   sorted as in memory. Partitions that disagree (a column missing from some, text where
   the others hold numbers, group labels of another type) are an error naming them.
1. **Sums** (:class:`~hierlin_stan.model.sums.GroupSums` per partition, added in a tree).
2. **Residual TSQR**: each partition's rows with every group's Z projected out, reduced
   to a (p+1) x (p+1) R factor; the R factors are stacked and factorised again in a tree.

Only the small results travel to the client: its memory does not grow with N. Dask is
imported only when this module's functions run; without it they raise
:class:`DaskMissingError` naming ``pip install "hierlin_stan[dask]"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from .design import DataError, DesignSpec, _label_values, build_spec, check_columns
from .formula import Formula
from .sums import (GroupBlocks, GroupSums, ResidualStats, SufficientStats, chunked, group_blocks, residual_rows,
                   residual_stats, tsqr_factor)

__all__ = ["DaskMissingError", "DaskSums", "dask_sufficient_stats", "is_dask_frame", "is_glob", "LOCAL"]

#: ``scheduler=LOCAL`` starts a LocalCluster on this machine for the computation.
LOCAL = "local"
#: Partial results combined per task in the tree reductions.
FAN_IN = 8
#: How long to wait for a scheduler given by its address.
CONNECT_TIMEOUT = "20s"
#: Rows per chunk inside one partition (bounds a worker's temporary arrays).
CHUNK_ROWS = 250_000
_PARQUET = (".parquet", ".pq", ".parq")


class DaskMissingError(ImportError, ValueError):
    """Dask (``dask[distributed]``) is needed and not installed; the message says how to install it."""


def is_dask_frame(data: Any) -> bool:
    """True for a ``dask.dataframe.DataFrame`` (checked without importing Dask)."""
    return type(data).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(data, "npartitions") \
        and hasattr(data, "to_delayed")


def is_glob(data: Any) -> bool:
    """True for a path holding glob characters (``*``, ``?``, ``[``)."""
    return isinstance(data, (str, os.PathLike)) and any(ch in os.fspath(data) for ch in "*?[")


@dataclasses.dataclass
class DaskSums:
    """What :func:`dask_sufficient_stats` computed.

    Attributes
    ----------
    spec : DesignSpec
        Levels and group labels decided from every partition.
    stats : SufficientStats
    dropped_rows : int
        Rows dropped for missing values (``dropna=True``).
    source : str
        Where the rows came from.
    info : dict
        How the sums were computed (recorded in ``idata.attrs``): ``sums_backend``,
        ``sums_scheduler``, ``sums_workers``, ``sums_partitions``, ``sums_rows`` (read,
        before dropping), ``sums_seconds`` (all of it), ``sums_cluster_seconds``
        (connecting, or starting a LocalCluster), ``sums_schema_seconds``,
        ``sums_pass1_seconds``, ``sums_pass2_seconds`` and ``dask_version``.
    """

    spec: DesignSpec
    stats: SufficientStats
    dropped_rows: int
    source: str
    info: dict[str, Any]


def dask_sufficient_stats(data: Any, formula: Formula, scheduler: Any = None, dropna: bool = False,
                          check_sums: Callable[[GroupSums, DesignSpec], None] | None = None) -> DaskSums:
    """Schema pass, pass 1 and pass 2 of ``formula`` over ``data`` with Dask.

    Parameters
    ----------
    data : dask.dataframe.DataFrame, or str / PathLike
        A Dask DataFrame, or Parquet data: one file, a folder of files, or a glob
        (``"data/*.parquet"``; any fsspec URL, e.g. ``s3://bucket/data/*.parquet``
        when its filesystem is installed). Only the formula's columns are read.
    formula : Formula
    scheduler : None, "local", str or distributed.Client
        Where to compute: a ``distributed.Client``; a scheduler address
        (``"tcp://host:8786"``); ``"local"`` for a LocalCluster on this machine (closed
        afterwards); None for the current Client if one exists, else a LocalCluster.
    dropna : bool
        Drop rows with a missing value in a used column (by default an error naming the
        columns and counts).
    check_sums : callable, optional
        Called with the pass-1 sums and the spec before pass 2 (e.g. the collinearity
        checks), so bad data fail before the second read.

    Returns
    -------
    DaskSums

    Raises
    ------
    DataError
        Naming the column, the partitions (or files) and the fix: a column missing from
        some partitions, a non-numeric partition, missing values, group labels whose
        type differs between partitions, anything the in-memory path refuses.
    DaskMissingError
        When Dask is not installed.
    """
    dd, dask_version = _import_dask()
    start = time.perf_counter()
    columns = list(formula.columns)
    if is_dask_frame(data):
        ddf = data
        check_columns(formula, [str(c) for c in ddf.columns])
        source = f"dask DataFrame ({ddf.npartitions} partitions)"
    elif isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        fs, files = _parquet_files(path)
        _check_file_schemas(fs, files, formula)
        try:
            ddf = dd.read_parquet(path, columns=columns)
        except Exception as err:  # noqa: BLE001 - pyarrow and fsspec raise several kinds
            raise DataError(f"{path}: cannot be read as Parquet with Dask: {type(err).__name__}: {err}") from None
        check_columns(formula, [str(c) for c in ddf.columns])
        source = path
    elif isinstance(data, pd.DataFrame):
        raise DataError("a pandas DataFrame is already in this process: summarise it here (leave out scheduler=), "
                        "or give a dask DataFrame (dask.dataframe.from_pandas(frame, npartitions=8))")
    else:
        raise DataError(f"data of type {type(data).__name__} cannot be summarised with Dask; give a "
                        "dask.dataframe.DataFrame or Parquet data (a file, a folder or a glob such as 'data/*.parquet')")
    whole, ddf = ddf, ddf[columns]  # only the formula's columns are read
    parts = ddf.to_delayed()
    t_client = time.perf_counter()
    with _client(scheduler) as (client, label, workers):
        # ---- pass 0: schema, levels, group labels, missing values
        t0 = time.perf_counter()
        plan = _SchemaPlan.of(formula)
        schema = _run_schema(client, parts, plan, whole)
        spec, dropped, rows = _decide(schema, formula, plan, dropna)
        t1 = time.perf_counter()
        # ---- pass 1: per-group sums
        coding = client.scatter(_Coding(spec, pd.Index(spec.group_labels)), broadcast=True, hash=False)
        try:
            sums = _tree(client, [_delayed(_partition_sums)(p, k, coding, columns, dropna)
                                  for k, p in enumerate(parts)], _combine_sums)
            if check_sums is not None:
                check_sums(sums, spec)
            t2 = time.perf_counter()
            # ---- pass 2: residual TSQR
            blocks = group_blocks(sums)
            proj = client.scatter(_Projection(sums.n, blocks.rank, blocks.hy, blocks.hx), broadcast=True, hash=False)
            try:
                r = _tree(client, [_delayed(_partition_r)(p, k, coding, proj, columns, dropna)
                                   for k, p in enumerate(parts)], _combine_r)
            finally:
                client.cancel([proj])
        finally:
            client.cancel([coding])
        t3 = time.perf_counter()
    stats = _stats(sums, blocks, r)
    info = {
        "sums_backend": "dask",
        "sums_scheduler": label,
        "sums_workers": workers,
        "sums_partitions": len(parts),
        "sums_rows": rows,
        "sums_seconds": t3 - start,
        "sums_cluster_seconds": t0 - t_client,
        "sums_schema_seconds": t1 - t0,
        "sums_pass1_seconds": t2 - t1,
        "sums_pass2_seconds": t3 - t2,
        "dask_version": dask_version,
    }
    return DaskSums(spec, stats, dropped, source, info)


# ------------------------------------------------------------------ setup
def _import_dask() -> tuple[Any, str]:
    try:
        import dask
        import dask.dataframe as dd
        import distributed  # noqa: F401 - the computation runs on a distributed Client
    except ImportError as err:
        raise DaskMissingError(
            f"summarising data with Dask needs dask[distributed] ({err}): pip install \"hierlin_stan[dask]\" "
            "(or pip install \"dask[distributed]\"); or read the data with pandas and leave out scheduler=") from None
    return dd, dask.__version__


def _delayed(func: Callable[..., Any]) -> Callable[..., Any]:
    import dask

    return dask.delayed(func, pure=False)


@contextlib.contextmanager
def _client(scheduler: Any) -> Iterator[tuple[Any, str, int]]:
    """(client, description, number of workers); a Client or cluster made here is closed afterwards."""
    from distributed import Client, LocalCluster

    cluster = None
    own = False
    if isinstance(scheduler, Client):
        client = scheduler
    elif scheduler is None or scheduler == LOCAL:
        client = None
        if scheduler is None:
            try:
                client = Client.current()
            except ValueError:
                client = None
        if client is None:
            cluster = _local_cluster(LocalCluster)
            client = Client(cluster)
            own = True
    elif isinstance(scheduler, str):
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as err:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} ({err}); check the address "
                             "(e.g. 'tcp://host:8786') and that the scheduler is running, or use "
                             f"scheduler={LOCAL!r} for a LocalCluster on this machine") from None
        own = True
    else:
        raise ValueError(f"scheduler={scheduler!r} is not understood; give a distributed.Client, a scheduler address "
                         f"such as 'tcp://host:8786', {LOCAL!r} (a LocalCluster on this machine) or None")
    try:
        address = getattr(client.scheduler, "address", None) or str(client)
        workers = len(client.scheduler_info().get("workers", {}))
        label = f"LocalCluster {address}" if cluster is not None else address
        yield client, label, workers
    finally:
        if own:
            client.close()
        if cluster is not None:
            cluster.close()


def _local_cluster(local_cluster: Any) -> Any:
    """A LocalCluster of up to 4 single-threaded worker processes, or an error saying why it could not start."""
    try:
        return local_cluster(n_workers=max(1, min(os.cpu_count() or 1, 4)), threads_per_worker=1, processes=True,
                             dashboard_address=None)
    except RuntimeError as err:
        raise RuntimeError(
            f"could not start a Dask LocalCluster ({err}). Its worker processes import the main script again: in a "
            "script, put the code that fits under `if __name__ == \"__main__\":`; or start a cluster yourself and pass "
            "its Client (scheduler=client)") from err


def _tree(client: Any, items: list[Any], combine: Callable[[list[Any]], Any]) -> Any:
    """Reduce delayed partial results in a tree of fan-in :data:`FAN_IN` on the cluster; return the result.

    Within a task the parts are combined left to right, so with at most :data:`FAN_IN`
    partitions the order of the additions is that of the in-memory path's chunks.
    """
    if not items:
        raise DataError("the data have no partitions: nothing to summarise")
    step = _delayed(combine)
    while len(items) > 1:
        items = [step(items[i:i + FAN_IN]) for i in range(0, len(items), FAN_IN)]
    return client.compute(items[0]).result()


def _combine_sums(parts: list[GroupSums]) -> GroupSums:
    out = parts[0]
    for other in parts[1:]:
        out = out.combine(other)
    return out


def _combine_r(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    return tsqr_factor(np.vstack(parts))


# ------------------------------------------------------------------ Parquet files
def _parquet_files(path: str) -> tuple[Any, list[str]]:
    """(filesystem, data files) of a Parquet file, folder or glob, as Dask will read them."""
    import fsspec

    try:
        fs, _, paths = fsspec.core.get_fs_token_paths(path, mode="rb")
    except Exception as err:  # noqa: BLE001 - fsspec raises several kinds
        raise DataError(f"{path}: cannot list the files ({type(err).__name__}: {err})") from None
    files: list[str] = []
    for p in paths:
        if fs.isdir(p):
            files += [f for f in sorted(fs.find(p)) if not os.path.basename(f).startswith(("_", "."))]
        elif fs.exists(p):
            files.append(p)
    if not files:
        what = "match" if is_glob(path) else "are at"
        raise DataError(f"no files {what} {path}: give a Parquet file, a folder of them or a glob such as "
                        "'data/*.parquet'")
    text = [f for f in files if f.lower().endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt"))]
    if text:
        raise DataError(f"{path} holds CSV files (e.g. {text[0]}); with a Dask scheduler give Parquet files, or read "
                        "the CSVs with dask.dataframe.read_csv(..., usecols=[...]) and pass that DataFrame")
    return fs, files


def _arrow_kind(arrow_type: Any) -> str:
    """number, text, bool, empty (all null) or the Arrow type's name."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return _arrow_kind(arrow_type.value_type)
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or \
            getattr(pa.types, "is_string_view", lambda t: False)(arrow_type):
        return "text"
    if pa.types.is_null(arrow_type):
        return "empty"
    return str(arrow_type)


def _check_file_schemas(fs: Any, files: list[str], formula: Formula) -> None:
    """Every file holds every used column, with one kind of values (read from the footers only).

    A column that no file holds may still come from the folder names (hive partitioning);
    Dask's own schema decides about it.
    """
    import pyarrow.parquet as pq

    columns = list(formula.columns)
    present: dict[str, set[str]] = {c: set() for c in columns}
    kinds: dict[str, dict[str, list[str]]] = {c: {} for c in columns}
    for f in files:
        try:
            with fs.open(f, "rb") as handle:
                schema = pq.read_schema(handle)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds
            raise DataError(f"{f} is not a readable Parquet file ({type(err).__name__}: {err}); remove it from "
                            "the dataset or rewrite it") from None
        for c in columns:
            if c in schema.names:
                present[c].add(f)
                arrow_type = schema.field(c).type
                kind = _arrow_kind(arrow_type)
                if kind != "empty":
                    kinds[c].setdefault(f"{kind} ({arrow_type})", []).append(f)
    for c in columns:
        if present[c] and len(present[c]) < len(files):
            lacking = [f for f in files if f not in present[c]]
            raise DataError(
                f"column {c!r} is missing from {len(lacking)} of {len(files)} Parquet files (e.g. {lacking[0]}); the "
                f"formula needs it in every file: rewrite those files with {c!r}, or leave them out of the path")
        by_kind: dict[str, list[str]] = {}
        for label, where in kinds[c].items():
            by_kind.setdefault(label.split(" (")[0], []).extend(where)
        if len(by_kind) > 1:
            raise DataError(_kinds_message(c, kinds[c], "file", formula))


# ------------------------------------------------------------------ pass 0: schema
@dataclasses.dataclass(frozen=True)
class _SchemaPlan:
    """What each partition reports.

    Attributes
    ----------
    columns : tuple of str
        The formula's columns.
    numeric : tuple of str
        Columns that must hold numbers: the response and those inside a numeric function.
    distinct : tuple of str
        Columns whose distinct values are needed whatever their dtype: ``C()`` columns and
        the grouping column (any non-numeric column needs them too: it is categorical).
    group : str or None
        The grouping column.
    """

    columns: tuple[str, ...]
    numeric: tuple[str, ...]
    distinct: tuple[str, ...]
    group: str | None

    @classmethod
    def of(cls, formula: Formula) -> "_SchemaPlan":
        numeric = {formula.response.column}
        distinct = set()
        for term in formula.terms + (formula.group.terms if formula.group else ()):
            for f in term.factors:
                if f.categorical:
                    distinct.add(f.column)
                elif f.function is not None:
                    numeric.add(f.column)
        group = formula.group.factor if formula.group else None
        if group is not None:
            distinct.add(group)
        return cls(tuple(formula.columns), tuple(sorted(numeric - distinct)), tuple(sorted(distinct)), group)


def _kind(series: pd.Series) -> str:
    """The kind of values of one partition's column: number, bool, text, category, empty, or another word."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "text" if _kind(pd.Series(dtype.categories)) == "text" else "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number" if series.notna().any() or not len(series) else "empty"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("string", "unicode"):
        return "text"
    if inferred == "empty":
        return "empty"
    if inferred == "boolean":
        return "bool"
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numbers stored as objects"
    return inferred


def _partition_schema(frame: pd.DataFrame, k: int, plan: _SchemaPlan) -> dict[str, Any]:
    """One partition's record (rows, columns and their kinds, missing values) and distinct values."""
    present = [c for c in plan.columns if c in frame.columns]
    kinds = {c: _kind(frame[c]) for c in present}
    rec: dict[str, Any] = {"k": k, "rows": len(frame), "missing_columns": [c for c in plan.columns if c not in present],
                           "dtypes": {c: str(frame[c].dtype) for c in present}, "kinds": kinds}
    na = frame[present].isna()
    rec["na_counts"] = {str(c): int(v) for c, v in na.sum().items() if v}
    bad_rows = na.any(axis=1).to_numpy() if present else np.zeros(len(frame), bool)
    rec["na_rows"] = int(bad_rows.sum())
    rec["first_na"] = int(np.flatnonzero(bad_rows)[0]) if rec["na_rows"] else None
    complete = frame.loc[~bad_rows, present] if rec["na_rows"] else frame[present]
    values: dict[tuple[str, str], pd.Series] = {}
    examples: dict[str, Any] = {}
    for c in present:
        kind = kinds[c]
        if kind == "empty":
            continue
        if c in plan.numeric:
            if kind != "number":
                examples[c] = _first_non_numeric(complete[c])
            continue
        if kind != "number" or c in plan.distinct:
            values[(c, kind)] = _distinct(complete[c])
            if kind != "number" and len(complete):
                examples[c] = complete[c].iloc[0]
    rec["examples"] = {c: _plain(v) for c, v in examples.items()}
    return {"parts": [rec], "values": values}


def _distinct(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.drop_duplicates().reset_index(drop=True)
    return pd.Series(pd.unique(series), dtype=series.dtype, name=series.name)


def _first_non_numeric(series: pd.Series) -> Any:
    coerced = pd.to_numeric(series, errors="coerce")
    bad = (coerced.isna() & series.notna()).to_numpy()
    return series.iloc[int(np.flatnonzero(bad)[0])] if bad.any() else (series.iloc[0] if len(series) else None)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _combine_schema(parts: list[dict[str, Any]]) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    values: dict[tuple[str, str], list[pd.Series]] = {}
    for p in parts:
        records += p["parts"]
        for key, s in p["values"].items():
            values.setdefault(key, []).append(s)
    return {"parts": records, "values": {key: _union(many) for key, many in values.items()}}


def _union(many: list[pd.Series]) -> pd.Series:
    """The distinct values of several Series, in order of appearance, typed as pandas concatenates them."""
    if len(many) == 1:
        return many[0]
    cats = [s for s in many if isinstance(s.dtype, pd.CategoricalDtype)]
    if len(cats) == len(many) and all(list(s.cat.categories) == list(cats[0].cat.categories) for s in cats):
        return pd.concat(many, ignore_index=True).drop_duplicates().reset_index(drop=True)
    if cats:  # categoricals with other categories, or next to plain values: their values, as pandas concatenates
        many = [s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s for s in many]
    both = pd.concat(many, ignore_index=True)
    return pd.Series(pd.unique(both), dtype=both.dtype, name=both.name)


def _run_schema(client: Any, parts: list[Any], plan: _SchemaPlan, whole: Any) -> dict[str, Any]:
    """Pass 0 over the partitions; ``whole`` (all columns) is computed only to explain a failure."""
    try:
        return _tree(client, [_delayed(_partition_schema)(p, k, plan) for k, p in enumerate(parts)], _combine_schema)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - a partition that cannot be computed: find which, and why
        raise _unreadable(client, whole, err, plan.columns) from None


def _unreadable(client: Any, whole: Any, err: BaseException, columns: Sequence[str]) -> DataError:
    """Why the schema pass failed: partitions that cannot be computed, or that lack a column."""
    from distributed import wait

    futures = client.compute([_delayed(_columns_of)(p) for p in whole.to_delayed()])
    wait(futures)
    failed = [(k, f.exception()) for k, f in enumerate(futures) if f.status == "error"]
    if failed:
        client.cancel(futures)
        k, exc = failed[0]
        return DataError(
            f"{len(failed)} of {len(futures)} partitions cannot be computed ({_ranges([k for k, _ in failed])}), e.g. "
            f"partition {k}: {type(exc).__name__}: {exc}. When the partitions come from files that differ (a column "
            "missing from some, another type), make the files agree, or give the Parquet path itself (it is then "
            "checked file by file)")
    have = client.gather(futures)
    for c in columns:
        lacking = [k for k, cols in enumerate(have) if c not in cols]
        if lacking:
            return DataError(_missing_message(c, lacking, len(have), [x for x in columns if x in have[lacking[0]]]))
    return DataError(f"the schema pass over the partitions failed: {type(err).__name__}: {err}")


def _missing_message(column: str, lacking: list[int], n_parts: int, has: list[str]) -> str:
    shown = ", ".join(map(repr, has)) or "none of the formula's columns"
    return (f"column {column!r} is missing from {len(lacking)} of {n_parts} partitions ({_ranges(lacking)}; partition "
            f"{lacking[0]} has {shown}); the formula needs it in every partition: fix the data that lack it "
            "(e.g. files written with other columns)")


def _columns_of(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns]


def _ranges(ks: Sequence[int], limit: int = 6) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5`` (at most ``limit`` runs, then ``...``)."""
    ks = sorted(ks)
    runs: list[str] = []
    start = prev = ks[0]
    for k in list(ks[1:]) + [None]:
        if k is not None and k == prev + 1:
            prev = k
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if k is not None:
            start = prev = k
    return ", ".join(runs[:limit]) + (", ..." if len(runs) > limit else "")


def _kinds_message(column: str, where: dict[str, list[Any]], unit: str, formula: Formula,
                   examples: dict[str, Any] | None = None) -> str:
    """Which partitions (or files) hold which kind of values in ``column``, and the fix."""
    shown = []
    for label, items in sorted(where.items(), key=lambda kv: -len(kv[1])):
        ex = f", e.g. {examples[label]!r}" if examples and examples.get(label) is not None else ""
        if unit == "partition":
            names = f"{unit}{'s' if len(items) > 1 else ''} {_ranges(items)}"
        else:
            names = f"{len(items)} {unit}{'s' if len(items) > 1 else ''} (e.g. {items[0]})"
        shown.append(f"{label} in {names}{ex}")
    if formula.group is not None and column == formula.group.factor:
        return (f"the grouping column {column!r} holds labels of different types: {'; '.join(shown)}. Group labels "
                f"must have one type in every {unit}: write them all as one type (e.g. strings), or cast the column "
                "before fitting")
    return (f"column {column!r} holds different kinds of values: {'; '.join(shown)}. Every {unit} must hold one "
            f"kind (a non-numeric {unit} among numeric ones is usually text where numbers belong): fix the odd "
            f"{unit}s, or cast the column before fitting (e.g. ddf[{column!r}].astype(float))")


def _decide(schema: dict[str, Any], formula: Formula, plan: _SchemaPlan, dropna: bool
            ) -> tuple[DesignSpec, int, int]:
    """Check the partition records, then build the spec from the distinct values: (spec, dropped, rows)."""
    recs = sorted(schema["parts"], key=lambda r: r["k"])
    by_k = {r["k"]: r for r in recs}
    rows = sum(r["rows"] for r in recs)
    for c in plan.columns:
        lacking = [r["k"] for r in recs if c in r["missing_columns"]]
        if lacking:
            raise DataError(_missing_message(c, lacking, len(recs), list(by_k[lacking[0]]["dtypes"])))
    for c in plan.numeric:
        for r in recs:
            if r["kinds"][c] not in ("number", "empty"):
                subject = f"the response {c!r}" if c == formula.response.column else f"{c!r} (used in a function)"
                raise DataError(f"{subject} is not numeric in partition {r['k']} (dtype {r['dtypes'][c]}, e.g. "
                                f"{r['examples'].get(c)!r}); it must hold numbers in every partition: convert it, "
                                "or fix or drop the rows that hold text")
    for c in plan.columns:
        where: dict[str, list[int]] = {}
        examples: dict[str, Any] = {}
        for r in recs:
            kind = r["kinds"][c]
            if kind == "empty":
                continue
            where.setdefault(kind, []).append(r["k"])
            if kind not in examples and r["examples"].get(c) is not None:
                examples[kind] = r["examples"][c]
        if len(where) > 1:
            named = {f"{kind} ({', '.join(sorted({by_k[k]['dtypes'][c] for k in ks}))})": ks for kind, ks in where.items()}
            ex = {label: examples.get(label.split(" (")[0]) for label in named}
            raise DataError(_kinds_message(c, named, "partition", formula, ex))
    na_rows = sum(r["na_rows"] for r in recs)
    if na_rows:
        counts: dict[str, int] = {}
        for r in recs:
            for c, v in r["na_counts"].items():
                counts[c] = counts.get(c, 0) + v
        if not dropna:
            offset, first = 0, (0, 0)
            for r in recs:
                if r["first_na"] is not None:
                    first = (offset + r["first_na"], r["k"])
                    break
                offset += r["rows"]
            worst = [f"{c!r} ({counts[c]})" for c in plan.columns if counts.get(c)]
            raise DataError(
                f"{na_rows} row(s) have missing values in the columns the formula uses: {', '.join(worst)}; the first "
                f"is row {first[0]} (partition {first[1]}). Drop them with dropna=True (CLI: --dropna) or impute them")
        if na_rows == rows:
            raise DataError(f"every row has a missing value in {', '.join(c for c in plan.columns if counts.get(c))}: "
                            "nothing is left to fit")
    if rows - na_rows < 2:
        raise DataError(f"only {rows - na_rows} row(s) to fit: give at least two")
    return build_spec(formula, _proxy_frame(schema["values"], plan)), na_rows, rows


def _proxy_frame(values: dict[tuple[str, str], pd.Series], plan: _SchemaPlan) -> pd.DataFrame:
    """A small frame holding exactly the distinct values of every column (numeric columns: one 0).

    :func:`~hierlin_stan.model.design.build_spec` decides kinds, levels and group labels
    from dtypes and distinct values only (sorted, or in a categorical's order), so this
    frame gives the spec the whole data would.
    """
    by_column: dict[str, pd.Series] = {}
    for (c, _), s in values.items():
        by_column[c] = s if c not in by_column else _union([by_column[c], s])
    for c in plan.columns:
        by_column.setdefault(c, pd.Series([0.0]))  # numbers (distinct values not needed)
    length = max(len(s) for s in by_column.values())
    frame = {}
    for c in plan.columns:
        s = by_column[c].reset_index(drop=True)
        if len(s) < length:  # repeat the first value: the distinct values stay the same
            s = pd.concat([s, s.iloc[[0] * (length - len(s))]], ignore_index=True)
        frame[c] = s
    return pd.DataFrame(frame)


# ------------------------------------------------------------------ passes 1 and 2
def _rows(frame: pd.DataFrame, k: int, columns: list[str], dropna: bool) -> pd.DataFrame:
    frame = frame[columns]
    if dropna:
        bad = frame.isna().any(axis=1).to_numpy()
        if bad.any():
            frame = frame.loc[~bad]
    return frame


def _codes(frame: pd.DataFrame, spec: DesignSpec, index: pd.Index, k: int) -> np.ndarray:
    """0-based group codes: factorise the partition, then map its few distinct labels to the global ones."""
    if spec.group_factor is None:
        return np.zeros(len(frame), dtype=np.int64)
    series = frame[spec.group_factor]
    local, uniques = pd.factorize(series)
    labels = _label_values(pd.Series(np.asarray(uniques, dtype=object) if isinstance(series.dtype, pd.CategoricalDtype)
                                     else uniques))
    mapping = index.get_indexer(labels)
    if (mapping < 0).any():
        bad = labels[int(np.flatnonzero(mapping < 0)[0])]
        raise DataError(f"group label {bad!r} of partition {k} was not seen by the schema pass; the data changed "
                        "between passes (recompute on data that stay put)")
    return mapping[local].astype(np.int64)


def _partition_chunks(frame: pd.DataFrame, k: int, spec: DesignSpec, index: pd.Index
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    codes = _codes(frame, spec, index, k)
    for sl in chunked(len(frame), CHUNK_ROWS):
        try:
            yield spec.matrices(frame.iloc[sl], codes[sl])
        except DataError as err:
            raise DataError(f"{err} (partition {k})") from None


@dataclasses.dataclass
class _Coding:
    """What every partition codes its rows with: the spec and an index of the group labels."""

    spec: DesignSpec
    index: pd.Index


def _partition_sums(frame: pd.DataFrame, k: int, coding: _Coding, columns: list[str], dropna: bool) -> GroupSums:
    spec = coding.spec
    out = GroupSums.zeros(spec.n_groups, spec.p, spec.q)
    for chunk in _partition_chunks(_rows(frame, k, columns, dropna), k, spec, coding.index):
        out.add(*chunk)
    return out


@dataclasses.dataclass
class _Projection:
    """What pass 2 needs of pass 1 on every worker: counts, ranks and projection coefficients.

    It has the attributes :func:`~hierlin_stan.model.sums.residual_rows` reads from both its
    ``sums`` (``n``) and ``blocks`` (``rank``, ``hy``, ``hx``) arguments, and nothing else,
    so the workers are not sent the whole of either.
    """

    n: np.ndarray
    rank: np.ndarray
    hy: np.ndarray
    hx: np.ndarray


def _partition_r(frame: pd.DataFrame, k: int, coding: _Coding, proj: _Projection, columns: list[str],
                 dropna: bool) -> np.ndarray:
    spec = coding.spec
    r = None
    for y, x, z, codes in _partition_chunks(_rows(frame, k, columns, dropna), k, spec, coding.index):
        r = tsqr_factor(residual_rows(y, x, z, codes, proj, proj), r)  # type: ignore[arg-type]
    if r is None:
        r = np.zeros((spec.p + 1, spec.p + 1))
    return r


def _stats(sums: GroupSums, blocks: GroupBlocks, r: np.ndarray) -> SufficientStats:
    """As :func:`~hierlin_stan.model.sums.sufficient_stats` finishes, from the reduced R factor."""
    residual: ResidualStats = residual_stats(r, np.sqrt(np.diag(sums.xtx)))
    e_star = blocks.e - np.einsum("jqp,p->jq", blocks.f, residual.beta_star)
    return SufficientStats(sums, blocks, residual, e_star)
