"""Write a benchmark run: tables (CSV, Markdown), plots and the machine it ran on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..utils.files import write_text_atomic
from ..utils.output import staged_output
from .plots import plot_ess, plt, save_figure
from .plots_bench import plot_programs, plot_scaling
from .tables import write_table

if TYPE_CHECKING:  # pragma: no cover
    from ..workflows.bench import BenchResult

__all__ = ["write_bench"]


def write_bench(result: "BenchResult", out: str | Path, force: bool = False) -> Path:
    """Write ``samplers.csv/.md``, ``scaling.csv/.md``, ``ess_per_sampler.png``, ``scaling.png``,
    ``programs.csv/.md`` with ``programs.png`` (when the run measured program variants) and
    ``machine.json`` into ``out``, completely or not at all; return the folder."""
    with staged_output(out, force=force) as folder:
        table, scaling = result.samplers, result.scaling
        write_table(table, folder / "samplers", "ESS per second per sampler (notebook data, N = 100)")
        write_table(scaling.set_index(["design", "N"]), folder / "scaling",
                    "Stan marginal NUTS: seconds and ESS/s vs N (data summarised once)")
        write_text_atomic(folder / "machine.json", json.dumps(result.machine, indent=2) + "\n")
        ok = table[pd.to_numeric(table.get("min_ess_bulk_per_s"), errors="coerce").notna()] \
            if "min_ess_bulk_per_s" in table else table.iloc[:0]
        if len(ok):
            plot_ess(ok, path=folder / "ess_per_sampler.png")
        axes = plot_scaling(scaling)
        save_figure(axes[0].figure, folder / "scaling.png")
        programs = result.programs
        if programs is not None and len(programs):
            write_table(programs.set_index(["data", "variant"]), folder / "programs",
                        "Program variants: ESS per chain-second and per wall-second, ms per gradient "
                        "(simulate(..., eps=0.5, seed=3), 4 chains)")
            if (pd.to_numeric(programs.get("ess_per_chain_second"), errors="coerce") > 0).any():
                axes = plot_programs(programs)
                save_figure(axes[0].figure, folder / "programs.png")
        plt.close("all")
    return Path(out)
