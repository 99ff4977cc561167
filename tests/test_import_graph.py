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
  of CONTRIBUTING.md: a result's ``plot()`` imports ``interp_lib.viz`` lazily. Such an
  import does not count only at the sites named in :data:`LAZY_VIZ_SITES` (module and
  function), each with its reason; any other deferred import of ``viz`` counts, and a
  new one fails :func:`test_lazy_viz_imports_only_at_the_named_sites`.
"""

from __future__ import annotations

import ast
import functools
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


@functools.cache
def _parse_version(path: Path, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _parse(path: Path) -> ast.Module:
    """The syntax tree of ``path``, parsed once per version of the file: the graphs read
    every module of interp_lib several times per test (the trees are only read)."""
    stat = path.stat()
    return _parse_version(path, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _imports_in(tree: ast.Module, deferred: bool) -> tuple[ast.Import | ast.ImportFrom, ...]:
    """:func:`_all_imports` (``deferred``) or :func:`_module_level_imports` of a tree from
    :func:`_parse`, found once."""
    return tuple((_all_imports if deferred else _module_level_imports)(tree))


@functools.cache
def _deferred_in(tree: ast.Module) -> tuple:
    """:func:`_deferred_imports` of a tree from :func:`_parse`, found once."""
    return tuple(_deferred_imports(tree))


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
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = _parse(path)
        here = name.split(".") if is_pkg else name.split(".")[:-1]  # package of `name`
        targets: list[str] = []
        for node in _imports_in(tree, deferred):
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


#: The only places where a part of interp_lib may import ``interp_lib.viz`` inside a
#: function, against the grain (viz draws the other parts' results): ``(module, function
#: qualname)`` -> why. CONTRIBUTING.md lets a result's ``plot()`` draw itself this way.
LAZY_VIZ_SITES = {
    ("interp_lib.profile.layer_ids", "LayerProfile.plot"): "a result's plot() (CONTRIBUTING)",
    ("interp_lib.profile.cli", "run"): "the command line writes the profile's figure",
    ("interp_lib.protopnet.cli", "cmd_explain"): "the command line writes the scoring sheet",
}

#: Parts above the library (the command lines' app layer): nothing in the library imports
#: them, so their imports of viz, deferred or not, cannot close a circle.
APP_PARTS = {"cli"}

#: Command lines that still live inside a library part (until they move into the app
#: layer, :data:`APP_PARTS`): entry points that nothing in interp_lib imports
#: (:func:`test_entry_point_modules_are_imported_by_nothing`), so their imports cannot
#: close a circle either (the profile command calls ``studies.class_profiles``).
APP_MODULES = {f"{PACKAGE}.profile.cli", f"{PACKAGE}.profile.__main__"}


def _deferred_imports(node: ast.AST, scope: tuple[str, ...] = (), in_function: bool = False):
    """``(qualname, import statement)`` for every import inside a function, except under
    ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:
                yield from _deferred_imports(sub, scope, in_function)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            is_function = not isinstance(child, ast.ClassDef)
            yield from _deferred_imports(child, (*scope, child.name), in_function or is_function)
        elif isinstance(child, ast.Import | ast.ImportFrom) and in_function:
            yield ".".join(scope), child
        else:
            yield from _deferred_imports(child, scope, in_function)


def _lazy_viz_sites() -> set[tuple[str, str]]:
    """``(module, function qualname)`` of every deferred import of ``interp_lib.viz`` made
    outside viz (and outside :data:`APP_PARTS`)."""
    sites = set()
    for name, path in _modules().items():
        parts = name.split(".")
        if len(parts) > 1 and parts[1] in ({"viz"} | APP_PARTS):
            continue
        here = parts if path.name == "__init__.py" else parts[:-1]
        tree = _parse(path)
        sites |= {(name, fn) for fn, node in _deferred_in(tree) if _targets_viz(node, here)}
    return sites


