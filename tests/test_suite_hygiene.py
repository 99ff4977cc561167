"""The test suite's own rules (CONTRIBUTING.md, "Tests"): markers, CI skips, helper imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import _helpers
import pytest
from _helpers import IMPLY_SLOW, mark_slow_kinds, require, require_module

TESTS = Path(__file__).resolve().parent


class _Item:
    """The two methods of a collected pytest item that :func:`mark_slow_kinds` uses."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)

    def get_closest_marker(self, name: str):
        return name if name in self.names else None

    def add_marker(self, marker) -> None:
        self.names.append(marker.name)


def test_book_fuzz_and_distributed_tests_are_also_slow():
    items = [_Item(), _Item("fuzz"), _Item("book", "parametrize"), _Item("distributed")]
    items += [_Item("slow"), _Item("timeout")]
    mark_slow_kinds(items)
    assert ["slow" in i.names for i in items] == [False, True, True, True, True, False]


def test_the_kinds_are_the_registered_markers(pytestconfig):
    """Every marker registered in ``pyproject.toml`` besides ``slow`` implies it: a new
    kind goes into both places."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # a dependency on Python 3.10
        tomllib = require_module("tomli")
    with open(pytestconfig.rootpath / "pyproject.toml", "rb") as f:
        markers = tomllib.load(f)["tool"]["pytest"]["ini_options"]["markers"]
    names = {m.split(":")[0].strip() for m in markers}
    assert names == {"slow", *IMPLY_SLOW}


@pytest.mark.parametrize("in_ci", [False, True])
def test_a_missing_component_skips_locally_and_fails_in_ci(monkeypatch, in_ci):
    monkeypatch.setattr(_helpers, "IN_CI", in_ci)
    expected = pytest.fail.Exception if in_ci else pytest.skip.Exception
    with pytest.raises(expected, match="the book is not built"):
        require(False, "the book is not built")
    with pytest.raises(expected, match="no_such_package_xyz is not installed"):
        require_module("no_such_package_xyz")
    require(True, "present")  # nothing happens
    assert require_module("json").dumps([1]) == "[1]"


def test_no_module_imports_conftest_or_uses_importorskip():
    """Helpers come from ``_helpers`` (pytest discourages importing ``conftest``); optional
    packages through ``require_module`` (``importorskip`` would skip in CI too)."""
    pattern = re.compile(r"^\s*(from conftest import|import conftest\b)|importorskip\(", re.M)
    bad = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text(encoding="utf-8")
        for m in pattern.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            bad.append(f"{path.name}:{line}: {m.group(0).strip()}")
    assert not bad, "\n".join(bad)


@pytest.mark.slow  # parses every test module
def test_no_test_is_skipped_unconditionally():
    """A ``pytest.skip`` call sits under an ``if`` (or is ``require``'s); never a
    statement at the top level of a test body, and no ``@pytest.mark.skip`` decorator."""
    bad = []
    for path in sorted(TESTS.glob("*.py")):
        name, tree = path.name, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for deco in node.decorator_list:
                if "mark.skip" in ast.unparse(deco) and "skipif" not in ast.unparse(deco):
                    bad.append(f"{name}:{deco.lineno}: @{ast.unparse(deco)}")
            for stmt in node.body:  # statements at the top level of the body only
                if isinstance(stmt, ast.Expr) and "pytest.skip(" in ast.unparse(stmt):
                    bad.append(f"{name}:{stmt.lineno}: unconditional pytest.skip in {node.name}")
    assert not bad, "\n".join(bad)
