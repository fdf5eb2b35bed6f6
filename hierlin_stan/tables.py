"""Plain-text renderings of tables: Markdown without extra dependencies."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


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
