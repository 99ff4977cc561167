"""Book plumbing: numbers for the prose that also work in a plain Jupyter kernel, and
training budgets that the test suite can cut.

The chapters glue measured numbers into their text with MyST-NB. Read in Colab, Binder or
a plain Jupyter (no MyST-NB, or MyST-NB but no book build), the same cells print the
numbers instead, so a reader of the notebook sees every value the prose quotes.

This module imports neither matplotlib nor torch: :mod:`interp_lib.claims` and every
chapter use it, and a figure module (:mod:`interp_lib.viz`) is not its home.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["BOOK_BUILD_ENV", "QUICK_ENV", "budget", "glue"]

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
