"""bench/report.py renders the benchmark summaries into the README's one table (no timing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import bench_module

ROOT = Path(__file__).resolve().parents[1]


SAMPLE = [
    {
        "script": "bench/twonn.py",
        "date": "2026-11-30 00:10 UTC",
        "machine": "vm (Xeon, 2 cores, Linux)",
        "threads": 1,
        "load_before": "3.00 2.00 1.00",
        "load_after": "3.50 2.50 1.50",
        "table": [
            {
                "what": "TwoNN, N = 20,000, D = 1,000 (rank 12)",
                "setting": "CPU, 1 thread(s)",
                "ours": "2.00 s, peak 90 MB",
                "peer": "DADApy 7.00 s; scikit-learn brute 3-NN 5.00 s",
                "ratio": "3.50x; 2.50x",
            }
        ],
    },
    {
        "script": "bench/layer_profile.py",
        "date": "2026-11-30 00:20 UTC",
        "machine": "vm (Xeon, 2 cores, Linux)",
        "table": [
            {
                "what": "layer profile | ResNet-18",
                "setting": "200 images",
                "ours": "20.0 s",
                "peer": "naive 22.0 s",
                "ratio": "1.10x",
            }
        ],
    },
]


def test_renders_one_table_with_date_machine_and_sources():
    table = bench_module("report").render(SAMPLE)
    lines = table.splitlines()
    assert lines[0].startswith("| what | setting | ours |")
    assert lines[1].startswith("|---")
    assert lines[2] == (
        "| TwoNN, N = 20,000, D = 1,000 (rank 12) | CPU, 1 thread(s) | 2.00 s, peak 90 MB "
        "| DADApy 7.00 s; scikit-learn brute 3-NN 5.00 s | 3.50x; 2.50x | `bench/twonn.py` [1] |"
    )
    assert "layer profile \\| ResNet-18" in lines[3]  # a pipe in a cell is escaped
    assert lines[3].endswith("`bench/layer_profile.py` [2] |")
    assert (
        "- [1] `bench/twonn.py`, 2026-11-30 00:10 UTC, vm (Xeon, 2 cores, Linux), 1 thread(s) "
        "per run, load average 3.00 2.00 1.00 before, 3.50 2.50 1.50 after." in lines
    )
    assert (
        "- [2] `bench/layer_profile.py`, 2026-11-30 00:20 UTC, vm (Xeon, 2 cores, Linux)." in lines
    )
    assert sum(line.startswith("|") for line in lines) == 4  # header, separator, 2 rows


def test_readme_part_between_markers_is_replaced(tmp_path):
    report = bench_module("report")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{report.START}\nold table\n{report.END}\nafter\n")
    paths = []
    for i, s in enumerate(SAMPLE):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(s))
    report.main([str(p) for p in paths] + ["--readme", str(readme)])
    text = readme.read_text()
    assert "old table" not in text
    assert text.startswith("# x\n\nbefore\n" + report.START + "\n| what |")
    assert text.endswith(report.END + "\nafter\n")
    assert text.count("| `bench/") == 2
    # running it again gives the same README (idempotent)
    report.main([str(p) for p in paths] + ["--readme", str(readme)])
    assert readme.read_text() == text


def test_missing_markers_or_fields_are_explained():
    report = bench_module("report")
    with pytest.raises(ValueError, match="markers"):
        report.replace_between_markers("no markers here", "table")
    with pytest.raises(ValueError, match="lacks \\['date'\\]"):
        report.render([{k: v for k, v in SAMPLE[0].items() if k != "date"}])


def test_the_readme_has_the_markers():
    text = (ROOT / "README.md").read_text()
    report = bench_module("report")
    assert text.count(report.START) == 1 and text.count(report.END) == 1
    assert text.index(report.START) < text.index(report.END)


VARIANTS = {
    "script": "bench/protopnet_birds.py",
    "date": "2026-12-07 09:04 UTC",
    "machine": "vm (EPYC, 2 cores, Linux)",
    "threads": 1,
    "load": "2.60 3.22 4.52",
    "zoo_default": {"last_layer": "convex_nonpositive", "prototype_init": "cnn"},
    "table": {
        name: {
            "summary": {
                "n_seeds": 5,
                "protopnet": p,
                "protopnet_std": 0.019,
                "cnn": 0.977,
                "cnn_std": 0.013,
                "diff": p - 0.977,
                "diff_low": p - 0.997,
                "diff_high": p - 0.957,
                "evidence": 1.0,
                "on_bird": 0.764,
                "chance": 0.107,
            },
            "rows": [],
        }
        for name, p in (("convex_nonpositive/cnn", 0.958), ("adam/cnn", 0.785))
    },
}


def test_a_variants_summary_renders_one_row_per_variant():
    lines = bench_module("report").render([VARIANTS]).splitlines()
    rows = [line for line in lines[2:] if line.startswith("|")]
    assert len(rows) == 2
    assert "convex_nonpositive/cnn (zoo default)" in rows[0] and "(zoo default)" not in rows[1]
    assert "ProtoPNet 0.958 ± 0.019" in rows[0] and "CNN 0.977 ± 0.013" in rows[0]
    assert "gap -1.9 points, 95 % t-interval [-3.9, +0.1]" in rows[0]
    assert any(line.endswith("load average 2.60 3.22 4.52.") for line in lines)


def test_the_readme_table_is_rendered_from_the_tracked_summaries():
    """The README's figures are the summaries', never a hand-typed copy: the part between
    the markers is exactly what bench/report.py renders from bench/summaries/."""
    report = bench_module("report")
    summaries = ROOT / "bench" / "summaries"
    paths = report.default_paths(summaries)
    assert {p.stem for p in summaries.glob("*.json")} - {p.stem for p in paths} == set(
        report.BOOK_ONLY
    )
    text = (ROOT / "README.md").read_text()
    block = text[text.index(report.START) + len(report.START) + 1 : text.index(report.END)]
    assert block == report.render(report.load(paths)), (
        "the README's benchmark table differs from bench/summaries: run python bench/report.py"
    )
