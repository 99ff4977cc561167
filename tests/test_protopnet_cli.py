"""``python -m interp_lib.protopnet`` end to end on a fake CUB folder with random weights."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from _fake_cub import make_fake_cub
from _helpers import require_module

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
steps_per_epoch = 3

[fit]
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
        "run.json",
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
    sheets = sorted(p.name for p in (out / "explanations").glob("*.png"))
    rows = json.loads((out / "explanations" / "explanations.json").read_text())
    assert [r["label"] for r in rows] == [0, 2]  # first and last test image
    # per image: "this looks like that" (test image, patches, sources) and the points
    assert sheets == [f"test_{r['index']:05d}{s}.png" for r in rows for s in ("", "_points")]
    assert [r["label_name"] for r in rows] == ["Bird 0", "Bird 2"]  # the data set's names
    assert all(len(r["source_images"]) == 2 for r in rows)


def test_explain_draws_the_test_image_the_source_patches_and_class_names(monkeypatch):
    """The figure ``explain`` writes: image panels (test image, source patch, source
    image) and the data set's class names, not bars only and not "class 1"."""
    matplotlib = require_module("matplotlib")
    matplotlib.use("Agg")
    from interp_lib.protopnet import ProtoPNet, explain
    from interp_lib.protopnet.cli import _class_names, _provenance
    from interp_lib.viz.protopnet import plot_explanation

    class Names:
        class_names = ("001.Black_footed_Albatross", "002.Laysan_Albatross")

    names = _class_names(Names())
    assert names == ["Black footed Albatross", "Laysan Albatross"]
    torch.manual_seed(0)
    model = ProtoPNet("small_cnn", n_classes=2, n_prototypes_per_class=1, prototype_dim=4,
                      image_size=16, backbone_kwargs={"widths": [4, 4]}).eval()  # fmt: skip
    images = torch.rand(6, 3, 16, 16)
    push_set = torch.utils.data.TensorDataset(images, torch.tensor([0, 1] * 3))
    loader = torch.utils.data.DataLoader(push_set, batch_size=4)
    where = _provenance(model, loader, "cpu")
    assert where.sample_index.shape == (2,) and where.box.shape == (2, 4)
    (e,) = explain(model, images[:1], top_k=2)
    fig = plot_explanation(images[0], e, where, push_set, max_rows=2, class_names=names)
    shown = sum(len(ax.get_images()) for ax in fig.axes)
    assert shown >= 6  # per row: test image (+ heat map), source patch, source image
    text = " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
    assert "Albatross" in text and "class 1" not in text and "class 0" not in text


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
    far = _edit(config, tmp_path, "steps_per_epoch = 3", "steps_per_epoch = 40")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "interp_lib.protopnet", "train", str(far), "--out", str(out), "--device", "cpu"]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (out / "model.pt").is_file() and (out / "history.json").is_file()
    # the budget warning: once for the job (rank 0), in config keys, per process
    assert run.stderr.count("steps_per_epoch = 40") == 1, run.stderr[-3000:]
    assert "batches per epoch per process" in run.stderr and "UserWarning" not in run.stderr


def _schedule(**changes):
    from interp_lib.protopnet import Schedule

    return Schedule(**{"epochs": 20, "warmup_epochs": 2, "push_start": 10, "push_every": 10,
                       "steps_per_epoch": 30, **changes})  # fmt: skip


def test_the_budget_message_names_config_keys_toml_can_write():
    from interp_lib.protopnet.cli import budget_message

    assert budget_message(_schedule(), 30) is None
    assert budget_message(_schedule(), 16) is None  # within a factor 2
    assert budget_message(_schedule(steps_per_epoch=None), 3) is None  # the check is off
    text = budget_message(_schedule(), 3)
    assert text.startswith("warning: [schedule] steps_per_epoch = 30")
    # the scaled epoch counts (x10) and the key that keeps the epochs, as TOML lines
    assert "epochs = 200, warmup_epochs = 20, push_start = 100, push_every = 100" in text
    assert "write steps_per_epoch = 3." in text and "10x fewer" in text
    assert "scaled(" not in text and "None" not in text and "Schedule(" not in text
    # every suggestion is a valid config: the scaled one no longer warns
    from interp_lib.protopnet.cli import schema

    lines = re.search(r"write in \[schedule\]: (.+?);", text).group(1).split(", ")
    table = {k: int(v) for k, v in (line.split(" = ") for line in lines)}
    from interp_lib import cli

    checked = cli.check_table("schedule", table, schema()["schedule"])
    assert budget_message(_schedule(**checked), 3) is None


