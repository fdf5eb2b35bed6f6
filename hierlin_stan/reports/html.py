"""Self-contained HTML reports: sections of text, tables and embedded PNG figures.

One file a person can open anywhere (no external assets): figures are inlined
as base64 PNG, tables are plain HTML with numbers formatted for reading.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .tables import format_value
from ..utils.files import write_text_atomic

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.5; padding: 0 1rem; }
h1 { font-size: 1.8rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 2px solid #eee; }
.subtitle { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.7rem; text-align: right; }
th { background: #f5f7fa; } td:first-child, th:first-child { text-align: left; }
tr.bad td { background: #fdecea; } tr.good td { background: #eef7ee; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
.note { background: #f5f7fa; border-left: 4px solid #4a78b5; padding: 0.6rem 1rem; }
.verdict-ok { color: #1b7a1b; font-weight: 600; } .verdict-bad { color: #b3261e; font-weight: 600; }
nav a { margin-right: 1rem; }
code, pre { background: #f5f7fa; padding: 0.1rem 0.3rem; }
"""


@dataclasses.dataclass
class Section:
    """One report section: a title, paragraphs (HTML-escaped unless ``raw``), tables, figures."""

    title: str
    paragraphs: Sequence[str] = ()
    tables: Sequence[tuple[str, pd.DataFrame]] = ()
    figures: Sequence[tuple[str, Any]] = ()  # (caption, matplotlib Figure or PNG path)
    raw_html: str = ""
    row_status: str | None = None  # optional boolean column marking rows good/bad


def figure_to_data_uri(fig_or_path: Any) -> str:
    """A matplotlib Figure or a PNG file as a ``data:image/png;base64,...`` URI."""
    if isinstance(fig_or_path, (str, Path)):
        data = Path(fig_or_path).read_bytes()
    else:
        buffer = io.BytesIO()
        fig_or_path.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


#: Row backgrounds of tables coloured by a boolean column (as the CSS classes good/bad).
ROW_COLOURS = {True: "#eef7ee", False: "#fdecea"}


def table_html(frame: pd.DataFrame, row_status: str | None = None, inline: bool = False) -> str:
    """``frame`` as an HTML table; rows coloured by the boolean column ``row_status``.

    With ``inline`` the colours are ``style`` attributes on the cells (for HTML shown
    without the report's stylesheet, e.g. in Jupyter); otherwise CSS classes ``good``/``bad``.
    """
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or ""] + list(frame.columns))
    rows = []
    for label, row in frame.iterrows():
        cls = td = ""
        if row_status is not None and row_status in frame.columns:
            good = bool(row[row_status])
            if inline:
                td = f' style="background:{ROW_COLOURS[good]};color:#222"'  # readable on a dark theme too
            else:
                cls = ' class="good"' if good else ' class="bad"'
        cells = "".join(
            f"<td{td}>{html.escape(format_value(v.item() if hasattr(v, 'item') else v))}</td>" for v in row
        )
        rows.append(f"<tr{cls}><td{td}>{html.escape(str(label))}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole report as one HTML string."""
    nav = " ".join(f'<a href="#s{k}">{html.escape(s.title)}</a>' for k, s in enumerate(sections))
    body = []
    for k, section in enumerate(sections):
        parts = [f'<h2 id="s{k}">{html.escape(section.title)}</h2>']
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        if section.raw_html:
            parts.append(section.raw_html)
        for caption, frame in section.tables:
            if caption:
                parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(table_html(frame, section.row_status))
        for caption, fig in section.figures:
            parts.append(f'<figure><img src="{figure_to_data_uri(fig)}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        body.append("\n".join(parts))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='subtitle'>{html.escape(subtitle)}</p><nav>{nav}</nav>"
        + "\n".join(body)
        + "</body></html>"
    )


def write_report(path: str | Path, title: str, subtitle: str, sections: Sequence[Section]) -> Path:
    """Render and write the report atomically; return its path."""
    return write_text_atomic(path, render(title, subtitle, sections))


def headline_html(lines: list[tuple[str, bool | None]]) -> str:
    """A report's verdict sentences as a list, each flagged good (green), bad (red) or neutral."""
    parts = []
    for text, ok in lines:
        cls = {True: ' class="verdict-ok"', False: ' class="verdict-bad"', None: ""}[ok]
        parts.append(f"<li><span{cls}>{html.escape(text)}</span></li>")
    return f'<div class="note"><ul>{"".join(parts)}</ul></div>'
