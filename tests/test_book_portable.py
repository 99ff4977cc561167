"""What a chapter tells a reader to run works from an installed package (Colab, Binder), or
the cell says that it needs a clone of the repository (``bench/`` is not installed)."""

from __future__ import annotations

import re
from pathlib import Path

BOOK = Path(__file__).resolve().parent.parent / "book"
CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)```", re.S)
REPO_ONLY = re.compile(r"(?<![\w/])(bench|tests|book|binder)/\S+\.py")


def test_repository_only_scripts_say_they_need_a_clone():
    offenders = []
    for page in sorted(BOOK.glob("*.md")):
        for cell in CELL.findall(page.read_text(encoding="utf-8")):
            if REPO_ONLY.search(cell) and "clone" not in cell:
                offenders.append(f"{page.name}: {REPO_ONLY.search(cell).group(0)}")
    assert offenders == [], "cells that run repository-only scripts without saying so"


def test_the_pattern_finds_a_bench_script():
    assert REPO_ONLY.search("!python bench/id_hunchback.py --quick")
    assert not REPO_ONLY.search("!python -m interp_lib.profile vgg16")
