"""The zoo's disk cache: keys, atomic writes, safe loads.

An entry is one ``torch.save`` file holding only tensors, numbers, strings, lists and
dicts (so it loads with ``torch.load(..., weights_only=True)``: nothing is unpickled).
Its name is ``<recipe>-<key>.pt`` with ``key`` the first 20 hex digits of a SHA-256 over

* the recipe's name and its arguments (JSON, sorted keys), and
* a hash of the code of the library modules that train it (the recipe's module and
  every module it names), so that editing that code retrains on the next call. The
  hash is over each file's syntax tree without docstrings (comments and layout are not
  in it either): editing documentation keeps the entries.

The folder is ``$INTERP_LIB_CACHE/zoo`` when that variable is set, else the user's cache
directory: ``$XDG_CACHE_HOME/interp_lib`` or ``~/.cache/interp_lib`` on Linux,
``~/Library/Caches/interp_lib`` on macOS, ``%LOCALAPPDATA%\\interp_lib\\Cache`` on
Windows (what ``platformdirs.user_cache_dir("interp_lib")`` gives).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .._plumbing import atomic_save

__all__ = ["CacheWarning", "cache_dir", "cached", "entry_path", "source_hash"]

#: Version of the file layout; bump to invalidate every entry.
FORMAT = 1
ENV = "INTERP_LIB_CACHE"


class CacheWarning(UserWarning):
    """A zoo cache entry could not be read (it is retrained and overwritten)."""


def cache_dir() -> Path:
    """Folder of the zoo's entries (created on first write, not here).

    ``$INTERP_LIB_CACHE/zoo`` if that environment variable is set, else ``zoo`` under
    the user's cache directory (``~/.cache/interp_lib`` on Linux).
    """
    root = os.environ.get(ENV)
    if root:
        return Path(root).expanduser() / "zoo"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "interp_lib" / "Cache" / "zoo"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "interp_lib" / "zoo"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "interp_lib" / "zoo"


def _files(source: str | Path) -> list[Path]:
    path = Path(source)
    if not path.exists():
        spec = importlib.util.find_spec(str(source))
        if spec is None or spec.origin is None:
            raise ValueError(
                f"zoo source {source!r} is neither a file nor an importable module; name "
                "the modules that train the recipe, e.g. 'interp_lib.models'."
            )
        path = Path(spec.origin)
        if path.name == "__init__.py":
            path = path.parent
    if path.is_dir():
        return sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
    return [path]


def source_hash(sources: Iterable[str | Path]) -> str:
    """SHA-256 (hex) of the code of ``sources``: module names (a package means all its
    ``.py`` files) or paths, in a stable order (see :func:`code_digest`)."""
    h = hashlib.sha256()
    files = sorted({f.resolve() for s in sources for f in _files(s)})
    for f in files:
        h.update(f.name.encode())
        h.update(b"\0")
        h.update(code_digest(f.read_bytes()))
        h.update(b"\0")
    return h.hexdigest()


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def code_digest(source: bytes) -> bytes:
    """What of a Python file decides what it computes: its syntax tree without
    docstrings, comments, line numbers or layout (``ast.dump``); the bytes themselves
    for a file that does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, _DOCUMENTED)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def _canonical(params: Mapping[str, Any]) -> str:
    try:
        return json.dumps(params, sort_keys=True, default=_not_json)
    except TypeError as exc:
        raise TypeError(f"zoo recipe arguments must be JSON-able: {exc}") from None


def _not_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-able")


def entry_path(name: str, params: Mapping[str, Any], sources: Iterable[str | Path]) -> Path:
    """Where the entry of recipe ``name`` with arguments ``params`` lives."""
    key = hashlib.sha256(
        f"{FORMAT}\n{name}\n{_canonical(params)}\n{source_hash(sources)}".encode()
    ).hexdigest()[:20]
    return cache_dir() / f"{name}-{key}.pt"


def _load(path: Path, name: str, params_json: str) -> dict[str, Any]:
    entry = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        raise ValueError("not a zoo entry of this version")
    if entry.get("recipe") != name or entry.get("params") != params_json:
        raise ValueError("the entry belongs to another recipe or other arguments")
    payload = entry.get("payload")
    if not isinstance(payload, dict):
        raise ValueError("the entry has no payload")
    return payload


def cached(
    name: str,
    params: Mapping[str, Any],
    build: Callable[[], dict[str, Any]],
    *,
    sources: Iterable[str | Path],
    retrain: bool = False,
) -> tuple[dict[str, Any], bool]:
    """The payload of a recipe, from the cache or freshly built (and then cached).

    Parameters
    ----------
    name : str
        Recipe name (file-name safe), e.g. ``"protopnet_birds"``.
    params : mapping
        The recipe's arguments (JSON-able); part of the key and stored in the entry.
    build : callable
        Trains and returns the payload: a dict of tensors, numbers, strings, lists and
        dicts only (what ``torch.load(weights_only=True)`` reads back).
    sources : iterable of str or path
        Modules (``"interp_lib.models"``; a package means all its files) or files whose
        source text is part of the key.
    retrain : bool
        Build and overwrite even when a valid entry exists.

    Returns
    -------
    (dict, bool)
        The payload and whether it came from the cache.

    Warns
    -----
    CacheWarning
        When an entry exists but cannot be read (truncated, corrupt, foreign): it is
        rebuilt and overwritten; it is never unpickled.
    """
    sources = list(sources)
    params_json = _canonical(params)
    path = entry_path(name, params, sources)
    if path.is_file() and not retrain:
        try:
            return _load(path, name, params_json), True
        except Exception as exc:  # corrupt or foreign file: never trust it, rebuild
            warnings.warn(
                f"zoo: the cache entry {str(path)!r} could not be read ({type(exc).__name__}: "
                f"{exc}); training {name} again and overwriting it.",
                CacheWarning,
                stacklevel=3,
            )
    payload = build()
    entry = {
        "format": FORMAT,
        "recipe": name,
        "params": params_json,
        "torch": str(torch.__version__),
        "payload": payload,
    }
    atomic_save(entry, path)
    return payload, False
