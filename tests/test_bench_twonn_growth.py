"""bench/twonn_growth.py: the exponent fit, the prediction that stops large points, the
row reader, the worker's own peak memory and the summary it writes (no timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import bench_module

ROOT = Path(__file__).resolve().parents[1]


def test_the_fit_recovers_a_power_law_and_predicts_from_it(monkeypatch):
    mod = bench_module("twonn_growth", monkeypatch)
    ns = [5000, 10000, 20000, 50000]
    b, a = mod.fit_exponent(ns, [3e-9 * n**1.8 for n in ns])
    assert b == pytest.approx(1.8) and a == pytest.approx(3e-9)
    assert mod.predict(ns, [3e-9 * n**2 for n in ns], 200_000) == pytest.approx(120.0)
    assert mod.predict([5000], [1.0], 10_000) is None  # one point: nothing to fit
    assert mod.madds_per_s(1000, 100, 2.0) == 5e7
    with pytest.raises(ValueError, match="two or more distinct sizes"):
        mod.fit_exponent([5000, 5000], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive sizes and times"):
        mod.fit_exponent([5000, 10000], [1.0, 0.0])


def test_the_first_rows_are_read_without_a_copy(monkeypatch, tmp_path):
    mod = bench_module("twonn_growth", monkeypatch)
    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.save(tmp_path / "x.npy", X)
    np.testing.assert_array_equal(mod.read_rows(tmp_path / "x.npy", 3), X[:3])
    with pytest.raises(ValueError, match="N >= 11"):
        mod.read_rows(tmp_path / "x.npy", 11)
    for kind in ("full", "low"):
        Y = mod.make_data(kind, 50, 32)
        assert Y.shape == (50, 32) and Y.dtype == np.float32
    assert np.linalg.matrix_rank(mod.make_data("low", 50, 32), tol=0.1) == mod.LOW_RANK


def test_a_workers_peak_is_its_own_not_its_parents(monkeypatch):
    """ru_maxrss is inherited across fork + exec; VmHWM after a reset is the worker's."""
    bench_module("_common", monkeypatch)
    big = np.ones(300 * 2**20 // 8)  # the parent peaks at >= 300 MB  # noqa: F841
    code = (
        "import sys; sys.path.insert(0, 'bench'); import _common; _common.reset_peak_rss(); "
        "print(_common.peak_rss_mb())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert float(out.stdout) < 200


def test_the_summary_has_fits_stops_and_a_readme_table(monkeypatch, tmp_path):
    mod = bench_module("twonn_growth", monkeypatch)
    report = bench_module("report", monkeypatch)
    rows = [
        {"N": n, "D": 128, "kind": "full", "cpu_s": 1e-8 * n**2, "wall_s": 2e-8 * n**2,
         "peak_mb": 64.0, "estimate": 60.0, "madds_per_s": mod.madds_per_s(n, 128, 1e-8 * n**2),
         "load_avg": [1.0, 2.0]}
        for n in (5000, 10000, 20000, 50000)
    ]  # fmt: skip
    stopped = {"full/128": {"N": 100000, "predicted_cpu_s": 100.0, "why": "--max-point-s"}}
    settings = {"script": "bench/twonn_growth.py", "date": "2026-12-07 14:00 UTC",
                "machine": "vm (2 cores)", "threads": 1}  # fmt: skip
    summary = mod.summarise(rows, stopped, settings)
    fit = summary["fits"]["full/128"]
    assert fit["exponent_cpu_s"] == pytest.approx(2.0)
    assert fit["exponent_cpu_s_tail"] == pytest.approx(2.0)  # N >= 20,000: two points
    (entry,) = summary["table"]
    assert "D = 128, full-rank Gaussian" in entry["what"]
    assert "N = 100,000 not run (predicted 100 CPU s)" in entry["setting"]
    assert "N^2.00" in entry["ours"] and "exponent 2" in entry["peer"]
    mod.write_summary(tmp_path / "s.json", summary)
    table = report.render([json.loads((tmp_path / "s.json").read_text())])
    assert "TwoNN cost growth" in table and "`bench/twonn_growth.py` [1]" in table
