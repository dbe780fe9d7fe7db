"""No import circles inside the project: the module-level imports of every project module form a DAG.

A circle works until someone reorders two imports (then a name is half-defined at import time); it also
hides which module owns a concept.  Imports inside functions and under ``if TYPE_CHECKING:`` do not run
when a module is imported, so they are not edges here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tools", "experts", "agent", "ui", "voice", "eval_scenarios", "training")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported (module body, its if/try blocks)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                stack += node.body
            stack += node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        elif isinstance(node, ast.With):
            stack += node.body


def _all_imports(tree: ast.Module):
    return (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))


def import_graph(*, every_level: bool = False) -> dict[str, set[str]]:
    """Project module -> the project modules it imports at module level (``every_level``: also inside
    functions and under ``TYPE_CHECKING``)."""
    imports = _all_imports if every_level else _top_level_imports
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        deps: set[str] = set()
        for node in imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = here[: len(here) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from pkg import sub`` imports the submodule when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_the_project():
    graph = import_graph()
    assert {"tools.settings", "experts.registry", "agent.boundary.toolset", "voice.asr", "ui.cli"} <= set(graph)
    assert "experts.yolo_detector" in graph["experts.catalogue"]  # ``from . import yolo_detector``
    assert "tools.errors" in graph["experts.registry"]
    assert "voice.transcript" in graph["voice.asr_whisper"]


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set(), "c": {"a", "b"}}, None),
])
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle


def test_no_import_circles_inside_the_project():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_circles_even_through_imports_inside_functions():
    """Lazy imports (inside functions) still must not close a circle: the command-line modules share
    their helpers through :mod:`tools.entrypoints`, not through ``ui.cli``."""
    cycle = find_cycle(import_graph(every_level=True))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_agent_has_no_circles_even_through_imports_inside_functions():
    """The agent's modules depend one way: tool boundary -> tools -> comparison, planners -> privacy.
    (Before: toolset -> tool_impl -> compare_tool -> toolset; planners -> openai_planner -> planners;
    privacy -> planners, each closed by an import inside a function.)"""
    graph = import_graph(every_level=True)
    agent = {m: {d for d in deps if d.startswith("agent.")} for m, deps in graph.items() if m.startswith("agent.")}
    cycle = find_cycle(agent)
    assert cycle is None, "import circle: " + " -> ".join(cycle)
    assert "agent.boundary.toolset" not in graph["agent.boundary.compare"] and "agent.planners.choose" not in graph["agent.privacy"]
