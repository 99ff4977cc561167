"""Helpers of the hypothesis fuzz tests: run a call and accept only a result or our own error.

A call either returns (the test then checks the result against an independent oracle) or
raises ``ValueError``/``TypeError`` from a ``raise`` statement inside ``interp_lib``;
anything else (an error from inside torch/numpy/scipy, a C function failing on a line of
interp_lib, another exception type) fails the test with the traceback.
"""

from __future__ import annotations

import os
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings

import interp_lib

ROOT = Path(interp_lib.__file__).resolve().parent

#: Calls made by the fuzz tests of this process, per function (printed at the end of the
#: run by ``conftest.pytest_terminal_summary``).
CALLS: Counter[str] = Counter()

N_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def outcome(fn, *args: Any, allowed_roots: tuple[Path, ...] = (), **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or the ValueError/TypeError it raised from interp_lib.

    ``allowed_roots``: packages whose input validation is the documented contract (the
    scikit-learn estimators validate with scikit-learn's ``validate_data``, which the
    estimator API requires): an error raised while inside one of them is accepted.
    """
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    CALLS[name] += 1
    try:
        result = fn(*args, **kwargs)
        event(f"{name}: result")
        return result
    except (ValueError, TypeError) as exc:
        event(f"{name}: {type(exc).__name__}")
        frames = traceback.extract_tb(exc.__traceback__)
        last = frames[-1]
        where = Path(last.filename).resolve()
        delegated = any(
            root in Path(f.filename).resolve().parents for f in frames for root in allowed_roots
        )
        own = ROOT in where.parents and (last.line or "").lstrip().startswith("raise")
        if not (own or delegated):
            raise AssertionError(
                f"{type(exc).__name__} not raised by interp_lib ({where}:{last.lineno} "
                f"{last.line!r}): {exc}"
            ) from exc
        assert str(exc), "an error without a message"
        return exc
