"""``python -m interp_lib.profile``: end to end on a fake ImageFolder with random weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from _helpers import GOLDEN_RTOL, same_numbers
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset

from interp_lib.networks import build
from interp_lib.profile import cli, layer_ids
from interp_lib.studies import class_indices, per_class

matplotlib.use("Agg")

CLASSES = ("n01", "n02", "n03")


def tiny_net(n_classes: int = 3) -> nn.Module:
    """A VGG-like toy: conv-pool-conv-pool-fc-fc (the factory of ``module:factory``)."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 12),
        nn.ReLU(inplace=True),
        nn.Linear(12, n_classes),
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir()
        for i in range(14 + c):  # classes of 14, 15, 16 images
            pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(tiny_net().state_dict(), path)
    return path


def args(folder, out, weights, *extra):
    return [
        "test_profile_cli:tiny_net",
        str(folder),
        "--out",
        str(out),
        "--weights",
        str(weights),
        "--image-size",
        "16",
        "--n-per-class",
        "12",
        "--n-resamples",
        "3",
        "--batch-size",
        "5",
        *extra,
    ]


@pytest.mark.slow
def test_end_to_end_matches_layer_ids_and_resumes(folder, weights, tmp_path, monkeypatch):
    out = tmp_path / "run"
    summary = cli.run(args(folder, out, weights))
    # the paper's checkpoints: input, every max-pool, every linear layer
    assert summary["modules"] == ["input", "2", "5", "7", "9"]
    assert summary["n_classes"] == 3 and set(summary["classes"]) == set(CLASSES)
    assert (out / "profile.png").stat().st_size > 0
    saved = json.loads((out / "profile.json").read_text())
    assert saved["id_mean"] == summary["id_mean"]
    # one class recomputed by hand: same subset, same model, same numbers
    model = build("test_profile_cli:tiny_net", weights)
    from interp_lib.datasets import image_folder, imagenet_transform

    data = image_folder(folder, transform=imagenet_transform(16))
    idx = class_indices(data.targets, 12, choose="random", seed=0)[1]
    prof = layer_ids(model, DataLoader(Subset(data, idx), batch_size=5), n_resamples=3,
                     progress=False)  # fmt: skip
    record = summary["classes"]["n02"]
    assert record["n_images"] == 12 and record["dimension"] == list(prof.dimensions)
    assert record["id"] == pytest.approx([np.mean(r) for r in prof.resamples])
    ids = np.array([summary["classes"][c]["id"] for c in CLASSES])
    assert summary["id_mean"] == pytest.approx(ids.mean(0).tolist())
    assert summary["id_sd_over_classes"] == pytest.approx(ids.std(0, ddof=1).tolist())

    # resume: finished classes are skipped (their files untouched), a missing one redone
    before = {c: (out / "classes" / f"{c}.json").stat().st_mtime_ns for c in CLASSES}
    (out / "classes" / "n03.json").unlink()
    calls = []
    real = per_class.layer_ids
    monkeypatch.setattr(
        per_class, "layer_ids", lambda *a, **k: calls.append(k["label"]) or real(*a, **k)
    )
    again = cli.run(args(folder, out, weights, "--resume"))
    assert calls == ["n03"]
    assert again["id_mean"] == summary["id_mean"]
    for c in ("n01", "n02"):
        assert (out / "classes" / f"{c}.json").stat().st_mtime_ns == before[c]

    # other settings in the same folder are refused
    with pytest.raises(ValueError, match=r"other settings: n_resamples \(3 -> 4\)"):
        cli.run(args(folder, out, weights, "--n-resamples", "4", "--resume"))
    # without --resume a finished run is not silently continued
    with pytest.raises(FileExistsError, match="--resume to continue"):
        cli.run(args(folder, out, weights))


