"""bench/knn_faiss.py: the README rows and the target lines it derives from its runs, and
one worker run of each method on a small file (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import bench_module, require_module

ROOT = Path(__file__).resolve().parents[1]


def _rows(mod):
    base = {"layer": "layer1", "N": 12000, "D": 64, "threads": "1", "load": "idle"}
    ours = [{"time": 1.0, "wall": 1.0}, {"time": 1.2, "wall": 1.1}]
    faiss = [{"time": 2.0, "wall": 2.0}, {"time": 1.2, "wall": 1.2}]
    rows = []
    for method, runs in (("interp_lib", ours), ("faiss", faiss)):
        row = mod._row(
            12000,
            64,
            method,
            [r | {"estimate": 0.0, "peak_mb": 0.0} for r in runs],
            [r | {"estimate": 0.0, "peak_mb": 0.0} for r in ours],
        )
        rows.append(row | base | {"method": method, "load_avg": [1.0, 1.5]})
    return rows


def test_rows_and_targets_are_ratios_of_medians_in_one_setting(monkeypatch):
    mod = bench_module("knn_faiss", monkeypatch)
    rows = _rows(mod)
    (entry,) = mod.table_rows(rows)
    assert entry["what"] == "exact 2-NN, ResNet-18 layer1 activations, N = 12,000, D = 64"
    assert "1 thread(s), idle" in entry["setting"] and "1.0-1.5" in entry["setting"]
    assert entry["peer"] == "FAISS IndexFlatL2 3-NN 1.60 s"
    assert entry["ratio"] == "1.45x (1.52x)"  # 1.6 / 1.1 CPU, 1.6 / 1.05 wall
    (line,) = mod.targets(rows)
    assert "1.45x CPU, 1.52x wall (target 1.5x: met)" in line


@pytest.mark.parametrize("method", ["interp_lib", "faiss"])
def test_a_worker_measures_one_search(method, tmp_path):
    if method == "faiss":
        require_module("faiss")  # in the test extra: fails in CI when missing
    path = tmp_path / "X.npy"
    np.save(path, np.random.default_rng(0).standard_normal((300, 16), dtype=np.float32))
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "knn_faiss.py"),
            "--worker",
            method,
            str(path),
            "HEAD",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["time"] > 0 and got["wall"] > 0
