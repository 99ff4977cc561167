"""interp_lib's import graphs have no cycle, and light modules stay light.

The graphs are read from the source (the AST of every module), not by importing.

* Module graph: an edge ``a -> b`` for every ``import`` / ``from ... import`` that runs
  when ``a`` is imported (module level, including ``try`` / ``if`` blocks but not
  ``if TYPE_CHECKING:``), relative or absolute, to a module of interp_lib. Importing
  ``p.q.r`` also runs the ``__init__`` of ``p.q``, so that is an edge too (unless ``p.q``
  is a package the importer lives in: Python has already started importing it).
* Subpackage graph: the same imports plus the deferred ones (inside functions), between
  the top-level parts of interp_lib (``models``, ``protopnet``, ``profile``, ``viz``...).
  A deferred import breaks no import at run time but still ties two subpackages in a
  circle (``models`` <-> ``protopnet`` before issue 9: warmstart imported
  ``models.train_classifier`` inside a function). The one exception is the convention
  of CONTRIBUTING.md: a result's ``plot()`` imports ``interp_lib.viz`` lazily, so
  deferred imports of ``viz`` do not count (module-level ones do).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import interp_lib

ROOT = Path(interp_lib.__file__).parent
PACKAGE = "interp_lib"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module):
    """Import statements that run at import time (not inside functions or classes)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                stack += node.body
            stack += node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                stack += handler.body
        elif isinstance(node, ast.With):
            stack += node.body


def _all_imports(tree: ast.Module):
    """Every import statement, deferred ones included, except ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack += node.orelse
        else:
            stack += ast.iter_child_nodes(node)


def import_graph(*, deferred: bool = False) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within interp_lib (at module level, or anywhere
    with ``deferred=True``)."""
    modules = _modules()
    walk = _all_imports if deferred else _module_level_imports
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        here = name.split(".") if is_pkg else name.split(".")[:-1]  # package of `name`
        targets: list[str] = []
        for node in walk(tree):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
                continue
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets.append(stem)
            targets += [f"{stem}.{alias.name}" for alias in node.names]  # submodules
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for target in targets:
            if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                mod = ".".join(parts[:i])
                if mod in modules and mod != name and mod not in own_packages:
                    graph[name].add(mod)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    sccs: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs


#: Parts that may be imported lazily against the grain: CONTRIBUTING.md lets a result's
#: ``plot()`` import ``interp_lib.viz`` inside the method (figures are reached from viz).
LAZY_OK = {"viz"}


def subpackage_graph() -> dict[str, set[str]]:
    """``{part: parts it imports}`` for the top-level parts of interp_lib, deferred
    imports included (except deferred imports of the parts in :data:`LAZY_OK`)."""
    eager = import_graph()
    graph: dict[str, set[str]] = {}
    for name, targets in import_graph(deferred=True).items():
        if name == PACKAGE:
            continue
        part = name.split(".")[1]
        graph.setdefault(part, set()).update(
            t.split(".")[1]
            for t in targets
            if t != PACKAGE
            and t.split(".")[1] != part
            and (t in eager[name] or t.split(".")[1] not in LAZY_OK)
        )
    for targets in list(graph.values()):
        for t in targets:
            graph.setdefault(t, set())
    return graph


def test_the_graph_reader_sees_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_has_the_known_edges():
    graph = import_graph()
    assert "interp_lib.nn" in graph["interp_lib.models"]
    assert "interp_lib.protopnet.model" in graph["interp_lib.protopnet.push"]
    assert "interp_lib._plumbing" in graph["interp_lib.protopnet.push"]


def test_no_import_cycle_in_interp_lib():
    cycles = find_cycles(import_graph())
    assert not cycles, "module-level import cycles in interp_lib: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_circle_between_subpackages():
    cycles = find_cycles(subpackage_graph())
    assert not cycles, "subpackages of interp_lib that import each other: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_subpackage_graph_sees_deferred_imports(tmp_path, monkeypatch):
    pkg = tmp_path / PACKAGE
    for part, body in {
        "__init__.py": "",
        "a.py": "def f():\n    from .b import g\n",
        "b.py": "from . import a\n",
        "c.py": "def plot():\n    from .viz import h\n",
        "viz.py": "from .c import plot\n",
    }.items():
        pkg.mkdir(exist_ok=True)
        (pkg / part).write_text(body)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    graph = subpackage_graph()
    assert find_cycles(graph) == [["a", "b"]]  # c -> viz is a lazy plot import: allowed
    assert "viz" not in graph["c"] and "c" in graph["viz"]


def test_models_and_protopnet_are_not_in_a_circle():
    graph = subpackage_graph()
    assert "protopnet" not in graph["models"] and "protopnet" not in graph["nn"]


def _imported_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    return {m for m in out.stdout.split() if m.startswith(PACKAGE)}


@pytest.mark.slow  # a fresh interpreter imports torch
def test_models_does_not_import_protopnet():
    loaded = _imported_by("import interp_lib.models")
    assert "interp_lib.protopnet.train" not in loaded
    assert not any(m.startswith("interp_lib.protopnet") for m in loaded), sorted(loaded)
    assert "interp_lib.nn" in loaded