@pytest.mark.slow
def test_train_says_the_budget_in_config_keys_not_python(config, tmp_path, capsys):
    far = _edit(config, tmp_path, "steps_per_epoch = 3", "steps_per_epoch = 40")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", str(far), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: [schedule] steps_per_epoch = 40") == 1, err
    assert not [w for w in caught if "epoch counts were chosen" in str(w.message)]


def test_under_torchrun_only_rank_0_shows_warnings(monkeypatch):
    from interp_lib.protopnet.cli import _warn_once_per_job

    for rank, shown in (("0", 1), ("1", 0)):
        monkeypatch.setenv("RANK", rank)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _warn_once_per_job()
            warnings.warn("a warning every rank would print", UserWarning, stacklevel=1)
        assert len(caught) == shown, rank


def test_help_describes_the_config_and_says_each_default_once(capsys):
    from interp_lib.protopnet.cli import parser

    text = parser().format_help()
    for table in (
        "[data]",
        "[model]",
        "[schedule]",
        "[fit]",
        "[loss_weights]",
        "[prune]",
        "[retrain]",
        "steps_per_epoch",
        "backbone_weights",
        "protopnet_paper_scale",
    ):
        assert table in text, table
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 8)" in text  # --n-images


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nroot = '/x'\nsize = 3\n")
    with pytest.raises(ValueError, match=r"unknown key data\.size"):
        load_config(bad)
    bad.write_text("[dataa]\n")
    with pytest.raises(ValueError, match="unknown table \\[dataa\\] \\(did you mean \\[data\\]"):
        load_config(bad)
    bad.write_text("[data]\nkind = 'cub'\n")
    with pytest.raises(ValueError, match=r"data\.root is required"):
        load_config(bad)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")
    bad.write_text("not toml [")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)


