"""The committed notebooks (for Colab and Jupyter) match the book's MyST chapters."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

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
