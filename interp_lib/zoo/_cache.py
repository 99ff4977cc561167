"""The zoo's disk cache: keys, atomic writes, safe loads.

An entry is one ``torch.save`` file holding only tensors, numbers, strings, lists and
dicts (so it loads with ``torch.load(..., weights_only=True)``: nothing is unpickled).
As in a ProtoPNet checkpoint, the payload is stored as bytes with their SHA-256, which
is checked before the bytes are read: a flipped bit anywhere in a tensor is refused,
warned about (:class:`CacheWarning`) and the entry rebuilt. Entries get the usual file
permissions (those of the entry they replace, else ``0o666`` less the umask), so a
cache folder can be shared.
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
import io
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .._plumbing import atomic_save, check_writable

__all__ = ["CacheWarning", "cache_dir", "cached", "entry_path", "source_hash"]

#: Version of the file layout; bump to invalidate every entry (2: with a SHA-256).
FORMAT = 2
ENV = "INTERP_LIB_CACHE"


class CacheWarning(UserWarning):
    """A zoo cache entry could not be used (it is retrained and overwritten), or could not
    be written (the freshly trained result is returned, not cached)."""


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


_ENTRY_KEYS = {"format", "recipe", "params", "torch", "sha256", "payload"}


def _digest(data) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(path: Path, name: str, params_json: str) -> dict[str, Any]:
    """The payload of the entry at ``path``, verified (the entry's SHA-256 is compared
    with its payload's bytes before they are unpickled, with ``weights_only=True``)."""
    entry = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        raise ValueError("not a zoo entry of this version")
    if set(entry) != _ENTRY_KEYS:
        raise ValueError(f"the entry has the keys {sorted(map(str, entry))}")
    if entry.get("recipe") != name or entry.get("params") != params_json:
        raise ValueError("the entry belongs to another recipe or other arguments")
    digest, data = entry["sha256"], entry["payload"]
    if (
        not isinstance(digest, str)
        or not isinstance(data, torch.Tensor)
        or data.dtype != torch.uint8
        or data.ndim != 1
        or not data.is_contiguous()
    ):
        raise ValueError("the entry's checksum or payload is malformed")
    raw = data.numpy()
    got = _digest(memoryview(raw))
    if got != digest:
        raise ValueError(
            f"its SHA-256 is {got[:16]}..., not the {str(digest)[:16]}... stored when it "
            "was written: the file changed after it was saved"
        )
    payload = torch.load(io.BytesIO(raw.tobytes()), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict):
        raise ValueError("the entry has no payload")
    return payload


def _entry(name: str, params_json: str, payload: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = bytearray(buf.getbuffer())
    del buf
    return {
        "format": FORMAT,
        "recipe": name,
        "params": params_json,
        "torch": str(torch.__version__),
        "sha256": _digest(data),
        "payload": torch.frombuffer(data, dtype=torch.uint8),
    }


def _warn(message: str) -> None:
    warnings.warn(f"zoo: {message}", CacheWarning, stacklevel=4)


def cached(
    name: str,
    params: Mapping[str, Any],
    build: Callable[[], dict[str, Any]],
    *,
    sources: Iterable[str | Path],
    retrain: bool = False,
    load: Callable[[dict[str, Any], bool], Any] | None = None,
) -> tuple[Any, bool]:
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
    load : callable ``(payload, from_cache) -> object``, optional
        Turns a payload into what the recipe returns (builds the models, loads their
        state dicts, reads the histories). When given, it is the first element of the
        result; a cached payload it cannot turn into that object (a missing key, a
        tensor of the wrong shape, an unknown history field, a non-numeric number:
        any exception) is treated as a corrupt entry: warned about, rebuilt and
        overwritten.

    Returns
    -------
    (object, bool)
        The payload (or ``load(payload, from_cache)``) and whether it came from the cache.

    Warns
    -----
    CacheWarning
        When an entry exists but cannot be used (truncated, a checksum that does not
        match, foreign, or refused by ``load``): it is rebuilt and overwritten; it is
        never unpickled beyond ``weights_only=True``. When the entry cannot be written
        (the cache folder is a file or read-only, the entry's path is a folder): the
        freshly built result is returned all the same, not cached.
    """
    sources = list(sources)
    params_json = _canonical(params)
    path = entry_path(name, params, sources)
    if path.is_file() and not retrain:
        try:
            payload = _load(path, name, params_json)
            return (payload if load is None else load(payload, True)), True
        except Exception as exc:  # corrupt or foreign file: never trust it, rebuild
            _warn(
                f"the cache entry {str(path)!r} could not be read or used ({type(exc).__name__}: "
                f"{str(exc)[:300]}); training {name} again and overwriting it."
            )
    try:
        check_writable(path, "zoo cache entry")
        writable = True
    except OSError as exc:
        writable = False
        _warn(
            f"{exc}. Training {name} all the same; the result is returned but not cached "
            f"(set ${ENV} to a writable folder to keep it)."
        )
    payload = build()
    if writable:
        try:
            atomic_save(_entry(name, params_json, payload), path)
        except OSError as exc:
            _warn(
                f"could not save the cache entry {str(path)!r} ({type(exc).__name__}: "
                f"{exc}); the freshly trained {name} is returned, not cached."
            )
    return (payload if load is None else load(payload, False)), False
