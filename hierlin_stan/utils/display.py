"""Rich display of results in Jupyter (``_repr_html_``, ``_repr_markdown_``), drawn by the reports room.

Results live in rooms below ``reports`` (a verdict in ``checks``, a comparison and an
SBC result in ``workflows``) and must not import it; the code that draws them lives
in ``reports``. So a result class inherits :class:`RichDisplay`, whose methods look
its renderers up here, and :mod:`hierlin_stan.reports.display` registers them when
the package is imported (``import hierlin_stan`` imports ``reports``). A class with
no renderer registered falls back to its plain text, as Jupyter does when a
``_repr_*_`` method returns None.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["RichDisplay", "register_display", "render"]

Renderer = Callable[[Any], str]

# class -> {"html": renderer, "markdown": renderer}
_RENDERERS: dict[type, dict[str, Renderer]] = {}


def register_display(cls: type, *, html: Renderer | None = None, markdown: Renderer | None = None) -> None:
    """Register how instances of ``cls`` (and its subclasses) display as HTML and Markdown."""
    entry = _RENDERERS.setdefault(cls, {})
    if html is not None:
        entry["html"] = html
    if markdown is not None:
        entry["markdown"] = markdown


def render(obj: Any, kind: str) -> str | None:
    """``obj`` rendered as ``kind`` ("html" or "markdown") by the renderer of its class or nearest base; None if none."""
    if kind not in ("html", "markdown"):
        raise ValueError(f"kind={kind!r} is unknown; use 'html' or 'markdown'")
    for cls in type(obj).__mro__:
        renderer = _RENDERERS.get(cls, {}).get(kind)
        if renderer is not None:
            return renderer(obj)
    return None


class RichDisplay:
    """Mixin: ``_repr_html_`` and ``_repr_markdown_`` drawn by the renderers registered for the class."""

    __slots__ = ()

    def _repr_html_(self) -> str | None:
        return render(self, "html")

    def _repr_markdown_(self) -> str | None:
        return render(self, "markdown")
