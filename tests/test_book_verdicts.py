"""No verdict is written by hand: every comparison with a paper goes through claim records.

The chapters' sources (prose and code) may not contain a verdict phrase: the words come
only from :mod:`interp_lib.claims`, computed from a criterion declared before the result.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "book").glob("*.md"))

#: Phrases that state agreement or disagreement with a paper (case-insensitive).
VERDICT_PHRASES = [
    r"\b(dis)?agree(s|d|ing|ment)?\b",
    r"\bas in the paper\b",
    r"\bsame shape\b",
    r"\bopposite\b",
    r"\bmatch(es|ed)? the paper",
    r"\bconsistent with the paper",
    r"\breproduces? the paper",
    r"\bconfirms? the paper",
]
_PATTERN = re.compile("|".join(VERDICT_PHRASES), re.IGNORECASE)

#: Pages with no comparison of our numbers with a paper's.
NO_COMPARISON = {
    "api",
    "bibliography",
    "quickstart",
    "intro",
    "id_paper_scale",
    "protopnet_paper_scale",
}  # the paper-scale pages are recipes run on random weights: nothing measured to compare


def _chapters():
    return [p for p in PAGES if p.stem not in NO_COMPARISON]


def test_pages_found():
    assert {p.stem for p in PAGES} >= {"intro", "id_twonn", "id_layers", "protopnet_intro"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_no_verdict_phrase_outside_claims(page):
    hits = [
        f"{page.name}:{i}: {m.group(0)!r} in {line.strip()[:100]!r}"
        for i, line in enumerate(page.read_text().splitlines(), 1)
        for m in _PATTERN.finditer(line)
    ]
    assert not hits, (
        "verdict phrases written by hand (state them through interp_lib.claims: declare a "
        "criterion, resolve it, show the table):\n" + "\n".join(hits)
    )


def test_the_scan_catches_verdicts():
    for text in (
        "the shape agrees with the paper",
        "As in the paper, memorising raised the ID",
        "the opposite direction to the paper's",
        "same shape, smaller size",
        "Agreement",
        "this matches the paper",
    ):
        assert _PATTERN.search(text), text
    for text in ("following the paper's protocol", "the paper's setting", "aggregated"):
        assert not _PATTERN.search(text), text


@pytest.mark.parametrize("page", _chapters(), ids=lambda p: p.stem)
def test_chapter_comparisons_come_from_claims(page):
    """A chapter that compares with a paper declares its claims first and shows them."""
    text = page.read_text()
    assert "Claims(" in text and ".show()" in text, (
        f"{page.name} compares with a paper but shows no claims table (Claims(...).show())"
    )
    declares = [m.start() for m in re.finditer(r"\.declare\(", text)]
    resolves = [m.start() for m in re.finditer(r"\.resolve\(", text)]
    assert declares and resolves, f"{page.name}: no claim declared or resolved"
    assert max(declares) < min(resolves), (
        f"{page.name}: a claim is declared after the first resolve; declare every criterion "
        "before the first result"
    )
