"""bench/layer_profile.py: the workers' environment (threads, OpenMP's wait policy) and the
README rows it writes (no timing is asserted)."""

from __future__ import annotations

import argparse
import json

import pytest
from _helpers import bench_module


@pytest.fixture
def mod(monkeypatch):
    return bench_module("layer_profile", monkeypatch)


def test_the_environment_sets_or_removes_threads_and_the_wait_policy(mod, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    env = mod._environment("default")
    assert "OMP_WAIT_POLICY" not in env and "OMP_NUM_THREADS" not in env
    env = mod._environment("1", "PASSIVE")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"


@pytest.mark.parametrize("policy", ["unset", "PASSIVE"])
def test_rows_name_the_wait_policy_they_ran_under(mod, policy, tmp_path):
    args = argparse.Namespace(
        n=200, image_size=112, rounds=2, threads="default", omp_wait_policy=policy,
        json=str(tmp_path / "s.json"),
    )  # fmt: skip
    run = {"time": 4.0, "wall": 2.0, "peak_mb": 200.0, "threads": 2, "ids": {}}
    results = {"default thread(s), loaded": {"naive": run, "interp_lib": dict(run, time=2.0)}}
    ratios = {"default thread(s), loaded": {"naive": 1.0, "interp_lib": 0.5}}
    loadavg = {("default", "loaded"): [3.0, 4.5]}
    mod.summarise(args, results, ratios, {}, loadavg, "1.0")
    summary = json.loads((tmp_path / "s.json").read_text())
    (row,) = summary["table"]
    assert ("OMP_WAIT_POLICY=PASSIVE" in row["setting"]) == (policy == "PASSIVE")
    assert "default (2) thread(s)" in row["setting"] and "3.0-4.5" in row["setting"]
    assert row["ratio"].startswith("2.00x time (1.00x wall)")
    assert summary["omp_wait_policy"] == policy
