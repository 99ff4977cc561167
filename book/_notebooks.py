"""Write every executable chapter as a Jupyter notebook under ``notebooks/``.

The chapters are MyST text notebooks (``book/*.md``); Colab and plain Jupyter want
``.ipynb``. ``make notebooks`` regenerates them (no outputs, plus a first cell that
installs ``interp_lib`` when it is missing, as on Colab), and a test checks that the
committed notebooks match their sources.

    python book/_notebooks.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from myst_nb.core.read import read_myst_markdown_notebook

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "https://github.com/interp-lib/interp_lib"
SETUP = f"""\
# Colab or a fresh environment: install interp_lib (and the book's extras) if missing.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("interp_lib") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "interp_lib[viz] @ git+{REPOSITORY}", "pandas", "captum"], check=True)"""


def is_notebook(path: Path) -> bool:
    text = path.read_text()
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]


def to_notebook(path: Path) -> nbformat.NotebookNode:
    nb = read_myst_markdown_notebook(path.read_text())
    nb.metadata.pop("jupytext", None)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP, metadata={"tags": ["colab-setup"]}))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{path.stem}-{i}"  # stable ids: regenerating changes nothing
    return nb


def main(out: str = "notebooks") -> None:
    out_dir = ROOT / out
    out_dir.mkdir(exist_ok=True)
    for path in sorted((ROOT / "book").glob("*.md")):
        if is_notebook(path):
            nbformat.write(to_notebook(path), out_dir / f"{path.stem}.ipynb")
            print(f"wrote {out}/{path.stem}.ipynb")


if __name__ == "__main__":
    main(*sys.argv[1:])
