"""Shared pytest configuration and fixtures (tiny ProtoPNets and labelled images).

Helper functions live in ``_helpers.py``: import them from there, not from this file."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from _helpers import labelled_images, mark_slow_kinds, single_thread, tiny_protopnet


@pytest.hookimpl(tryfirst=True)  # before -m selects: it must see the added marks
def pytest_collection_modifyitems(config, items):
    mark_slow_kinds(items)  # book, fuzz and distributed tests are also slow
    # scikit-learn's array-API check only applies to estimators that declare
    # array_api_support; ours don't, and the check would be reported as skipped.
    kept = [i for i in items if "check_array_api_input" not in i.nodeid]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


#: ``pytestmark = pytest.mark.usefixtures("one_thread")`` opts a test module in.
one_thread = pytest.fixture(single_thread, name="one_thread")


@pytest.fixture
def make_protopnet() -> Callable:
    """Factory of tiny ProtoPNets: ``make_protopnet(seed=0, **overrides)``
    (see :func:`_helpers.tiny_protopnet`)."""
    return tiny_protopnet


@pytest.fixture
def make_images() -> Callable:
    """Factory of labelled random images: ``make_images(n=12, seed=0, n_classes=3, ...)``
    (see :func:`_helpers.labelled_images`)."""
    return labelled_images


def pytest_terminal_summary(terminalreporter):
    """Print how many calls the fuzz batteries made, per function (``_fuzz.CALLS``)."""
    fuzz = sys.modules.get("_fuzz")
    calls = getattr(fuzz, "CALLS", None)
    if calls:
        terminalreporter.write_line(
            f"fuzzed {sum(calls.values())} calls: "
            + ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
        )