@pytest.mark.slow
def test_an_interrupted_run_keeps_finished_classes(folder, weights, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = per_class.layer_ids

    def fail_on_second(*a, **k):
        if k["label"] == "n02":
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(per_class, "layer_ids", fail_on_second)
    with pytest.raises(KeyboardInterrupt):
        cli.run(args(folder, out, weights, "--no-figure"))
    assert sorted(p.name for p in (out / "classes").iterdir()) == ["n01.json"]  # no temp file
    assert not (out / "profile.json").exists()
    monkeypatch.setattr(per_class, "layer_ids", real)
    summary = cli.run(args(folder, out, weights, "--no-figure", "--max-classes", "2", "--resume"))
    assert list(summary["classes"]) == ["n01", "n02"]


def test_torchvision_name_and_clear_errors(folder, tmp_path, capsys):
    model = build("resnet18", num_classes=3)
    assert isinstance(model, nn.Module) and not model.training
    with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
        build("resnet_18")
    with pytest.raises(ValueError, match="cannot import"):
        build("no_such_module:make")
    bad = tmp_path / "bad.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="do not fit the model"):
        build("test_profile_cli:tiny_net", bad)
    assert cli.main(["test_profile_cli:tiny_net", str(folder), "--out", str(tmp_path / "o"),
                     "--n-per-class", "0"]) == 2  # fmt: skip
    assert "--n-per-class: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["test_profile_cli:tiny_net", str(folder), "--out", str(tmp_path / "o"),
                     "--classes", "n09"]) == 2  # fmt: skip
    assert "not folders" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m(folder, weights, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "interp_lib.profile", *args(folder, out, weights, "--no-figure")]
    env = {"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "input" in done.stdout and (out / "profile.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["twonn", "mle", "pca"])
def test_numbers_are_those_of_the_command_before_the_merge(folder, weights, tmp_path, estimator):
    # data/per_class_golden.json: the command's profile.json before it called
    # studies.class_profiles (see tests/test_studies_per_class.py)
    golden = json.loads((Path(__file__).parent / "data" / "per_class_golden.json").read_text())
    # the golden was written at one torch thread: float sums at other counts may round
    # differently in the last bit, so the comparison pins the count the golden used
    extra = ("--estimator", estimator, "--no-figure", "--seed", "4", "--threads", "1")
    before = torch.get_num_threads()
    try:
        summary = cli.run(args(folder, tmp_path / "run", weights, *extra))
    finally:
        torch.set_num_threads(before)
    summary.pop("config")
    # made on another CPU: floats within GOLDEN_RTOL (see tests/test_studies_per_class.py)
    assert same_numbers(golden[f"cli_{estimator}"], summary, GOLDEN_RTOL)


PROFILE_USER_ERRORS = [
    (["--n-resamples", "-1"], "--n-resamples: expected an integer >= 0"),
    (["--subsample", "2"], "--subsample must lie in"),
    (["--model-kwargs", "[1]"], "--model-kwargs must be a JSON object"),
    (["--resume", "--overwrite"], "pick one"),
    (["--device", "tpu9"], "not a device name"),
    (["--threads", "0"], "--threads"),
    (["--layers"], "--layers"),
]


@pytest.mark.parametrize(("extra", "message"), PROFILE_USER_ERRORS)
def test_user_errors_are_one_line_and_exit_2(folder, weights, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert cli.main(args(folder, out, weights, "--no-figure", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (out / "run.json").exists()


def test_bad_inputs_leave_no_settings_behind(folder, weights, tmp_path, capsys):
    out = tmp_path / "run"
    bad = tmp_path / "bad.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    argv = args(folder, out, weights, "--no-figure")
    argv[argv.index(str(weights))] = str(bad)
    assert cli.main(argv) == 2 and "do not fit the model" in capsys.readouterr().err
    assert cli.main(args(tmp_path / "no_such_folder", out, weights, "--no-figure")) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (out / "run.json").exists() and not (out / "config.json").exists()
    (tmp_path / "file").write_text("")
    assert cli.main(args(folder, tmp_path / "file", weights)) == 2
    assert "is a file" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli.main(args(folder, out, weights, "--device", "cuda")) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_overwrite_starts_over_and_old_outputs_are_not_reused(folder, weights, tmp_path):
    out = tmp_path / "run"
    (out / "classes").mkdir(parents=True)
    (out / "classes" / "n01.json").write_text("{}")  # a profile of unknown settings
    with pytest.raises(FileExistsError, match="--overwrite"):
        cli.run(args(folder, out, weights, "--no-figure", "--max-classes", "1"))
    summary = cli.run(args(folder, out, weights, "--no-figure", "--max-classes", "1",
                           "--overwrite", "--n-resamples", "0"))  # fmt: skip
    assert list(summary["classes"]) == ["n01"]
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["n_resamples"] == 0 and meta["settings"]["seed"] == 0
