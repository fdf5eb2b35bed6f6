"""Write a fit's results to a folder: tables (CSV, Markdown), plots (PNG), NetCDF.

Output folders are staged: everything is written into a hidden sibling folder
that is renamed into place at the end, so an interrupted run leaves no folder
that looks complete, and an existing folder is replaced only when asked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import matplotlib.pyplot as plt
import pandas as pd

from ._arviz import az
from .diagnostics import recovery, sampler_stats, summary, verdict
from .plots import plot_ppc_lines, plot_recovery, plot_trace
from .tables import to_markdown
from .utils.files import atomic_path, umask_mode, write_text_atomic


class OutputExistsError(FileExistsError):
    """The output folder exists and overwriting was not asked for."""


def check_output(out: str | Path, force: bool = False) -> Path:
    """Raise now if :func:`staged_output` would refuse ``out`` (call it before long work).

    Raises
    ------
    OutputExistsError
        ``out`` exists, is not empty, and ``force`` is False.
    NotADirectoryError
        ``out`` is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} is a file; give a folder path (--out DIR)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"output folder {out} exists and is not empty; pass --force (force=True) to replace it")
    return out


@contextlib.contextmanager
def staged_output(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a scratch folder that replaces ``out`` when the block succeeds.

    Raises
    ------
    OutputExistsError
        ``out`` exists, is not empty, and ``force`` is False.
    NotADirectoryError
        ``out`` is a file.
    """
    out = check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    os.chmod(scratch, umask_mode(folder=True))
    try:
        yield scratch
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            scratch.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            scratch.rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_netcdf(idata: "az.InferenceData", path: str | Path) -> Path:
    """Save InferenceData to NetCDF atomically."""
    with atomic_path(path) as tmp:
        idata.to_netcdf(str(tmp))
    return Path(path)


def write_table(frame: pd.DataFrame, stem: str | Path, title: str | None = None) -> list[Path]:
    """Write ``frame`` as ``stem.csv`` and ``stem.md``; return both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp)
    head = f"## {title}\n\n" if title else ""
    write_text_atomic(md_path, head + to_markdown(frame))
    return [csv_path, md_path]


def write_fit_report(idata: "az.InferenceData", folder: str | Path, name: str, truth: Any = None) -> dict[str, Any]:
    """Write everything about one fit into ``folder`` with file names starting ``name``.

    Files: ``{name}_summary.csv/.md``, ``{name}_recovery.csv/.md`` (when the truth
    is known), ``{name}_trace.png``, ``{name}_ppc_lines.png``,
    ``{name}_recovery.png``, ``{name}.nc``.

    Returns
    -------
    dict
        ``stats`` (sampler_stats), ``verdict`` text, ``summary`` and ``recovery`` tables.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summ = summary(idata)
    write_table(summ, folder / f"{name}_summary", f"{name}: posterior summary")
    rec = None
    try:
        rec = recovery(idata, truth)
    except ValueError:
        rec = None
    if rec is not None:
        write_table(rec, folder / f"{name}_recovery", f"{name}: recovery of the true values")
        plot_recovery(idata, truth, path=folder / f"{name}_recovery.png")
    plot_trace(idata, truth, path=folder / f"{name}_trace.png")
    if "b" in idata.posterior and "constant_data" in idata.groups():
        plot_ppc_lines(idata, path=folder / f"{name}_ppc_lines.png")
    plt.close("all")
    write_netcdf(idata, folder / f"{name}.nc")
    text = verdict(idata, truth)
    write_text_atomic(folder / f"{name}_verdict.txt", text + "\n")
    return {"stats": sampler_stats(idata), "verdict": text, "summary": summ, "recovery": rec}
