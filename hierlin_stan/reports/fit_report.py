"""Write a fit's results to a folder: tables (CSV, Markdown), plots (PNG), NetCDF.

Written into a folder that the caller stages (:func:`hierlin_stan.utils.output.staged_output`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from ..utils.az import az
from ..checks.diagnostics import recovery, sampler_stats, summary, verdict
from .plots import plot_ppc_lines, plot_recovery, plot_trace
from .plots_groups import plot_group_lines, plot_partial_pooling
from .tables import write_table
from ..utils.files import atomic_path, write_text_atomic


def write_netcdf(idata: "az.InferenceData", path: str | Path) -> Path:
    """Save InferenceData to NetCDF atomically."""
    with atomic_path(path) as tmp:
        idata.to_netcdf(str(tmp))
    return Path(path)


def write_fit_report(idata: "az.InferenceData", folder: str | Path, name: str, truth: Any = None) -> dict[str, Any]:
    """Write everything about one fit into ``folder`` with file names starting ``name``.

    Files: ``{name}_summary.csv/.md``, ``{name}_recovery.csv/.md`` and
    ``{name}_recovery.png`` (when the truth is known), ``{name}_trace.png``,
    ``{name}_verdict.txt``, ``{name}.nc``; for the notebook's model
    ``{name}_ppc_lines.png``; for a formula fit that kept its rows
    ``{name}_group_lines.png`` and ``{name}_partial_pooling.png``.

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
    if "coef" in idata.posterior and "constant_data" in idata.groups() and "X" in idata.constant_data:
        terms = [str(t) for t in idata.posterior["beta"]["term"].values]
        if any(t != "Intercept" and ":" not in t and "[" not in t for t in terms):
            plot_group_lines(idata, path=folder / f"{name}_group_lines.png")
        plot_partial_pooling(idata, path=folder / f"{name}_partial_pooling.png")
    plt.close("all")
    write_netcdf(idata, folder / f"{name}.nc")
    text = verdict(idata, truth)
    write_text_atomic(folder / f"{name}_verdict.txt", text + "\n")
    return {"stats": sampler_stats(idata), "verdict": text, "summary": summ, "recovery": rec}
