"""The committed notebooks (for Colab and Jupyter) match the book's MyST chapters."""

import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest
from _helpers import require_module

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("book_notebooks", ROOT / "book" / "_notebooks.py")
book_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_notebooks)
CHAPTERS = [p for p in sorted((ROOT / "book").glob("*.md")) if book_notebooks.is_notebook(p)]


def test_every_chapter_has_a_notebook():
    assert {p.stem for p in CHAPTERS} >= {"quickstart", "id_twonn", "id_layers"}
    assert {p.stem for p in CHAPTERS} == {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_is_up_to_date(chapter):
    committed = nbformat.read(ROOT / "notebooks" / f"{chapter.stem}.ipynb", as_version=4)
    nbformat.validate(committed)
    fresh = book_notebooks.to_notebook(chapter)
    assert [c.source for c in committed.cells] == [c.source for c in fresh.cells], (
        f"notebooks/{chapter.stem}.ipynb is stale: run `make notebooks`"
    )
    assert committed.cells[0].metadata["tags"] == ["colab-setup"]
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")


# A plain Jupyter kernel, as on Colab or Binder: none of the book's build tools.
_BLOCK_BOOK_TOOLS = '''
import sys


class _PlainJupyter:
    """Make the book's build tools unimportable, as in a plain Jupyter kernel."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"myst_nb", "jupyter_book", "sphinx", "jupytext"}:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None


sys.meta_path.insert(0, _PlainJupyter())
'''


def test_markdown_has_no_myst_markup_left():
    """Citations, glue references, cross-references and dropdowns read as plain text."""
    for chapter in CHAPTERS:
        nb = book_notebooks.to_notebook(chapter)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                for role in ("{cite:", "{glue:", "{doc}", "{func}", "{admonition}", "{dropdown}"):
                    assert role not in cell.source, (
                        f"{chapter.stem}: {role} left in {cell.source[:80]!r}"
                    )
    md = book_notebooks.plain_markdown(
        "{cite:t}`ansuini2019intrinsic` measured {glue:text}`g10:.2f`.\n\n"
        "```{admonition} Solution\n:class: dropdown\nForty-two.\n```\n"
    )
    assert md.startswith("Ansuini et al. (2019) measured `g10`")
    assert "<details>\n<summary>Solution</summary>\n\nForty-two." in md


@pytest.mark.book  # executes every chapter (book implies slow: conftest)
@pytest.mark.timeout(3000)  # a chapter that trains its networks runs for minutes
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_runs_in_a_plain_kernel(chapter, tmp_path):
    """Each committed notebook executes in a kernel that cannot import MyST-NB or Sphinx,
    and prints the numbers the prose refers to instead of gluing them. Training budgets
    are cut (``interp_lib.book.budget``) so that CI can afford a second run of every
    chapter; the book build runs them at full size."""
    nbclient = require_module("nbclient")
    (tmp_path / "sitecustomize.py").write_text(_BLOCK_BOOK_TOOLS)
    env = {k: v for k, v in os.environ.items() if k != "INTERP_LIB_BOOK_BUILD"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    env["INTERP_LIB_BOOK_QUICK"] = "1"  # training budgets cut (book.budget): the code runs
    nb = nbformat.read(ROOT / "notebooks" / f"{chapter.stem}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "book")}}
    )
    client.execute(env=env)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "myst_nb" not in code, "chapters import glue from interp_lib.viz, not myst_nb"
    printed = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    for name in re.findall(r"\bglue\(\s*[\"']([^\"']+)[\"']", code):
        assert f"{name} = " in printed, f"{chapter.stem}: glued value {name!r} was not printed"
