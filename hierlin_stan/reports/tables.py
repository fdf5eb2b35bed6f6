"""Plain-text renderings of tables: Markdown without extra dependencies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..utils.files import atomic_path, write_text_atomic


def format_value(value: Any) -> str:
    """A number as a person reads it: 4 significant digits, integers whole."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value == int(value) and abs(value) < 1e9:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def to_markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """Render ``frame`` as a GitHub Markdown table."""
    columns = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for label, row in frame.iterrows():
        cells = ([str(label)] if index else []) + [format_value(v.item() if hasattr(v, "item") else v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, stem: str | Path, title: str | None = None) -> list[Path]:
    """Write ``frame`` as ``stem.csv`` and ``stem.md``; return both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp)
    head = f"## {title}\n\n" if title else ""
    write_text_atomic(md_path, head + to_markdown(frame))
    return [csv_path, md_path]
