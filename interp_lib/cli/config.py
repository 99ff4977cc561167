"""One config format for every command: TOML, checked against a schema before any work.

A schema is a mapping ``{table: {key: Key}}``. Most keys are not written out by hand:
:func:`keys_of` reads them from the signature of the library function (or the fields of
the dataclass) that the table's values are passed to, with their annotations and
defaults, so the config takes exactly the library's options; the command adds ranges and
choices where the library checks them only later (:class:`Key`). :func:`load_config`
reads a file and checks it: an unknown table or key, a wrong type (``epochs = "2"``,
``2.5`` for an integer, ``true`` for a number) or a value out of range is one
``ValueError`` naming ``table.key``, what was expected and what was got.

TOML is read with ``tomllib`` (Python >= 3.11) or the ``tomli`` package it grew out
of (a dependency on Python 3.10).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Key", "Schema", "check_table", "keys_of", "load_config", "read_toml"]

#: ``{table: {key: Key}}``.
Schema = Mapping[str, Mapping[str, "Key"]]

_TYPE_NAMES = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "Path": str,
    "os.PathLike": str,
    "PathLike": str,
    "dict": dict,
    "Mapping": dict,
    "list": list,
    "tuple": list,
    "Sequence": list,
}
_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
          dict: "a table", list: "an array"}  # fmt: skip


@dataclass(frozen=True)
class Key:
    """One config key: the TOML types it takes and the values allowed.

    Parameters
    ----------
    types : tuple of type
        Among ``int``, ``float`` (an integer is accepted too), ``bool``, ``str``,
        ``dict`` (a TOML table) and ``list`` (an array).
    default : Any
        The value when the key is absent; ``REQUIRED`` (``inspect.Parameter.empty``)
        makes the key mandatory.
    minimum, maximum : float, optional
        Inclusive bounds of a number.
    choices : tuple, optional
        The allowed values.
    items : type, optional
        The type of an array's elements.
    """

    types: tuple[type, ...]
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    items: type | None = None

    def expected(self) -> str:
        """What the key takes, in words (for error messages)."""
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        words = " or ".join(_WORDS[t] for t in self.types)
        if self.items is not None:
            words += f" of {_WORDS[self.items].split(' ', 1)[1]}s"
        if self.minimum is not None and self.maximum is not None:
            words += f" in [{self.minimum}, {self.maximum}]"
        elif self.minimum is not None:
            words += f" >= {self.minimum}"
        elif self.maximum is not None:
            words += f" <= {self.maximum}"
        return words

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` has one of the ``types`` and lies in range."""
        if not any(_is(value, t) for t in self.types):
            return False
        if self.items is not None and isinstance(value, list):
            if not all(_is(v, self.items) for v in value):
                return False
        numbers = value if isinstance(value, list) else [value]
        for v in numbers:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if self.minimum is not None and v < self.minimum:
                return False
            if self.maximum is not None and v > self.maximum:
                return False
        return self.choices is None or value in self.choices


#: The default of a key that has none (it must be given).
REQUIRED = inspect.Parameter.empty


def _is(value: Any, t: type) -> bool:
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)


def _split_top(annotation: str) -> list[str]:
    """``"int | Sequence[int] | None"`` -> ``["int", "Sequence[int]", "None"]``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(annotation):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(annotation[start:i].strip())
            start = i + 1
    parts.append(annotation[start:].strip())
    return parts


def _toml_types(annotation: Any) -> tuple[tuple[type, ...], type | None]:
    """The TOML types of an annotation (a string under ``from __future__ import
    annotations``, or a type), and the element type of an array; ``((), None)`` when no
    part of it can be written in TOML (a module, a generator, a callable...)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    types: list[type] = []
    items = None
    for part in _split_top(text):
        head, _, inner = part.partition("[")
        t = _TYPE_NAMES.get(head.strip())
        if t is None:
            continue
        if t is list and inner:
            items = _TYPE_NAMES.get(inner.rstrip("]").split(",")[0].strip())
        if t not in types:
            types.append(t)
    return tuple(types), items


