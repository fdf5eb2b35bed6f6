"""The package's rooms import only downwards, and no module imports itself back through others.

Rooms, lowest first: utils, model, engines, samplers, checks, workflows, reports, then the
command line and the package's front door. Imports inside functions count too: hiding an
upward import in a function is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hierlin_stan"
ROOMS = ["utils", "model", "engines", "samplers", "checks", "workflows", "reports", "cli"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every hierlin_stan module that ``path`` imports, anywhere in the file."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("hierlin_stan"):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hierlin_stan"))
    return {m for m in found if m != name}


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _room(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) == 1:
        return None  # the package's front door re-exports everything
    head = parts[1]
    if head in ("cli", "__main__"):
        return ROOMS.index("cli")
    return ROOMS.index(head) if head in ROOMS else None


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_only(module):
    here = _room(module)
    if here is None:
        return
    upward = sorted(t for t in GRAPH[module] if (_room(t) is not None and _room(t) > here) or t == "hierlin_stan")
    assert not upward, f"{module} ({ROOMS[here]}) imports from a higher room: {upward}"


def test_no_import_cycles():
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in GRAPH or nxt == "hierlin_stan":
                continue
            # a package's __init__ importing its own submodules is not a circle
            if node == nxt.rsplit(".", 1)[0] or nxt == node.rsplit(".", 1)[0] and node.startswith(nxt + "."):
                continue
            if seen.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for module in sorted(GRAPH):
        if module not in seen:
            visit(module)


def test_layout_check_finds_an_upward_import(tmp_path):
    """The checker itself: an upward import in a function is caught."""
    fake = PACKAGE / "model" / "_probe_for_layout_test.py"
    fake.write_text("def f():\n    from ..workflows import compare\n", encoding="utf-8")
    try:
        imports = _imports(fake)
    finally:
        fake.unlink()
    assert "hierlin_stan.workflows.compare" in imports
    assert _room("hierlin_stan.workflows.compare") > _room("hierlin_stan.model._probe_for_layout_test")
