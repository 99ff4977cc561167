"""Long work in the chapters: progress bars for a reader, none in a book build, and each
chapter's measured running time at its top (``bench/notebook_times.py`` ->
``interp_lib.book.run_time``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from _helpers import bench_module, require_module

from interp_lib import book

ROOT = Path(__file__).resolve().parents[1]


def _toc_chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [Path(f).name for f in files if (ROOT / "notebooks" / f"{Path(f).name}.ipynb").exists()]


CHAPTERS = _toc_chapters()


def _code_cells(text: str) -> list[str]:
    return re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S)


def test_progress_is_on_for_a_reader_and_off_in_a_build_or_quick_run(monkeypatch):
    monkeypatch.delenv(book.BOOK_BUILD_ENV, raising=False)
    monkeypatch.delenv(book.QUICK_ENV, raising=False)
    assert book.progress() is True
    monkeypatch.setenv(book.BOOK_BUILD_ENV, "1")
    assert book.progress() is False
    monkeypatch.delenv(book.BOOK_BUILD_ENV)
    monkeypatch.setenv(book.QUICK_ENV, "1")
    assert book.progress() is False


ROW = {"chapter": "ch", "cold": {"wall_s": 300.0, "cpu_s": 290.0, "peak_rss_gb": 1.94},
       "warm": {"wall_s": 45.0, "cpu_s": 40.0, "peak_rss_gb": 1.2}, "date": "2026-12-07 10:00 UTC",
       "quick": False}  # fmt: skip


def test_run_time_states_the_measured_row(tmp_path):
    path = tmp_path / "notebooks.json"
    path.write_text(json.dumps({"cpu_count": 2, "table": [ROW]}))
    text = book.run_time("ch", path)
    assert "about 5 min with an empty model cache (cold)" in text
    assert "1 min with the cache warm" in text and "on 2 CPU cores" in text
    assert "peaks at 1.9 GB" in text and "2026-12-07" in text
    assert "Binder" not in text  # no quick row: no Binder figure
    # no row, only a quick row, no summary at all (an installed package): said so
    path.write_text(json.dumps({"cpu_count": 2, "table": [{**ROW, "quick": True}]}))
    for chapter, summary in (("ch", path), ("other", path), ("ch", tmp_path / "missing.json")):
        assert "has not been measured" in book.run_time(chapter, summary)


QUICK = {**ROW, "cold": {"wall_s": 60.0, "cpu_s": 55.0, "peak_rss_gb": 1.234},
         "warm": {"wall_s": 20.0, "cpu_s": 18.0, "peak_rss_gb": 0.9}, "quick": True}  # fmt: skip


@pytest.mark.parametrize("order", [(ROW, QUICK), (QUICK, ROW)])
def test_run_time_keeps_the_default_row_and_adds_the_binder_peak(tmp_path, order):
    """Times and first peak from the default row whatever the rows' order; the quick
    row (the budget Binder runs) adds its peak, the larger of its runs."""
    path = tmp_path / "notebooks.json"
    path.write_text(json.dumps({"cpu_count": 2, "table": list(order)}))
    text = book.run_time("ch", path)
    assert "about 5 min with an empty model cache (cold)" in text
    assert "its kernel peaks at 1.9 GB" in text
    assert "on Binder (quick budget) it peaks at 1.23 GB" in text
    # a quick row with a cold run only (bench/notebook_times.py --quick --cold-only)
    cold_only = {k: v for k, v in QUICK.items() if k != "warm"}
    path.write_text(json.dumps({"cpu_count": 2, "table": [ROW, cold_only]}))
    assert "on Binder (quick budget) it peaks at 1.23 GB" in book.run_time("ch", path)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_chapter_says_its_running_time_at_the_top(chapter):
    text = (ROOT / "book" / f"{chapter}.md").read_text()
    first = _code_cells(text)[0]
    assert f'run_time("{chapter}")' in first, f"{chapter}: the first cell states the run time"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_long_calls_in_the_chapters_show_progress_in_a_notebook(chapter):
    """No code cell turns the bars off for good; ``progress=book.progress()`` turns them
    off in the book build only (the paper-scale smoke check on 120 random images is too
    short for a bar)."""
    code = "\n".join(_code_cells((ROOT / "book" / f"{chapter}.md").read_text()))
    allowed = 1 if chapter == "id_paper_scale" else 0
    assert code.count("progress=False") == allowed, chapter


@pytest.mark.slow  # a child interpreter allocates 300 MB and burns CPU
def test_the_monitor_sees_a_child_process_memory_and_cpu():
    require_module("psutil")
    bench = bench_module("notebook_times")
    code = ("import time\nb = bytearray(300_000_000)\nt = time.process_time()\n"
            "while time.process_time() - t < 0.6: pass\ntime.sleep(0.4)\n")  # fmt: skip
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code!r}])",
        ]
    )
    time.sleep(0.05)
    monitor = bench.KernelMonitor(parent.pid, interval=0.05)
    monitor.start()
    parent.wait()
    monitor.stop()
    assert monitor.peak_rss > 300e6  # the child's bytearray, counted with its parent
    assert monitor.cpu_seconds >= 0.5  # the child's busy loop


def test_a_measured_chapter_replaces_its_row_and_keeps_the_others(tmp_path):
    bench = bench_module("notebook_times")
    path = tmp_path / "notebooks.json"
    old = {"table": [{**ROW, "chapter": "id_twonn"}, {**ROW, "chapter": "id_layers"}]}
    path.write_text(json.dumps(old))
    new = {**ROW, "chapter": "id_twonn", "date": "later"}
    summary = bench.merge(path, [new])
    rows = {r["chapter"]: r for r in summary["table"]}
    assert rows["id_twonn"]["date"] == "later" and rows["id_layers"] == old["table"][1]
    assert [r["chapter"] for r in summary["table"]] == ["id_layers", "id_twonn"]  # file order


def test_rows_are_keyed_by_chapter_and_budget(tmp_path):
    """A quick (Binder) row and a default row of the same chapter live side by side; a
    new row replaces only the old row at its own budget; default before quick."""
    bench = bench_module("notebook_times")
    path = tmp_path / "notebooks.json"
    default = {**ROW, "chapter": "id_twonn"}
    quick = {**QUICK, "chapter": "id_twonn"}
    path.write_text(json.dumps(bench.merge(path, [quick])))
    summary = bench.merge(path, [default])
    assert [(r["chapter"], r["quick"]) for r in summary["table"]] == [
        ("id_twonn", False),
        ("id_twonn", True),
    ]
    path.write_text(json.dumps(summary))
    summary = bench.merge(path, [{**quick, "date": "later"}])
    rows = {(r["chapter"], r["quick"]): r for r in summary["table"]}
    assert rows["id_twonn", True]["date"] == "later" and rows["id_twonn", False] == default


def test_a_failing_notebook_is_reported_and_the_others_still_written(tmp_path, monkeypatch):
    bench = bench_module("notebook_times")

    def measure(chapter, **kwargs):
        if chapter == "bad":
            raise RuntimeError("cell failed")
        return {**ROW, "chapter": chapter, "quick": kwargs["quick"]}

    monkeypatch.setattr(bench, "measure", measure)
    path = tmp_path / "notebooks.json"
    assert bench.main(["bad", "good", "--quick", "--cold-only", "--json", str(path)]) == 1
    rows = json.loads(path.read_text())["table"]
    assert [(r["chapter"], r["quick"]) for r in rows] == [("good", True)]


def test_binder_runs_the_chapters_at_their_quick_budget():
    """mybinder.org gives 2 GB; ``binder/start`` (run by repo2docker before Jupyter)
    sets the documented smaller setting and then runs the command it is given."""
    start = ROOT / "binder" / "start"
    assert start.stat().st_mode & 0o111, "binder/start must be executable"
    run = subprocess.run(["bash", str(start), "env"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"{book.QUICK_ENV}=1" in run.stdout.splitlines()
    assert 'exec "$@"' in start.read_text()


def test_quick_measurements_run_in_binders_environment(monkeypatch):
    """``bench/notebook_times.py --quick`` gives the kernel what ``binder/start`` exports
    (the quick budget and the fixed glibc mmap threshold that keeps freed tensors from
    staying resident), so a quick row's peak is a Binder session's."""
    monkeypatch.delenv(book.QUICK_ENV, raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    env = bench_module("notebook_times").binder_env()
    assert env[book.QUICK_ENV] == "1"
    assert int(env["MALLOC_MMAP_THRESHOLD_"]) > 0


def test_binder_image_holds_the_protopnet_chapters_cached_networks():
    """``binder/postBuild`` trains, at image build time, the zoo entry the ProtoPNet
    chapters read at their quick budget, so a session starts warm (cold, training in the
    kernel takes it past 2 GB)."""
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert subprocess.run(["bash", "-n", str(post)], timeout=60).returncode == 0
    call = re.search(r"zoo\.(protopnet_birds\(seed=0)", post.read_text()).group(1)
    for chapter in ("protopnet_intro", "protopnet_decisions", "protopnet_compare"):
        assert call in (ROOT / "book" / f"{chapter}.md").read_text(), chapter
