"""Drop the book's execution cache when the library's code changed.

Jupyter Book caches executed notebooks by the notebook's own text, so a change inside
``interp_lib`` would otherwise leave old results in the published book. ``make book``
runs this first: it hashes every file of the package and, when the hash differs from the
one recorded at the previous build, clears ``_build/.jupyter_cache`` and Sphinx's
environment (``_build/.doctrees``): without the latter Sphinx re-reads, and so
re-executes, only the chapters whose own text changed, and keeps the others' old outputs.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_hash() -> str:
    h = hashlib.sha256()
    for path in sorted((ROOT / "interp_lib").rglob("*")):
        if path.is_file() and path.suffix in {".py", ".typed", ".json"}:
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def main(build_dir: str = "_build") -> None:
    build = ROOT / build_dir
    stamp = build / ".interp_lib.sha256"
    new = package_hash()
    if stamp.exists() and stamp.read_text() == new:
        return
    stale = [build / ".jupyter_cache", build / ".doctrees"]
    if any(p.exists() for p in stale):
        print("interp_lib changed since the last build: clearing the execution cache")
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    stamp.write_text(new)


if __name__ == "__main__":
    main(*sys.argv[1:])
