"""The run folder (``--out``): outputs confined to it, and the run's settings kept with them.

:class:`RunFolder` gives every output path (:meth:`RunFolder.path` refuses a name that
would land outside the folder: ``..``, an absolute path, a symbolic link out) and keeps
``run.json``: the run's settings (the checked config and the seed), the package
versions, the command line and the time. ``run.json`` is written only once the run's
inputs have been checked (:meth:`RunFolder.record`), so a run that fails before it
starts leaves no settings behind; a later command compares its settings with it
(:meth:`RunFolder.begin`, :meth:`RunFolder.check`) and refuses to mix two runs in one
folder, naming the settings that differ. Versions, command line and time are recorded,
never compared.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError
from .files import jsonable, write_json

__all__ = ["METADATA", "RunFolder", "versions"]

#: The metadata file of a run folder.
METADATA = "run.json"


def versions() -> dict[str, str]:
    """Versions of Python, interp_lib, torch and torchvision (``"absent"`` if missing)."""
    from importlib import metadata

    import interp_lib

    out = {"python": platform.python_version(), "interp_lib": interp_lib.__version__}
    for name in ("torch", "torchvision"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _flat(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in settings.items():
        if isinstance(v, Mapping) and v and not prefix:
            out.update(_flat(v, f"{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class RunFolder:
    """The folder ``--out`` of one run.

    Parameters
    ----------
    out : path
        Created (with its parents) if missing.

    Raises
    ------
    NotADirectoryError
        If ``out`` is an existing file.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.root = Path(out)
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(
                f"--out {str(self.root)!r} is a file; give a folder (it is created if missing)."
            )
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str | os.PathLike) -> Path:
        """``out/parts...``, refused if it would lie outside ``out``.

        Raises
        ------
        UsageError
            For an absolute path, ``..`` or a symbolic link leading out of the folder.
        """
        rel = Path(*parts)
        target = self.root / rel
        inside = self.root.resolve()
        if rel.is_absolute() or not target.resolve().is_relative_to(inside):
            raise UsageError(
                f"{str(rel)!r} would be written outside --out {str(self.root)!r}; outputs "
                "must stay in the run folder (give a name relative to it, without '..')."
            )
        return target

    # --------------------------------------------------------------------- metadata
    def metadata(self) -> dict[str, Any] | None:
        """The contents of ``run.json``, or ``None`` if there is none.

        Raises
        ------
        ValueError
            If it is damaged.
        """
        path = self.path(METADATA)
        if not path.is_file():
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or not isinstance(meta.get("settings"), dict):
                raise ValueError("no 'settings' table")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{str(path)!r} is damaged ({exc}); pass --overwrite to start the run over."
            ) from None
        return meta

    def differences(
        self, settings: Mapping[str, Any], keys: Sequence[str] | None = None
    ) -> list[str]:
        """``"table.key (stored -> given)"`` for each setting that differs from
        ``run.json`` (only the top-level entries ``keys``, if given); ``[]`` without
        ``run.json``."""
        meta = self.metadata()
        if meta is None:
            return []
        stored, given = meta["settings"], jsonable(settings)
        if keys is not None:
            stored = {k: stored.get(k) for k in keys}
            given = {k: given.get(k) for k in keys}
        a, b = _flat(stored), _flat(given)
        return [f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)]  # fmt: skip

    def check(self, settings: Mapping[str, Any], keys: Sequence[str] | None = None) -> None:
        """Refuse ``settings`` that differ from those of the run in the folder.

        Raises
        ------
        FileNotFoundError
            If the folder holds no run (no ``run.json``).
        ValueError
            Naming every setting that differs.
        """
        if self.metadata() is None:
            raise FileNotFoundError(
                f"--out {str(self.root)!r} holds no run ({METADATA} is missing): run `train` first."
            )
        diff = self.differences(settings, keys)
        if diff:
            raise ValueError(
                f"--out {str(self.root)!r} holds a run with other settings: "
                f"{', '.join(diff)}. Use the run's config, or another --out."
            )

    def begin(self, settings: Mapping[str, Any], *, resume: bool, overwrite: bool) -> bool:
        """Decide whether a command that produces the run continues it or starts afresh.

        Returns
        -------
        bool
            ``True``: continue the run in the folder (``resume`` and the same settings);
            ``False``: start afresh (no run there, or ``overwrite``).

        Raises
        ------
        UsageError
            For ``resume`` with ``overwrite``.
        ValueError
            If the folder holds a run with other settings (named) and not ``overwrite``.
        FileExistsError
            If the folder holds a run and neither ``resume`` nor ``overwrite``.
        """
        if resume and overwrite:
            raise UsageError("--resume continues the run and --overwrite replaces it: pick one.")
        if overwrite or self.metadata() is None:
            return False
        diff = self.differences(settings)
        if diff:
            raise ValueError(
                f"--out {str(self.root)!r} holds a run with other settings: {', '.join(diff)}. "
                "Use the same settings to continue it, --overwrite to start over, or another --out."
            )
        if not resume:
            raise FileExistsError(
                f"--out {str(self.root)!r} already holds this run; pass --resume to continue "
                "it, --overwrite to start over, or another --out."
            )
        return True

    def record(self, settings: Mapping[str, Any], argv: Sequence[str] | None = None) -> Path:
        """Write ``run.json``: ``settings``, :func:`versions`, the command line and the
        time (UTC). Call it once the inputs are checked, before the work starts."""
        meta = {
            "settings": settings,
            "versions": versions(),
            "command_line": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        return write_json(self.path(METADATA), meta)
