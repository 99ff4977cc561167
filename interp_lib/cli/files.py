"""JSON and CSV files written atomically and fsynced (on ``_plumbing.atomic_write``).

A reader (or a run killed mid-write and resumed) sees the old file or the new one, never
half a file. Non-finite floats are written as ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._plumbing import atomic_write

__all__ = ["jsonable", "write_csv", "write_json"]


def jsonable(obj: Any) -> Any:
    """``obj`` with tuples as lists, paths as strings, non-finite floats as ``None``,
    numbers held by 0-d tensors or NumPy scalars as Python numbers."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``jsonable(obj)`` as UTF-8 JSON to ``path``, atomically; returns ``path``."""
    text = json.dumps(jsonable(obj), indent=indent, allow_nan=False) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_csv(
    path: str | os.PathLike,
    rows: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
) -> Path:
    """Write dict rows as a CSV table with a header, atomically; returns ``path``.

    ``columns`` default: every key of any row, sorted (a missing value is empty).
    """
    rows = [jsonable(r) for r in rows]
    if columns is None:
        columns = sorted({k for r in rows for k in r})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, lambda f: f.write(buf.getvalue().encode("utf-8")))
