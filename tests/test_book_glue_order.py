"""A reader of a notebook sees each number the text quotes printed before the text
quotes it: every ``{glue:text}`name``` comes after the cell that glues ``name``.

In the book the order does not matter (MyST-NB fills the text in after execution); in a
notebook, ``interp_lib.book.glue`` prints ``name = value`` where the cell runs, so text
that names ``name`` above that cell points at a value the reader has not seen yet.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [Path(c["file"]).name for part in toc["parts"] for c in part["chapters"]]
    return [f for f in files if (ROOT / "book" / f"{f}.md").is_file()]


def glued_before_use(text: str) -> list[str]:
    """``"name (line L, glued at line G)"`` for each text use of a glued name above the
    first cell that glues it."""
    first: dict[str, int] = {}
    for m in re.finditer(r"\bglue\(\s*[\"']([^\"']+)[\"']", text):
        first.setdefault(m.group(1), m.start())
    out = []
    for m in re.finditer(r"\{glue(?::text|:md)?\}`([^`:]+)", text):
        name = m.group(1)
        if name in first and m.start() < first[name]:
            line, glued = (text[:i].count("\n") + 1 for i in (m.start(), first[name]))
            out.append(f"{name} (line {line}, glued at line {glued})")
    return out


def test_the_check_finds_a_name_quoted_above_its_cell():
    text = 'We use {glue:text}`n` images.\n\n```{code-cell}\nglue("n", 3)\n```\n'
    assert glued_before_use(text) == ["n (line 1, glued at line 4)"]
    fixed = '```{code-cell}\nglue("n", 3)\n```\n\nWe use {glue:text}`n:.0f` images.\n'
    assert glued_before_use(fixed) == []


@pytest.mark.parametrize("chapter", _chapters())
def test_every_quoted_number_is_printed_before_the_text_quotes_it(chapter):
    text = (ROOT / "book" / f"{chapter}.md").read_text()
    assert glued_before_use(text) == [], chapter
