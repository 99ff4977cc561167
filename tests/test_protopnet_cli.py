"""``python -m interp_lib.protopnet`` end to end on a fake CUB folder with random weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _fake_cub import make_fake_cub

from interp_lib.protopnet import load_checkpoint
from interp_lib.protopnet.cli import load_config, main

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[data]
kind = "cub"
root = "{root}"
image_size = 32
batch_size = 4
eval_batch_size = 6
val_fraction = 0.25

[model]
backbone = "small_cnn"
n_prototypes_per_class = 2
prototype_dim = 8
backbone_kwargs = {{ widths = [8, 8] }}

[schedule]
epochs = 2
warmup_epochs = 1
push_start = 1
push_every = 1

[fit]
seed = 0
progress = false

[prune]
k = 2
threshold = 1
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    cub = make_fake_cub(base)
    path = base / "run.toml"
    path.write_text(CONFIG.format(root=cub.as_posix()))
    return path


@pytest.mark.slow
def test_train_push_prune_explain(config, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--device", "cpu"]) == 0
    for name in (
        "checkpoint.pt",
        "model.pt",
        "history.json",
        "history.csv",
        "metrics.json",
        "config.json",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    history = json.loads((out / "history.json").read_text())
    assert {r["stage"] for r in history} >= {"warmup", "joint", "push"}
    model = load_checkpoint(out / "model.pt")
    assert model.prototypes.shape[0] == 6 and model.last_layer.out_features == 3

    assert main(["push", str(config), "--out", str(out), "--device", "cpu"]) == 0
    push = json.loads((out / "push.json").read_text())
    assert len(push["box_xyxy"]) == 6 and all(len(b) == 4 for b in push["box_xyxy"])

    assert main(["prune", str(config), "--out", str(out), "--device", "cpu"]) == 0
    pruned = json.loads((out / "prune.json").read_text())
    assert load_checkpoint(out / "pruned.pt").prototypes.shape[0] == 6 - len(pruned["removed"])

    assert main(["explain", str(config), "--out", str(out), "--n-images", "2", "--top-k", "2"]) == 0
    sheets = sorted((out / "explanations").glob("*.png"))
    assert len(sheets) == 2
    rows = json.loads((out / "explanations" / "explanations.json").read_text())
    assert [r["label"] for r in rows] == [0, 2]  # first and last test image


@pytest.mark.slow
def test_resume_after_finishing_changes_nothing(config, tmp_path):
    out = tmp_path / "run"
    main(["train", str(config), "--out", str(out), "--device", "cpu"])
    first = load_checkpoint(out / "model.pt").state_dict()
    main(["train", str(config), "--out", str(out), "--device", "cpu", "--resume"])
    again = load_checkpoint(out / "model.pt").state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)


@pytest.mark.distributed
def test_runs_under_torchrun_with_two_processes(config, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "interp_lib.protopnet", "train", str(config), "--out", str(out), "--device", "cpu"]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (out / "model.pt").is_file() and (out / "history.json").is_file()


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nroot = '/x'\nsize = 3\n")
    with pytest.raises(ValueError, match="unknown keys \\['size'\\]"):
        load_config(bad)
    bad.write_text("[dataa]\n")
    with pytest.raises(ValueError, match="unknown tables"):
        load_config(bad)
    bad.write_text("[data]\nkind = 'cub'\n")
    with pytest.raises(ValueError, match="needs root"):
        load_config(bad)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")
    bad.write_text("not toml [")
    with pytest.raises(ValueError, match="could not read config"):
        load_config(bad)
