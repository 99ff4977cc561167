"""Book plumbing: numbers for the prose that also work in a plain Jupyter kernel, and
training budgets that the test suite can cut.

The chapters glue measured numbers into their text with MyST-NB. Read in Colab, Binder or
a plain Jupyter (no MyST-NB, or MyST-NB but no book build), the same cells print the
numbers instead, so a reader of the notebook sees every value the prose quotes.

This module imports neither matplotlib nor torch: :mod:`interp_lib.claims` and every
chapter use it, and a figure module (:mod:`interp_lib.viz`) is not its home.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["BOOK_BUILD_ENV", "NOTEBOOK_TIMES", "QUICK_ENV", "budget", "glue", "progress",
           "run_time"]  # fmt: skip

#: Set (to any non-empty value) by ``make book`` while the book's chapters execute.
BOOK_BUILD_ENV = "INTERP_LIB_BOOK_BUILD"
#: Set (to any non-empty value) for a quick run of a chapter: the test suite's check that
#: every notebook runs in a plain Jupyter kernel sets it to keep CI within its budget.
QUICK_ENV = "INTERP_LIB_BOOK_QUICK"


def budget(full: int, quick: int) -> int:
    """A chapter's training budget: ``full`` (what the book shows), or ``quick`` when
    ``INTERP_LIB_BOOK_QUICK`` is set (a fast run that only checks the code runs; its
    numbers mean little).

    Examples
    --------
    >>> budget(12, 1)  # epochs of a network trained in a chapter
    12
    """
    return quick if os.environ.get(QUICK_ENV) else full


def progress() -> bool:
    """Whether a chapter's long calls show progress bars: ``True`` in a notebook a reader
    runs, ``False`` in a book build (``INTERP_LIB_BOOK_BUILD``: bars would be printed into
    the pages) and in a quick run (``INTERP_LIB_BOOK_QUICK``: the test suite's).

    Progress bars only display: every ``progress=`` of the library leaves its results,
    random streams and cache keys as they are, so the chapters' numbers do not depend on
    this.

    Examples
    --------
    >>> import os
    >>> progress() == (not os.environ.get(BOOK_BUILD_ENV) and not os.environ.get(QUICK_ENV))
    True
    """
    return not (os.environ.get(BOOK_BUILD_ENV) or os.environ.get(QUICK_ENV))


#: The measured running times of the notebooks (``bench/notebook_times.py``) in a source
#: checkout.
NOTEBOOK_TIMES = Path(__file__).resolve().parent.parent / "bench" / "summaries" / "notebooks.json"


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds / 60))} min" if seconds >= 30 else "under a minute"
    return f"{round(seconds / 60)} min"


def run_time(chapter: str, path: str | os.PathLike | None = None) -> str:
    """The sentence at the top of a chapter: how long its notebook takes and how much
    memory it needs, as measured by ``bench/notebook_times.py``.

    The summary holds up to two rows per chapter: one at the default budget (the sizes
    the book shows) and one at the quick budget (``INTERP_LIB_BOOK_QUICK``, which
    ``binder/start`` sets, because a mybinder.org session has 2 GB of memory). The times
    and the first peak are the default row's; the quick row adds the peak a Binder reader
    meets.

    Parameters
    ----------
    chapter : str
        The notebook's name, e.g. ``"id_twonn"``.
    path : path-like, optional
        The summary; default :data:`NOTEBOOK_TIMES`.

    Returns
    -------
    str
        "Running this notebook takes about N min with an empty model cache (cold) and
        M min with the cache warm, on K CPU cores; its kernel peaks at X GB of memory
        (measured on DATE)." -- with "; on Binder (quick budget) it peaks at Y GB" before
        the date where a quick row exists -- or a sentence saying that it has not been
        measured (no summary, as in an installed package, no default row with both runs
        for the chapter).
    """
    path = Path(path) if path is not None else NOTEBOOK_TIMES
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    rows = [r for r in summary.get("table", []) if isinstance(r, dict)]
    row = next((r for r in rows if r.get("chapter") == chapter and not r.get("quick")), None)
    quick = next((r for r in rows if r.get("chapter") == chapter and r.get("quick")), None)
    if row is None or not {"cold", "warm"} <= set(row):
        return (f"The running time of this notebook has not been measured yet "
                f"(`python bench/notebook_times.py {chapter}` in a clone of the repository "
                "measures it).")  # fmt: skip
    cold, warm = row["cold"], row["warm"]
    peak = max(cold["peak_rss_gb"], warm["peak_rss_gb"])
    cores = summary.get("cpu_count") or "?"
    date = str(row.get("date", "")).split(" ")[0]
    binder = ""
    quick_peaks = [quick[m]["peak_rss_gb"] for m in ("cold", "warm") if quick and m in quick]
    if quick_peaks:
        binder = f"; on Binder (quick budget) it peaks at {max(quick_peaks):.2f} GB"
    return (
        f"Running this notebook takes about {_minutes(cold['wall_s'])} with an empty model "
        f"cache (cold) and {_minutes(warm['wall_s'])} with the cache warm, on {cores} CPU "
        f"cores; its kernel peaks at {peak:.1f} GB of memory{binder} (measured {date})."
    )


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` under ``name`` for ``{glue:text}`name``` in the book, or print it.

    Inside a book build (``make book`` sets ``INTERP_LIB_BOOK_BUILD``) this is
    ``myst_nb.glue(name, value, display=display)``. Anywhere else it prints
    ``name = value``, so the notebook shows the number the prose refers to; MyST-NB is
    then not needed at all.

    Parameters
    ----------
    name : str
        The key used in the chapter's text, e.g. ``{glue:text}`g10:.2f```.
    value : object
        A number, string or other object to show.
    display : bool, default False
        Whether MyST-NB also displays the value where the cell's output is shown.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy / torch scalars: MyST-NB formats plain numbers only
    if os.environ.get(BOOK_BUILD_ENV):
        try:
            from myst_nb import glue as myst_glue
        except ImportError:  # pragma: no cover - a book build always has myst-nb
            pass
        else:
            myst_glue(name, value, display=display)
            return
    shown = f"{value:.4g}" if isinstance(value, float) else value
    print(f"{name} = {shown}")
