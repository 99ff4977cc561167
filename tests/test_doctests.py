"""The examples in interp_lib's docstrings run, and say what they print.

Every module of interp_lib whose source holds an example (``>>>``) is imported and its
examples run with :mod:`doctest`; a wrong output or an error fails the module's test.
An example skipped with ``# doctest: +SKIP`` (one that would train a network) is still
read: each call in it must name a function that exists, with arguments its signature
takes (``birds(100, size=64)`` fails: ``birds`` has no ``size``). Skipping is allowed only
in the modules of :data:`SKIP_OK`, each with its reason.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import inspect
import typing
from pathlib import Path
from typing import Any

import pytest

import interp_lib

ROOT = Path(interp_lib.__file__).parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: Modules whose examples may be skipped, and why.
SKIP_OK = {
    "interp_lib.zoo": "the example trains (or reads from the cache) the birds networks",
}


def _module_names() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        if ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


MODULES = _module_names()


def _doctests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module) if t.examples]


def _skipped(example: doctest.Example) -> bool:
    return example.options.get(doctest.SKIP, False)


def test_the_examples_are_found():
    assert len(MODULES) >= 15
    assert {"interp_lib.id.twonn", "interp_lib.claims", "interp_lib.book"} <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_examples_run(module_name, monkeypatch, capsys):
    from interp_lib.book import BOOK_BUILD_ENV, QUICK_ENV

    monkeypatch.delenv(BOOK_BUILD_ENV, raising=False)  # glue prints, as in a plain kernel
    monkeypatch.delenv(QUICK_ENV, raising=False)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = _doctests(module_name)
    for test in tests:
        runner.run(test, out=print)
    report = capsys.readouterr().out
    assert runner.failures == 0, f"{runner.failures} failing example(s):\n{report}"
    assert runner.tries > 0 or module_name in SKIP_OK, f"no example of {module_name} ran"


class _Unknown:
    """The value of a name a skipped example assigns, when nothing says its type."""


@dataclasses.dataclass(frozen=True)
class _Instance:
    """The value of a name assigned from a call whose return annotation is ``cls``."""

    cls: type


def _has(obj: Any, attr: str) -> bool:
    if isinstance(obj, _Instance):
        cls = obj.cls
        fields = (
            {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        )
        hints = getattr(cls, "__annotations__", {})
        return hasattr(cls, attr) or attr in fields or attr in hints
    return hasattr(obj, attr)


def _resolve(node: ast.expr, namespace: dict, problems: list[str]) -> Any:
    """The object an example's ``name.attr.attr`` denotes, :class:`_Unknown` when it cannot
    be known without running the example; a name or attribute that does not exist is
    appended to ``problems``."""
    chain = []
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return _Unknown
    if node.id not in namespace:
        problems.append(f"unknown name {node.id!r}")
        return _Unknown
    obj = namespace[node.id]
    for attr in reversed(chain):
        if obj is _Unknown:
            return _Unknown
        if not _has(obj, attr):
            problems.append(f"{node.id}.{'.'.join(reversed(chain))}: no attribute {attr!r}")
            return _Unknown
        obj = getattr(obj, attr) if not isinstance(obj, _Instance) else _Unknown
    return obj


def _returns(func: Any) -> Any:
    """What a call of ``func`` gives, as far as its return annotation says."""
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:  # an annotation that does not resolve says nothing
        return _Unknown
    return _Instance(hint) if isinstance(hint, type) else _Unknown


def _call_problems(source: str, namespace: dict) -> list[str]:
    """What is wrong in a skipped example: unknown names and attributes, or arguments a
    called function does not take. Imports in the example are run (they are cheap); a name
    it assigns from a call takes the call's return annotation (so ``birds.x`` is checked
    against the class ``zoo.protopnet_birds`` returns), else it is unknown."""
    tree = ast.parse(source)
    problems: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            exec(compile(ast.Module([stmt], type_ignores=[]), "<example>", "exec"), namespace)
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                _check_call(node, namespace, problems)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                if not any(node is c.func for c in ast.walk(stmt) if isinstance(c, ast.Call)):
                    _resolve(node, namespace, problems)
        if isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            value: Any = _Unknown
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                func = _resolve(stmt.value.func, namespace, [])
                value = _Unknown if func is _Unknown else _returns(func)
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    namespace[target.id] = value
                else:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            namespace[name.id] = _Unknown
    return sorted(set(problems), key=problems.index)


def _check_call(node: ast.Call, namespace: dict, problems: list[str]) -> None:
    target = _resolve(node.func, namespace, problems)
    if target is _Unknown or isinstance(target, _Instance) or not callable(target):
        return
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    if any(isinstance(a, ast.Starred) for a in node.args) or any(
        k.arg is None for k in node.keywords
    ):
        return
    try:
        signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
    except TypeError as exc:
        problems.append(f"{ast.unparse(node)}: {exc}")


@pytest.mark.parametrize("module_name", MODULES)
def test_skipped_examples_call_what_exists(module_name):
    tests = _doctests(module_name)
    skipped = [(t, e) for t in tests for e in t.examples if _skipped(e)]
    if skipped:
        assert module_name in SKIP_OK, (
            f"{module_name} skips {len(skipped)} example(s): make them cheap enough to run, "
            "or name the module in SKIP_OK with the reason"
        )
    problems = []
    for test in tests:
        namespace = dict(test.globs)
        for example in test.examples:
            if _skipped(example):
                problems += [f"{test.name}: {p}" for p in _call_problems(example.source, namespace)]
            else:
                _call_problems(example.source, namespace)  # learn its imports and names
    assert not problems, "\n".join(problems)


def test_the_skipped_example_check_sees_a_removed_keyword():
    from interp_lib.datasets import birds

    namespace = {"birds": birds}
    assert _call_problems("birds(100, image_size=64, seed=0)", dict(namespace)) == []
    [problem] = _call_problems("train = birds(100, size=64, seed=0)", dict(namespace))
    assert "size" in problem
    assert _call_problems("net = make_net(3)", {}) == ["unknown name 'make_net'"]
    ns = dict(namespace)
    assert _call_problems("from interp_lib import zoo\nzoo.no_such_recipe()", ns) == [
        "zoo.no_such_recipe: no attribute 'no_such_recipe'"
    ]
    assert _call_problems("b = birds(2)[0]\nb.anything(1, x=2)", dict(namespace)) == []
    [problem] = _call_problems("b = birds(2)\nb.anything(1)", dict(namespace))
    assert problem == "b.anything: no attribute 'anything'"  # birds returns a dataset
    ns = dict(namespace)
    assert _call_problems("from interp_lib import zoo\nm = zoo.protopnet_birds()", ns) == []
    assert _call_problems("m.protopnet_test_accuracy, m.cnn_test_accuracy", ns) == []
    assert _call_problems("m.test_accuracy", ns) == [
        "m.test_accuracy: no attribute 'test_accuracy'"
    ]
