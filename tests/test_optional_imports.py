"""Optional dependencies are imported only through ``interp_lib._plumbing.require``.

The README promises that a missing extra fails with the exact ``pip install`` command.
A bare ``import matplotlib.pyplot`` inside a function breaks that promise with a plain
``ModuleNotFoundError``, so the source is scanned for such imports (outside
``if TYPE_CHECKING:`` blocks), and a few public functions are called with the optional
packages hidden.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import torch

import interp_lib
from interp_lib._plumbing import EXTRAS

PACKAGE = Path(interp_lib.__file__).parent


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _bare_optional_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in EXTRAS and node.lineno not in guarded:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {name}")
    return found


def test_optional_packages_only_through_require():
    assert _bare_optional_imports() == [], (
        "import optional packages with interp_lib._plumbing.require(module, feature), "
        "which names the pip install command"
    )


def test_the_scan_sees_a_bare_import(tmp_path, monkeypatch):
    """The scan itself can fail: a module with a bare pandas import is reported."""
    fake = tmp_path / "interp_lib"
    fake.mkdir()
    (fake / "m.py").write_text("def f():\n    import pandas as pd\n    return pd\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _bare_optional_imports() == ["interp_lib/m.py:2 pandas"]


@pytest.fixture
def no_extras(monkeypatch):
    """Hide every optional package, as in ``pip install interp_lib`` without extras."""
    for name in list(sys.modules):
        if name.split(".")[0] in EXTRAS:
            monkeypatch.delitem(sys.modules, name)
    for top in EXTRAS:
        monkeypatch.setitem(sys.modules, top, None)


def test_core_only_viz_and_tables_name_the_extra(no_extras):
    from interp_lib.id import twonn
    from interp_lib.studies import correlation_bootstrap
    from interp_lib.viz import (
        figure_png,
        plot_mu_histogram,
        plot_twonn_fit,
        sample_grid,
        twonn_figure,
    )

    X = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    res = twonn(X)
    calls = {
        "plot_twonn_fit": lambda: plot_twonn_fit(res),
        "plot_mu_histogram": lambda: plot_mu_histogram(res),
        "sample_grid": lambda: sample_grid(torch.rand(4, 3, 8, 8)),
        "twonn_figure": lambda: twonn_figure(n=100),
        "figure_png": lambda: figure_png(object()),
        "to_pandas": lambda: correlation_bootstrap(
            torch.arange(8.0), torch.arange(8.0).flip(0), n_resamples=20, seed=0
        ).to_pandas(),
    }
    for name, call in calls.items():
        with pytest.raises(ModuleNotFoundError, match=r'pip install "interp_lib\[viz\]"') as exc:
            call()
        assert "needs" in str(exc.value), name
