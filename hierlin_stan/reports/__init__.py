"""Reports: plots, tables and self-contained HTML pages written from results.

Results never write themselves; :func:`write_report` picks the writer for a result.
Nor do they draw themselves in Jupyter: :mod:`.display` registers how a verdict, a
comparison and an SBC result show there (imported here, so ``import hierlin_stan`` does it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import display  # noqa: F401 - registers the rich displays of results

__all__ = ["write_report"]


def write_report(result: Any, out: str | Path | None = None, force: bool = False) -> Path:
    """Write the report folder of a result; return what was written.

    Parameters
    ----------
    result : Comparison, ModelComparison, SBCResult or BenchResult
        From :func:`hierlin_stan.compare`, :func:`hierlin_stan.compare_models`, :func:`hierlin_stan.sbc` or
        :func:`hierlin_stan.workflows.bench.run_bench`.
    out : path, optional
        The folder. An SBC run defaults to its own folder.
    force : bool
        Replace an existing, non-empty folder (Comparison, ModelComparison and BenchResult; an SBC
        folder is updated in place, next to its records).

    Returns
    -------
    pathlib.Path
        The folder (the HTML page for SBC).
    """
    from ..workflows.bench import BenchResult
    from ..workflows.compare import Comparison
    from ..workflows.models import ModelComparison
    from ..workflows.sbc import SBCResult

    if isinstance(result, Comparison):
        from .compare_report import write_comparison

        if out is None:
            raise ValueError("write_report(comparison, out): give the folder to write")
        return write_comparison(result, out, force)
    if isinstance(result, ModelComparison):
        from .models_report import write_models

        if out is None:
            raise ValueError("write_report(model_comparison, out): give the folder to write")
        return write_models(result, out, force)
    if isinstance(result, SBCResult):
        from .sbc_report import write_sbc_report

        return write_sbc_report(result, out)
    if isinstance(result, BenchResult):
        from .bench_report import write_bench

        if out is None:
            raise ValueError("write_report(bench_result, out): give the folder to write")
        return write_bench(result, out, force)
    raise ValueError(f"write_report does not know {type(result).__name__}; give a Comparison, ModelComparison, SBCResult or BenchResult")
