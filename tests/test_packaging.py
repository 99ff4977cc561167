"""The package builds into a wheel fit for a release: the library and its type marker,
the version of ``pyproject.toml``, no tests, book or bench, and the console scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_builds_with_the_library_only(tmp_path):
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    src = tmp_path / "src"
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        capture_output=True,
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith(f"interp_lib-{project['version']}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert "interp_lib/py.typed" in names
    assert "interp_lib/__init__.py" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "book", "bench", "binder")]
    if project.get("scripts"):
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = zipfile.ZipFile(wheel).read(entry_points).decode()
        for script in project["scripts"]:
            assert f"{script} = " in text


def test_changelog_has_the_current_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