# ---------------------------------------------------------------- the app layer's promises
def _edit(config: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = config.read_text()
    assert old in text, old
    path = tmp_path / "edited.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def _fake_run(config: Path, out: Path, seed: int = 0) -> None:
    """A run folder as ``train`` leaves it (its run.json), without training."""
    from interp_lib import cli
    from interp_lib.protopnet.cli import _settings

    cli.RunFolder(out).record(_settings(load_config(config), seed))


def _no_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")


#: (id, edit of the config (old, new) or a setup, command line after the config and --out,
#: what the message says). Every one is a user error: one line, exit status 2.
USER_ERRORS = [
    ("missing config", "missing", ["train"], "does not exist"),
    ("toml syntax", ("[data]", "[data"), ["train"], "not valid TOML"),
    ("non-utf8 config", "latin1", ["train"], "not UTF-8"),
    ("unknown table", ("[prune]", "[prunning]"), ["train"], "unknown table \\[prunning\\]"),
    ("unknown key", ("image_size = 32", "image_size = 32\nsize = 3"), ["train"],
     "unknown key data.size"),
    ("no data root", ('root = "', 'rooot = "'), ["train"], "unknown key data.rooot"),
    ("missing data root", ('root = "', 'root = "/no/such/folder/'), ["train"],
     "does not exist"),
    ("epochs as string", ("epochs = 2", 'epochs = "2"'), ["train"],
     "schedule.epochs must be an integer >= 1, got '2'"),
    ("epochs negative", ("epochs = 2", "epochs = -1"), ["train"], "schedule.epochs"),
    ("epochs float", ("epochs = 2", "epochs = 2.5"), ["train"], "schedule.epochs"),
    ("batch_size 0", ("batch_size = 4", "batch_size = 0"), ["train"], "data.batch_size"),
    ("bool for number", ("[schedule]", "[schedule]\njoint_lr_features = true"), ["train"],
     "schedule.joint_lr_features must be a number"),
    ("bad choice", ('kind = "cub"', 'kind = "zip"'), ["train"], "data.kind must be one of"),
    ("bad amp", ("[fit]", '[fit]\namp = "fp8"'), ["train"], "fit.amp must be one of"),
    ("library range", ("[schedule]", "[schedule]\nlr_gamma = -1.0"), ["train"],
     "config \\[schedule\\]: lr_gamma"),
    ("checkpoint escapes --out", ("[fit]", '[fit]\ncheckpoint = "../x.pt"'), ["train"],
     "fit.checkpoint is set on the command line"),
    ("resume in config", ("[fit]", "[fit]\nresume = false\noverwrite = true"), ["train"],
     "fit.resume is set on the command line"),
    ("seed in config", ("[fit]", "[fit]\nseed = 0"), ["train"], "fit.seed"),
    ("push before train", None, ["push"], "holds no run"),
    ("explain before train", None, ["explain"], "holds no run"),
    ("--out is a file", "out-file", ["train"], "is a file"),
    ("train again without --resume", "done", ["train"], "--resume to continue"),
    ("other settings", "other-seed", ["train", "--resume"], "other settings: seed \\(1 -> 0\\)"),
    ("checkpoint without run.json", "orphan", ["train", "--resume"], "without run.json"),
    ("--resume with --overwrite", None, ["train", "--resume", "--overwrite"], "pick one"),
    ("--resume on push", None, ["push", "--resume"], "options of train"),
    ("--device cuda without CUDA", "no-cuda", ["train", "--device", "cuda"],
     "CUDA is not available"),
    ("--device unknown", None, ["train", "--device", "gpu"], "not a device name"),
    ("--top-k 0", None, ["explain", "--top-k", "0"], "--top-k: expected an integer >= 1"),
    ("--n-images -1", None, ["explain", "--n-images", "-1"], "--n-images"),
    ("--threads 0", None, ["train", "--threads", "0"], "--threads"),
    ("--seed -1", None, ["train", "--seed", "-1"], "--seed"),
    ("unknown command", None, ["fit"], "invalid choice: 'fit'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "argv", "message"),
    [case[1:] for case in USER_ERRORS],
    ids=[case[0] for case in USER_ERRORS],
)
def test_every_user_error_is_one_line_and_exit_2(config, tmp_path, capsys, edit, argv, message):
    path, out = config, tmp_path / "run"
    if isinstance(edit, tuple):
        path = _edit(config, tmp_path, *edit)
    elif edit == "missing":
        path = tmp_path / "missing.toml"
    elif edit == "latin1":
        path = tmp_path / "latin1.toml"
        path.write_bytes(
            config.read_text().replace("[model]", "# caf\xe9\n[model]").encode("latin-1")
        )
    elif edit == "out-file":
        out.write_text("")
    elif edit == "done":
        _fake_run(config, out)
    elif edit == "other-seed":
        _fake_run(config, out, seed=1)
    elif edit == "orphan":
        out.mkdir()
        (out / "checkpoint.pt").write_bytes(b"a run of the old command line")
    elif edit == "no-cuda":
        _no_cuda()
    command, *flags = argv
    assert main([command, str(path), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not re.search(r"\w=(True|False|None)\b", err), f"speaks Python, not flags: {err}"
    assert edit in ("done", "other-seed") or not (out / "run.json").exists()


def test_debug_shows_the_traceback(config, tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["push", str(config), "--out", str(tmp_path), "--debug"])


def test_no_output_escapes_out_and_a_failed_start_leaves_no_settings(config, tmp_path, capsys):
    escape = _edit(config, tmp_path, "[fit]", '[fit]\ncheckpoint = "../x.pt"')
    out = tmp_path / "a" / "run"
    assert main(["train", str(escape), "--out", str(out)]) == 2
    assert not (tmp_path / "a" / "x.pt").exists() and not list(tmp_path.rglob("*.pt"))
    missing = _edit(config, tmp_path, 'root = "', 'root = "/no/such/folder/')
    assert main(["train", str(missing), "--out", str(out)]) == 2
    assert not (out / "run.json").exists() and not (out / "config.json").exists()
    assert list(out.iterdir()) == []


def test_the_config_cannot_override_resume_or_overwrite(config, tmp_path):
    out = tmp_path / "run"
    _fake_run(config, out)
    (out / "checkpoint.pt").write_bytes(b"a finished run")
    sneaky = _edit(config, tmp_path, "[fit]", "[fit]\nresume = false\noverwrite = true")
    assert main(["train", str(sneaky), "--out", str(out), "--resume"]) == 2
    assert (out / "checkpoint.pt").read_bytes() == b"a finished run"


def test_a_rerun_with_other_settings_is_refused_naming_them(config, tmp_path, capsys):
    out = tmp_path / "run"
    _fake_run(config, out)
    other = _edit(config, tmp_path, "epochs = 2", "epochs = 3")
    other.write_text(other.read_text().replace("prototype_dim = 8", "prototype_dim = 4"))
    for command in (["train", "--resume"], ["push"], ["prune"]):
        assert main([command[0], str(other), "--out", str(out), *command[1:]]) == 2
        err = capsys.readouterr().err
        assert "model.prototype_dim (8 -> 4)" in err and "schedule.epochs (2 -> 3)" in err
    # what changes no result is not compared; --overwrite starts over
    quiet = _edit(config, tmp_path, "[fit]", "[fit]\nprogress = true\n[x]")
    quiet.write_text(quiet.read_text().replace("progress = false\n", "").replace("[x]\n", ""))
    from interp_lib import cli
    from interp_lib.protopnet.cli import _settings

    assert cli.RunFolder(out).differences(_settings(load_config(quiet), 0)) == []


@pytest.mark.slow
def test_two_identical_seeded_runs_are_bit_identical(config, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        assert (
            main(["train", str(config), "--out", str(out), "--device", "cpu", "--seed", "3"]) == 0
        )
    a, b = (load_checkpoint(out / "model.pt").state_dict() for out in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def rows(out):  # the wall time of each step differs, the rest must not
        return [{k: v for k, v in r.items() if k != "seconds"}
                for r in json.loads((out / "history.json").read_text())]  # fmt: skip

    assert rows(runs[0]) == rows(runs[1])
    assert (runs[0] / "metrics.json").read_text() == (runs[1] / "metrics.json").read_text()


def test_entry_points_are_installed():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["interp-lib-protopnet"] == "interp_lib._launch:protopnet"
    assert scripts["interp-lib-profile"] == "interp_lib._launch:profile"
    for name in scripts:
        if name.startswith("interp-lib-"):
            assert shutil.which(name, path=str(Path(sys.executable).parent)), (
                f"{name} is not installed beside {sys.executable}: pip install -e ."
            )


@pytest.mark.parametrize("user", [None, "ACTIVE"])
def test_the_command_lines_set_a_passive_openmp_wait_before_torch_starts(tmp_path, user):
    """The launcher sets ``OMP_WAIT_POLICY=PASSIVE`` (read once, when torch starts OpenMP)
    before the command's module is imported, and keeps a value the user has set."""
    (tmp_path / "probe.py").write_text(
        "import os, sys\n"
        "def main():\n"
        "    print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env |= {"OMP_WAIT_POLICY": user} if user else {}
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from interp_lib import _launch; _launch._run('probe:main')"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert run.stdout.split() == [user or "PASSIVE", "False"]


_TORCH_PROBE = """
import os, sys


class _Probe:  # reports OMP_WAIT_POLICY at the moment torch is first imported
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.stderr.write(f"policy at torch import: {os.environ.get('OMP_WAIT_POLICY')}\\n")
            sys.meta_path.remove(self)
        return None


sys.meta_path.insert(0, _Probe())
"""


@pytest.mark.parametrize(
    ("command", "user", "expected"),
    [
        (["-m", "interp_lib.profile", "--help"], None, "PASSIVE"),
        (["-m", "interp_lib.protopnet", "--help"], None, "PASSIVE"),
        (["-m", "interp_lib.profile", "--help"], "ACTIVE", "ACTIVE"),
        (["-c", "import interp_lib.profile"], None, "None"),  # a library import: untouched
    ],
)
def test_python_dash_m_sets_the_wait_policy_before_torch_starts(tmp_path, command, user, expected):
    """``python -m interp_lib.profile`` (``.protopnet``) imports the packages above the
    command, which import torch, before its ``__main__``: the policy must already be set
    when torch is first imported (seen by an import hook installed at start-up), and a
    plain import of the library must leave the environment alone."""
    (tmp_path / "sitecustomize.py").write_text(_TORCH_PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "PYTHONPATH")}
    env |= {"PYTHONPATH": str(tmp_path)} | ({"OMP_WAIT_POLICY": user} if user else {})
    run = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"policy at torch import: {expected}" in run.stderr.splitlines()


def test_module_run_detection_needs_one_of_the_commands():
    """Only ``python -m <command>`` sets the policy: not another module run with ``-m``,
    nor a script whose own arguments contain ``-m``."""
    from interp_lib import _launch

    cases = [
        (["-m"], ["python", "-X", "importtime", "-m", "interp_lib.profile", "x"], True),
        (["-m"], ["python", "-m", "interp_lib.protopnet"], True),
        (["-m"], ["python", "-m", "pytest", "interp_lib.profile"], False),
        (
            ["script.py", "-m", "interp_lib.profile"],
            ["python", "script.py", "-m", "interp_lib.profile"],
            False,
        ),
        (["-m"], ["python", "-m"], False),
    ]
    for argv, orig, expected in cases:
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "environ", env)
            _launch.set_for_module_run(argv, orig)
            assert ("OMP_WAIT_POLICY" in env) == expected, (argv, orig)


@pytest.mark.slow
def test_the_entry_points_run(tmp_path):
    bin_dir = str(Path(sys.executable).parent)
    for name in ("interp-lib-protopnet", "interp-lib-profile"):
        run = subprocess.run([shutil.which(name, path=bin_dir), "--help"], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert run.returncode == 0 and "--device" in run.stdout and "--out" in run.stdout
    script = shutil.which("interp-lib-protopnet", path=bin_dir)
    run = subprocess.run([script, "train", str(tmp_path / "missing.toml"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith("error: config file") and run.stderr.count("\n") == 1
