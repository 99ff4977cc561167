"""The measured notebook rows (``bench/notebook_times.py``) are whole, and every chapter
measured at the budget Binder runs fits a mybinder.org session (issue 27 item 2).

Reads the committed ``bench/summaries/notebooks.json``: a default-budget row needs a
cold and a warm run (the times each chapter states at its top); a quick-budget row
(``INTERP_LIB_BOOK_QUICK=1``, which ``binder/start`` sets) needs a cold run -- what a
fresh session without a model cache gets -- and its peak kernel memory must be below
mybinder.org's 2 GB. Every chapter is measured at both budgets, so every chapter states
measured times at its top (``interp_lib.book.run_time``); a new chapter fails here until
it is measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = ROOT / "bench" / "summaries" / "notebooks.json"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
BINDER_GB = 2.0  # mybinder.org's memory limit per session


def _row(chapter: str, quick: bool) -> dict | None:
    table = json.loads(SUMMARY.read_text()).get("table", [])
    return next(
        (r for r in table if r.get("chapter") == chapter and bool(r.get("quick")) == quick),
        None,
    )


def test_every_notebook_is_listed():
    assert len(NOTEBOOKS) >= 12, NOTEBOOKS


def _rows() -> list[dict]:
    return json.loads(SUMMARY.read_text()).get("table", [])


def _measured(quick: bool) -> list[str]:
    return sorted(r["chapter"] for r in _rows() if bool(r.get("quick")) == quick)


def test_every_row_names_a_notebook_once_per_budget():
    keys = [(r.get("chapter"), bool(r.get("quick"))) for r in _rows()]
    assert len(keys) == len(set(keys)), keys
    assert {chapter for chapter, _ in keys} <= set(NOTEBOOKS), keys
    assert _measured(quick=False) and _measured(quick=True)  # some of each are measured


def test_every_notebook_is_measured_at_binders_budget():
    """What a Binder reader runs is measured for every chapter."""
    assert _measured(quick=True) == NOTEBOOKS


def test_every_notebook_is_measured_at_the_default_budget():
    """Every chapter's top sentence gives measured cold and warm times, none says "not
    measured yet"."""
    assert _measured(quick=False) == NOTEBOOKS


@pytest.mark.parametrize("chapter", _measured(quick=False))
def test_a_default_budget_row_has_cold_and_warm(chapter):
    row = _row(chapter, quick=False)
    for mode in ("cold", "warm"):
        assert {"wall_s", "cpu_s", "peak_rss_gb"} <= set(row.get(mode, {})), (chapter, mode)


@pytest.mark.parametrize("chapter", _measured(quick=True))
def test_a_quick_budget_row_fits_binder(chapter):
    row = _row(chapter, quick=True)
    assert "cold" in row, f"{chapter}: the quick row has no cold run (a fresh Binder session)"
    peak = max(row[mode]["peak_rss_gb"] for mode in ("cold", "warm") if mode in row)
    assert peak < BINDER_GB, f"{chapter}: peaks at {peak} GB on Binder's quick budget"
