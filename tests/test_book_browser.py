"""The built book, as a reader sees it, in headless Chromium driven by Playwright.

Needs the built book (``make book``) and Debian's Chromium (``make test`` installs it).
Locally a missing component skips these tests; in CI (``CI=true``) it fails them.
Screenshots of every page are written to ``_build/screenshots`` for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from _helpers import require

pytestmark = pytest.mark.book  # the built book in Chromium (book implies slow: conftest)

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PAGES = sorted(p.relative_to(HTML).as_posix() for p in (HTML / "book").glob("*.html"))
# A full-page screenshot paints the whole page as one bitmap: the API reference is tens of
# thousands of pixels tall, and painting it took over 30 s on a loaded CI runner. The
# screenshots are for a person to look at, so a page is shot down to this height (the
# tallest texture Chromium paints in one piece), and given time to paint.
SHOT_MAX_HEIGHT = 16_384
SHOT_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def base_url():
    require((HTML / "index.html").exists(), f"the book is not built ({HTML}); run `make book`")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    require(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def _open(browser, url: str):
    """Open ``url``; return the page and the list of problems seen while loading it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def route(r):
        host = urlparse(r.request.url).hostname
        if host not in ("127.0.0.1", "localhost", None) and not r.request.url.startswith("data:"):
            problems.append(f"network request outside the book: {r.request.url}")
            return r.abort()
        return r.continue_()

    page.route("**/*", route)
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.goto(url, wait_until="networkidle")
    return page, problems


