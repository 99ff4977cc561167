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
import doctest
import importlib
import inspect
from pathlib import Path

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


def _call_problems(source: str, namespace: dict) -> list[str]:
    """What is wrong with the calls of a skipped example: unknown names, or arguments the
    called function does not take. Imports in the example are run (they are cheap); names
    it assigns are unknown objects whose calls are not checked."""
    tree = ast.parse(source)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            exec(compile(ast.Module([node], type_ignores=[]), "<example>", "exec"), namespace)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        namespace[name.id] = _Unknown
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        chain, func = [], node.func
        while isinstance(func, ast.Attribute):
            chain.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            continue
        if func.id not in namespace:
            problems.append(f"unknown name {func.id!r}")
            continue
        target = namespace[func.id]
        for attr in reversed(chain):
            if target is _Unknown:
                break
            if not hasattr(target, attr):
                problems.append(f"{func.id}.{'.'.join(reversed(chain))}: no attribute {attr!r}")
                target = _Unknown
                break
            target = getattr(target, attr)
        if target is _Unknown or not callable(target):
            continue
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            continue
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            continue
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as exc:
            problems.append(f"{ast.unparse(node)}: {exc}")
    return problems


class _Unknown:
    """The value of a name a skipped example assigns."""


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
    assert _call_problems("b = birds(2)\nb.anything(1, x=2)", dict(namespace)) == []
