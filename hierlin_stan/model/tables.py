"""Read the columns a formula needs from a DataFrame, a CSV or Parquet file, or a Dataset.

Files are read by a real reader (pyarrow, falling back to pandas for CSVs whose column
types change far into the file), and only the named columns are read, so a wide file
costs no more than its used columns. The result is a pandas DataFrame of those columns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from .design import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = ["TableLike", "read_columns", "describe_source", "arrow_to_frame"]

TableLike = Any  # pandas.DataFrame, str/PathLike to .csv/.parquet, or hierlin_stan.Dataset

_CSV = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")
_PARQUET = (".parquet", ".pq", ".parq")


def describe_source(data: TableLike) -> str:
    """A short description of where the data came from (recorded with a fit)."""
    if isinstance(data, pd.DataFrame):
        return f"DataFrame ({len(data)} rows)"
    if isinstance(data, (str, os.PathLike)):
        return str(data)
    return type(data).__name__


def read_columns(data: TableLike, columns: Sequence[str]) -> pd.DataFrame:
    """The named columns of ``data`` as a DataFrame.

    Parameters
    ----------
    data : pandas.DataFrame, path or Dataset
        A CSV (``.csv``, ``.tsv``, optionally gzipped) or Parquet file (or a folder of
        Parquet files), or a :class:`hierlin_stan.Dataset` (columns x, y, group).
    columns : sequence of str
        The columns to keep (the formula's); a missing one is an error naming the
        columns present.

    Raises
    ------
    DataError
        Missing file or column, unreadable file, unknown file type.
    """
    columns = list(dict.fromkeys(columns))
    if isinstance(data, pd.DataFrame):
        _check_present(columns, [str(c) for c in data.columns], "the DataFrame")
        frame = data.loc[:, columns]
        frame.columns = [str(c) for c in frame.columns]
        return frame
    if isinstance(data, (str, os.PathLike)):
        return _read_file(Path(data), columns)
    if hasattr(data, "group_labels") and hasattr(data, "x") and hasattr(data, "y"):  # a Dataset
        frame = pd.DataFrame({"x": data.x, "y": data.y, "group": data.group_labels})
        _check_present(columns, list(frame.columns), "the Dataset (columns x, y, group)")
        return frame.loc[:, columns]
    if type(data).__module__.split(".")[0] == "dask":
        raise DataError(f"a Dask {type(data).__name__} cannot be read into memory here: hs.fit(ddf, formula=...) "
                        "fits it from per-group sums computed on the cluster, but this step needs the rows "
                        "themselves; pass ddf[columns].compute() (a pandas DataFrame) if they fit in memory")
    raise DataError(f"data of type {type(data).__name__} is not understood; give a pandas DataFrame, "
                    "a CSV or Parquet path, or a hierlin_stan.Dataset")


def _check_present(columns: Sequence[str], have: Sequence[str], where: str) -> None:
    import difflib

    for name in columns:
        if name not in have:
            close = difflib.get_close_matches(name, list(have), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            shown = list(have) if len(have) <= 20 else list(have[:20]) + ["..."]
            raise DataError(f"{where} has no column {name!r}{hint} (columns: {', '.join(map(str, shown))})")


def _read_file(path: Path, columns: list[str]) -> pd.DataFrame:
    name = path.name.lower()
    if path.is_dir() or name.endswith(_PARQUET):
        return _read_parquet(path, columns)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if name.endswith(_CSV):
        return _read_csv(path, columns)
    raise DataError(f"{path}: unknown file type; give a .csv/.tsv (optionally .gz) or .parquet file")


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    import pyarrow.dataset as ds

    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    try:
        dataset = ds.dataset(str(path), format="parquet")
    except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds
        raise DataError(f"{path} is not a readable Parquet file or folder: {err}") from None
    _check_present(columns, dataset.schema.names, str(path))
    return arrow_to_frame(dataset.to_table(columns=columns))


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    import pyarrow as pa

    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            head = stream.read(1 << 16).decode("utf-8", "replace")
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from None
    first = head.splitlines()[0] if head.strip() else ""
    if not first.strip():
        raise DataError(f"{path} is empty: give a header row naming the columns and the data")
    header = [c.strip().strip('"') for c in first.split(delimiter)]
    _check_present(columns, header, str(path))
    try:
        return _stream_csv(path, columns, delimiter)
    except pa.ArrowInvalid:
        # Column types that change far into the file (a number column holding text
        # later): let pandas read it, in chunks, then name the bad value elsewhere.
        pass
    parts = [_compact(chunk) for chunk in pd.read_csv(path, usecols=columns, sep=delimiter, chunksize=1_000_000,
                                                       low_memory=False)]
    return _concat_compact(parts, columns)


def _stream_csv(path: Path, columns: list[str], delimiter: str) -> pd.DataFrame:
    """Read block by block, keeping numbers as float arrays and text as dictionary codes.

    Peak memory is the compact result plus one block, not the parsed file.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    reader = pcsv.open_csv(
        str(path),
        read_options=pcsv.ReadOptions(block_size=1 << 24),
        parse_options=pcsv.ParseOptions(delimiter=delimiter),
        convert_options=pcsv.ConvertOptions(include_columns=columns, strings_can_be_null=True),
    )
    chunks: dict[str, list] = {}
    for batch in reader:
        for name, col in zip(batch.schema.names, batch.columns):
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                col = pc.dictionary_encode(col)
            chunks.setdefault(name, []).append(col)
    if not chunks:
        return pd.DataFrame({c: [] for c in columns})
    table = pa.table({name: pa.chunked_array(parts).unify_dictionaries()
                      if pa.types.is_dictionary(parts[0].type) else pa.chunked_array(parts)
                      for name, parts in chunks.items()})
    return arrow_to_frame(table)


def _compact(chunk: pd.DataFrame) -> pd.DataFrame:
    """A pandas chunk with text columns as categoricals (codes, not Python strings)."""
    for name in chunk.columns:
        if chunk[name].dtype == object or pd.api.types.is_string_dtype(chunk[name]):
            chunk[name] = chunk[name].astype("category")
    return chunk


def _concat_compact(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Concatenate chunks, uniting the categories of text columns (sorted)."""
    from pandas.api.types import union_categoricals

    if not parts:
        return pd.DataFrame({c: [] for c in columns})
    out = {}
    for name in columns:
        cols = [p[name] for p in parts]
        if any(isinstance(c.dtype, pd.CategoricalDtype) for c in cols):
            cols = [c if isinstance(c.dtype, pd.CategoricalDtype) else c.astype("category") for c in cols]
            try:
                merged = union_categoricals(cols, sort_categories=True)
            except TypeError:
                merged = pd.Categorical(pd.concat([c.astype(object) for c in cols], ignore_index=True))
            out[name] = pd.Series(merged)
        else:
            out[name] = pd.concat(cols, ignore_index=True)
    return pd.DataFrame(out)


def first_non_numeric(series: pd.Series) -> tuple[int, Any] | None:
    """(position, value) of the first entry of ``series`` that is not a number, or None."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return None
    coerced = pd.to_numeric(series, errors="coerce")
    bad = coerced.isna() & series.notna()
    if not bad.any():
        return None
    pos = int(np.flatnonzero(bad.to_numpy())[0])
    return pos, series.iloc[pos]


def arrow_to_frame(table: "pa.Table") -> pd.DataFrame:
    """A pyarrow table as a DataFrame, text columns as categoricals with sorted categories.

    Text columns (group labels, categorical predictors) become dictionary-encoded
    before conversion, so 10^7 labels cost their int32 codes rather than 10^7 Python
    strings; each column's buffers are released as it is converted.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.dictionary_encode(col)
        columns[name] = col
    frame = pa.table(columns).to_pandas(self_destruct=True, split_blocks=True)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            cats = frame[name].cat.categories
            try:
                order = sorted(cats)
            except TypeError:
                continue
            if list(order) != list(cats):
                frame[name] = frame[name].cat.reorder_categories(order)
    return frame