def _screenshot(page, path: Path) -> None:
    """The page from its top, down to at most :data:`SHOT_MAX_HEIGHT` pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("document.documentElement.scrollHeight")
    width = page.viewport_size["width"]
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, SHOT_MAX_HEIGHT)}
    page.screenshot(path=str(path), full_page=True, clip=clip, timeout=SHOT_TIMEOUT_MS)


def test_book_is_built():
    require((HTML / "index.html").exists(), f"the book is not built ({HTML}); run `make book`")
    assert PAGES, "no chapter pages under _build/html/book"
    assert "book/id_twonn.html" in PAGES


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_cleanly(browser, base_url, name):
    page, problems = _open(browser, base_url + name)
    try:
        n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if n_views:
            page.wait_for_selector(".jupyter-widgets", timeout=30_000)
            rendered = page.locator(".widget-box, .widget-stack, .widget-slider, .widget-image")
            assert rendered.count() >= n_views, f"{n_views} widgets, {rendered.count()} rendered"
        tracebacks = page.locator(".cell_output .traceback, .cell_output .output.error")
        assert tracebacks.count() == 0, f"{name} shows an error output"
        stderr = " ".join(page.locator(".cell_output .output.stderr").all_inner_texts())
        assert "Traceback" not in stderr and "Error" not in stderr, stderr[:500]
        _screenshot(page, SHOTS / (name.replace("/", "_") + ".png"))
        assert not problems, "\n".join(problems)
    finally:
        page.close()


def _visible_image_src(page, widget) -> str:
    imgs = widget.locator("img")
    for i in range(imgs.count()):
        if imgs.nth(i).is_visible():
            return imgs.nth(i).get_attribute("src")
    raise AssertionError("no visible image in the widget")


def test_slider_switches_the_figure_without_a_kernel(browser, base_url):
    page, problems = _open(browser, base_url + "book/id_twonn.html")
    try:
        page.wait_for_selector(".widget-slider", timeout=30_000)
        widget = page.locator(".jupyter-widgets.widget-vbox").first
        before = _visible_image_src(page, widget)
        handle = widget.locator(".widget-slider .noUi-handle").locator("visible=true").first
        handle.focus()
        handle.press("ArrowRight")
        handle.press("ArrowRight")
        page.wait_for_timeout(300)
        after = _visible_image_src(page, widget)
        assert after != before, "moving the slider did not change the displayed figure"
        # the drop-down switches to another manifold's page of figures
        page.locator(".widget-dropdown select").first.select_option(index=2)
        page.wait_for_timeout(300)
        assert _visible_image_src(page, widget) not in (before, after)
        SHOTS.mkdir(parents=True, exist_ok=True)
        widget.screenshot(path=str(SHOTS / "id_twonn_widget.png"))
        assert not problems, "\n".join(problems)
    finally:
        page.close()


WIDGET_PAGES = [
    "book/protopnet_decisions.html",
    "book/protopnet_compare.html",
    "book/protopnet_interventions.html",
    "book/protopnet_geometry.html",
]


@pytest.mark.parametrize("name", WIDGET_PAGES)
def test_part_two_widgets_respond_without_a_kernel(browser, base_url, name):
    """The slider of each Part II explorer switches the figure, with no kernel."""
    page, problems = _open(browser, base_url + name)
    try:
        page.wait_for_selector(".widget-slider", timeout=30_000)
        widget = page.locator(".jupyter-widgets.widget-vbox").first  # the outermost explorer
        before = _visible_image_src(page, widget)
        handle = widget.locator(".widget-slider .noUi-handle").locator("visible=true").first
        handle.focus()
        handle.press("ArrowRight")
        page.wait_for_timeout(300)
        assert _visible_image_src(page, widget) != before, f"the slider on {name} is dead"
        SHOTS.mkdir(parents=True, exist_ok=True)
        widget.screenshot(path=str(SHOTS / f"{name.replace('/', '_')}_widget.png"))
        assert not problems, "\n".join(problems)
    finally:
        page.close()


def _headline_chapters() -> list[str]:
    """The chapters whose headline claims the landing page pastes, in its order."""
    text = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    return re.findall(r"```\{glue\} claims_headline\n:doc: (\w+)\.md", text)


CLAIM_CHAPTERS = _headline_chapters()


def test_every_chapter_with_claims_is_on_the_landing_page():
    """Read from the sources (no browser): a chapter that declares claims has its
    headline block on the landing page, and the browser checks below cover it."""
    declaring = {p.stem for p in (ROOT / "book").glob("*.md") if "Claims(" in p.read_text()}
    assert declaring == set(CLAIM_CHAPTERS), (declaring, CLAIM_CHAPTERS)


def _claim_tables(page) -> list[list[dict[str, str]]]:
    """Every claims table of a page as rows of {column: text}."""
    return page.evaluate(
        """() => [...document.querySelectorAll('table.claims')].map(t => {
            const head = [...t.querySelectorAll('thead th')].map(th => th.innerText.trim());
            return [...t.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
                [...tr.querySelectorAll('td')].map((td, i) => [head[i], td.innerText.trim()])));
        })"""
    )


def _check_rows(name: str, rows: list[dict[str, str]]) -> None:
    from interp_lib.claims import VERDICTS

    assert rows, f"{name}: an empty claims table"
    for row in rows:
        assert row["verdict"] in VERDICTS, f"{name}: verdict {row['verdict']!r}"
        assert not re.search(r"\b(nan|inf|infinity)\b", row["ours"], re.IGNORECASE), (
            f"{name}: a non-finite number in {row}"
        )


def test_landing_page_shows_every_chapters_headline_claims(browser, base_url):
    page, problems = _open(browser, base_url + "book/intro.html")
    try:
        tables = _claim_tables(page)
        assert len(tables) == len(CLAIM_CHAPTERS), f"{len(tables)} headline tables"
        for chapter, rows in zip(CLAIM_CHAPTERS, tables, strict=True):
            _check_rows(f"intro ({chapter})", rows)
        assert not problems, "\n".join(problems)
    finally:
        page.close()


@pytest.mark.parametrize("chapter", CLAIM_CHAPTERS)
def test_chapter_claims_table_fits_and_is_complete(browser, base_url, chapter):
    page, _ = _open(browser, base_url + f"book/{chapter}.html")
    try:
        tables = _claim_tables(page)
        assert len(tables) == 1, f"{chapter}: {len(tables)} claims tables"
        _check_rows(chapter, tables[0])
        overflow = page.evaluate(
            """() => [...document.querySelectorAll('.claims-table')].map(
                d => d.querySelector('table').scrollWidth - d.clientWidth)"""
        )
        assert max(overflow) <= 1, f"{chapter}: the claims table is {max(overflow)} px too wide"
    finally:
        page.close()
