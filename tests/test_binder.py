"""Binder's environment files say what repo2docker needs to build a working image.

repo2docker defaults to Python 3.10 when ``runtime.txt`` is missing (and warns that the
default will move); the TOML configs need 3.11's ``tomllib`` or the backport; an unpinned
``torch`` next to PyTorch's index lets pip pick a CUDA build of several GB.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith(("-", "--")):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"binder/requirements.txt: {line!r} is not pinned with =="
        pins[name.strip().lower()] = version.strip()
    return pins


def test_runtime_is_pinned_to_a_supported_python():
    text = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", text)
    assert match, f"binder/runtime.txt must read python-3.X, got {text!r}"
    assert int(match.group(1)) >= 11


def test_torch_is_the_cpu_build_and_every_package_is_pinned():
    pins = _requirements()
    assert pins["torch"].endswith("+cpu") and pins["torchvision"].endswith("+cpu")
    for name in ("matplotlib", "ipywidgets", "pandas", "captum"):
        assert name in pins, f"binder/requirements.txt does not pin {name}"
    assert int(pins["ipywidgets"].split(".")[0]) >= 8  # the widgets use ipywidgets 8's API


def test_binder_pins_satisfy_the_package_floors():
    """Each pin is at or above the lower bound that pyproject.toml declares."""
    import tomllib
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in ("viz", "captum"):
        declared += [r for r in project["optional-dependencies"][extra] if "interp_lib" not in r]
    pins = _requirements()
    for text in declared:
        req = Requirement(text)
        if req.name.lower() in pins:
            version = Version(pins[req.name.lower()].split("+")[0])
            assert req.specifier.contains(version), f"{req.name} {version} vs {req.specifier}"