def keys_of(
    target: Callable | type,
    *,
    skip: Iterable[str] = (),
    types: Mapping[str, tuple[type, ...]] | None = None,
    **constraints: Mapping[str, Any],
) -> dict[str, Key]:
    """The config keys of a library function or dataclass, from its signature.

    Every keyword parameter (every field of a dataclass) whose annotation TOML can
    express becomes a :class:`Key` with the parameter's default; the others (modules,
    generators, callables) are left out. An integer key is at least 0 unless
    ``constraints`` say otherwise (library integers are counts, sizes and seeds).

    Parameters
    ----------
    target : callable or dataclass
        E.g. :func:`interp_lib.protopnet.fit` or :class:`interp_lib.protopnet.Schedule`.
    skip : iterable of str
        Parameters the command sets itself (the model, the loaders, the device...).
    types : mapping, optional
        ``{name: types}`` for a parameter whose annotation is an alias TOML types cannot
        be read from (e.g. ``WeightsLike``).
    **constraints : mapping
        ``{name: {"minimum": ..., "maximum": ..., "choices": ...}}`` per parameter.

    Raises
    ------
    ValueError
        If ``skip``, ``types`` or ``constraints`` name a parameter ``target`` lacks (the
        schema would silently drift from the library).
    """
    if dataclasses.is_dataclass(target):
        params = {
            f.name: (f.type, f.default if f.default is not dataclasses.MISSING else REQUIRED)
            for f in dataclasses.fields(target)
        }
    else:
        sig = inspect.signature(target)
        params = {
            p.name: (p.annotation, p.default)
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
    skip = set(skip)
    types = dict(types or {})
    named = skip | set(types) | set(constraints)
    missing = sorted(named - set(params))
    if missing:
        raise ValueError(
            f"{getattr(target, '__qualname__', target)} has no parameters {missing}; update "
            "the command's schema."
        )
    out = {}
    for name, (annotation, default) in params.items():
        if name in skip:
            continue
        found, items = _toml_types(annotation)
        found = types.get(name, found)
        if not found:
            continue
        limits = dict(constraints.get(name, {}))
        if int in found and float not in found and "choices" not in limits:
            limits.setdefault("minimum", 0)  # a count, a size or a seed
        out[name] = Key(found, default, items=items, **limits)
    return out


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The TOML file ``path`` as a dict.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If it is not UTF-8 text or not valid TOML (with the line and column).
    ModuleNotFoundError
        On Python 3.10 without the ``tomli`` package.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "reading a TOML config on Python 3.10 needs tomli: `pip install tomli`."
            ) from None
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"config file {str(path)!r} {what}.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"config {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8."
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config {str(path)!r} is not valid TOML: {exc}.") from None


def check_table(name: str, values: Any, keys: Mapping[str, Key], *, where: str = "config") -> dict:
    """``values`` checked against ``keys``, with the defaults filled in.

    Raises
    ------
    ValueError
        One line naming ``name.key``: an unknown key (with the closest known one), a
        missing required key, a wrong type or a value out of range.
    """
    if not isinstance(values, dict):
        raise ValueError(
            f"{where}: [{name}] must be a table, got {_got(values)}; write it as [{name}]."
        )
    unknown = sorted(set(values) - set(keys))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(keys), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(
            f"{where}: unknown key {name}.{unknown[0]}{hint}; [{name}] takes "
            f"{', '.join(sorted(keys)) or 'no keys'}."
        )
    out = {}
    for key, spec in keys.items():
        if key not in values:
            if spec.default is REQUIRED:
                raise ValueError(f"{where}: {name}.{key} is required ({spec.expected()}).")
            out[key] = spec.default
            continue
        value = values[key]
        if not spec.accepts(value):
            raise ValueError(f"{where}: {name}.{key} must be {spec.expected()}, got {_got(value)}.")
        out[key] = float(value) if spec.types == (float,) else value
    return out


def _got(value: Any) -> str:
    kind = next((w for t, w in _WORDS.items() if _is(value, t)), type(value).__name__)
    return f"{value!r} ({kind})"


def load_config(path: str | os.PathLike, schema: Schema) -> dict[str, dict[str, Any]]:
    """Read the TOML file ``path`` and check it against ``schema``.

    Returns
    -------
    dict
        ``{table: {key: value}}`` with every table of ``schema`` and every key, defaults
        filled in.

    Raises
    ------
    FileNotFoundError, ValueError, ModuleNotFoundError
        As :func:`read_toml` and :func:`check_table`; an unknown table is a
        ``ValueError`` too.
    """
    raw = read_toml(path)
    where = f"config {Path(path).name}"
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(schema), n=1)
        hint = f" (did you mean [{close[0]}]?)" if close else ""
        raise ValueError(
            f"{where}: unknown table [{unknown[0]}]{hint}; the tables are "
            f"{', '.join(f'[{t}]' for t in schema)}."
        )
    return {t: check_table(t, raw.get(t, {}), keys, where=where) for t, keys in schema.items()}