def _targets_viz(node: ast.Import | ast.ImportFrom, here: list[str]) -> bool:
    if isinstance(node, ast.Import):
        stems = [alias.name for alias in node.names]
    elif node.level:
        base = here[: len(here) - (node.level - 1)]
        stem = ".".join(base + ([node.module] if node.module else []))
        stems = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
    else:
        stems = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
    viz = f"{PACKAGE}.viz"
    return any(s == viz or s.startswith(viz + ".") for s in stems)


def subpackage_graph() -> dict[str, set[str]]:
    """``{part: parts it imports}`` for the top-level parts of interp_lib, deferred
    imports included, except deferred imports of ``viz`` made at the sites of
    :data:`LAZY_VIZ_SITES` (or by the app layer, :data:`APP_PARTS`)."""
    eager = import_graph()
    allowed_modules = {module for module, _ in LAZY_VIZ_SITES}
    unlisted = {module for module, fn in _lazy_viz_sites() if (module, fn) not in LAZY_VIZ_SITES}
    graph: dict[str, set[str]] = {}
    for name, targets in import_graph(deferred=True).items():
        if name == PACKAGE or name in APP_MODULES:
            continue
        part = name.split(".")[1]
        lazy_viz_ok = name not in unlisted and (name in allowed_modules or part in APP_PARTS)
        graph.setdefault(part, set()).update(
            t.split(".")[1]
            for t in targets
            if t != PACKAGE
            and t.split(".")[1] != part
            and (t in eager[name] or t.split(".")[1] != "viz" or not lazy_viz_ok)
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
    assert "interp_lib.networks" in graph["interp_lib.protopnet.model"]
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


def test_entry_point_modules_are_imported_by_nothing():
    graph = import_graph(deferred=True)
    users = {
        (name, t) for name, targets in graph.items() if name not in APP_MODULES
        for t in targets if t in APP_MODULES
    }  # fmt: skip
    assert not users, f"library modules import command-line modules: {sorted(users)}"


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
    monkeypatch.setattr(sys.modules[__name__], "LAZY_VIZ_SITES", {(f"{PACKAGE}.c", "plot"): "x"})
    graph = subpackage_graph()
    assert find_cycles(graph) == [["a", "b"]]  # c -> viz is a listed lazy plot import
    assert "viz" not in graph["c"] and "c" in graph["viz"]
    assert _lazy_viz_sites() == {(f"{PACKAGE}.c", "plot")}
    monkeypatch.setattr(sys.modules[__name__], "LAZY_VIZ_SITES", {})  # not listed: counts
    assert sorted(find_cycles(subpackage_graph())) == [["a", "b"], ["c", "viz"]]


def test_lazy_viz_imports_only_at_the_named_sites():
    """A part of interp_lib imports viz inside a function only where LAZY_VIZ_SITES names
    it (a result's plot(), a command's figure), and each named site still exists."""
    sites = _lazy_viz_sites()
    unlisted = sorted(sites - set(LAZY_VIZ_SITES))
    assert not unlisted, (
        f"deferred imports of interp_lib.viz at {unlisted}: only a result's plot() may draw "
        "itself with viz; name the site in LAZY_VIZ_SITES with its reason, or move the figure "
        "to interp_lib.viz"
    )
    stale = sorted(
        site for site in set(LAZY_VIZ_SITES) - sites if site[0] in _modules()
    )  # a module that moved away (e.g. into the app layer) takes its entry with it
    assert not stale, f"LAZY_VIZ_SITES names sites that no longer import viz: {stale}"


def test_book_plumbing_and_claims_do_not_import_viz():
    """glue/budget live in interp_lib.book (no matplotlib); claims uses them."""
    graph = import_graph(deferred=True)
    for name in (f"{PACKAGE}.book", f"{PACKAGE}.claims"):
        assert not {t for t in graph[name] if t.startswith(f"{PACKAGE}.viz")}, name


def test_viz_does_not_import_profile():
    """plot_profile recognises a profile by its fields: LayerProfile.plot imports viz, so
    viz importing profile back would close a circle."""
    graph = import_graph(deferred=True)
    assert not any(t.startswith(f"{PACKAGE}.profile") for t in graph[f"{PACKAGE}.viz.profile"])


def test_models_and_protopnet_are_not_in_a_circle():
    graph = subpackage_graph()
    assert "protopnet" not in graph["models"] and "protopnet" not in graph["networks"]


def test_networks_is_the_bottom_layer():
    """The architectures import no other subpackage: models, protopnet, studies and the
    zoo all build on them."""
    assert subpackage_graph()["networks"] <= {"_validation"}


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
    networks = _imported_by("import interp_lib.networks")
    assert {m.split(".")[1] for m in networks if m != PACKAGE} == {"networks", "_validation"}


#: The project's shared private top-level modules: any part may import them. ``_launch``
#: starts the command lines; the top package calls it under ``python -m`` (before torch).
SHARED_PRIVATE = {f"{PACKAGE}._plumbing", f"{PACKAGE}._validation", f"{PACKAGE}._launch"}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports_across_parts() -> list[tuple[str, str]]:
    """``(module, what)`` for every import, deferred ones included, of a private module or
    a private name of **another** part of interp_lib: ``from interp_lib.<pkg>._<x>``,
    ``from ..<pkg>._<x> import y``, ``from ..<pkg>.<mod> import _<name>``,
    ``from ..<pkg> import _<x>`` (:data:`SHARED_PRIVATE` excepted)."""
    found = []
    for name, path in _modules().items():
        parts = name.split(".")
        own = parts[1] if len(parts) > 1 else None
        here = parts if path.name == "__init__.py" else parts[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _all_imports(tree):
            if isinstance(node, ast.Import):
                pairs = [(alias.name, None) for alias in node.names]
            else:
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                pairs = [(module, alias.name) for alias in node.names]
            for module, imported in pairs:
                if not (module == PACKAGE or module.startswith(PACKAGE + ".")):
                    continue
                full = module if imported is None else f"{module}.{imported}"
                target = full.split(".")
                if len(target) < 2 or target[1] == own or ".".join(target[:2]) in SHARED_PRIVATE:
                    continue
                if any(_is_private(p) for p in target[1:]):
                    found.append((name, full))
    return sorted(set(found))


def test_the_private_import_reader_sees_planted_cases(tmp_path, monkeypatch):
    pkg = tmp_path / PACKAGE
    files = {
        "__init__.py": "",
        "_plumbing.py": "",
        "a/__init__.py": "",
        "a/_x.py": "",
        "a/m.py": "_y = 1\nz = 2\n",
        "a/inner.py": "from ._x import q\nfrom .m import _y\n",  # own part: fine
        "b/__init__.py": "",
        "b/one.py": "from ..a._x import q\n",
        "b/two.py": "def f():\n    from interp_lib.a.m import _y\n",
        "b/three.py": "from ..a import _x\nimport interp_lib.a._x\n",
        "b/fine.py": "from ..a.m import z\nfrom .._plumbing import p\nfrom ..a import __doc__\n",
    }
    for rel, body in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(body)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    assert private_imports_across_parts() == [
        (f"{PACKAGE}.b.one", f"{PACKAGE}.a._x.q"),
        (f"{PACKAGE}.b.three", f"{PACKAGE}.a._x"),
        (f"{PACKAGE}.b.two", f"{PACKAGE}.a.m._y"),
    ]


def test_no_part_imports_another_parts_private_names():
    """A part uses another only through its public names (issue 20): a private module
    (``id._ratios``, ``datasets._base``) or name (``neighbors._search``) is the business
    of its own part, which may change it freely. ``_plumbing`` and ``_validation`` are the
    shared private modules of the whole package."""
    found = private_imports_across_parts()
    assert not found, "imports of another part's private names: " + "; ".join(
        f"{module} imports {what}" for module, what in found
    )
