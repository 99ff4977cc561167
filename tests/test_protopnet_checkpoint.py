"""Safe atomic checkpoints and bit-exact resume of fit()."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from _protopnet_toy import Jitter, loaders, no_push, one_thread, squares, tiny_model, with_push
from torch.utils.data import DataLoader

from interp_lib.protopnet.checkpoint import (
    CorruptCheckpointError,
    load_checkpoint,
    read_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from interp_lib.protopnet.stages import Stage
from interp_lib.protopnet.train import fit

_ = one_thread  # autouse fixture: one torch thread for tiny models


def test_roundtrip_rebuilds_the_same_model(tmp_path):
    model = tiny_model(seed=3).eval()
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, epoch=7, note="hi")
    assert os.listdir(tmp_path / "sub") == ["m.pt"]  # no temporary file left behind
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    x, _ = squares(4)[:]
    assert torch.equal(loaded(x), model(x))
    payload = read_checkpoint(path)
    assert payload["epoch"] == 7 and payload["note"] == "hi"
    # overwriting replaces the file atomically
    with torch.no_grad():
        model.prototypes.zero_()
    save_checkpoint(path, model)
    assert torch.equal(load_checkpoint(path).prototypes, torch.zeros_like(model.prototypes))
    assert os.listdir(tmp_path / "sub") == ["m.pt"]


def test_custom_backbone_needs_the_module(tmp_path):
    from interp_lib.networks import small_cnn
    from interp_lib.protopnet import ProtoPNet

    trunk = small_cnn(widths=(4,), batch_norm=False)
    model = ProtoPNet(trunk, n_classes=2, n_prototypes_per_class=1, prototype_dim=4)
    path = save_checkpoint(tmp_path / "c.pt", model)
    with pytest.raises(ValueError, match="custom backbone"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, backbone=small_cnn(widths=(4,), batch_norm=False))
    assert torch.equal(loaded.features[0].weight, trunk[0].weight)


def test_unsafe_training_state_is_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match="safe checkpoint"):
        save_checkpoint(tmp_path / "x.pt", tiny_model(), stage=Stage.JOINT)
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", tiny_model(), config={})
    assert not (tmp_path / "x.pt").exists()


class _Payload:
    """Unpickling this runs ``exec``: it creates the file named by ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_malicious_checkpoint_is_refused_without_running_its_payload(tmp_path, how):
    marker = tmp_path / "pwned"
    model = tiny_model()
    evil = {"config": model.config, "state_dict": model.state_dict(), "x": _Payload(str(marker))}
    path = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save(evil, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(evil, f, protocol=2)
    with pytest.raises(ValueError, match="not a safe interp_lib checkpoint"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="Nothing in it was executed"):
        fit(tiny_model(), loaders()[0], schedule=no_push(1), checkpoint=path, resume=True,
            progress=False)  # fmt: skip
    assert not marker.exists()
    # the payload is live: an unsafe load runs it
    if how == "torch.save":
        torch.load(path, weights_only=False)
    else:
        with open(path, "rb") as f:
            pickle.load(f)
    assert marker.exists()


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(ValueError, match="'config' and 'state_dict'"):
        load_checkpoint(tmp_path / "w.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


class _Kill(Exception):
    pass


class _DiesAfter(Jitter):
    """Raises on its ``n``-th item: a process killed in the middle of an epoch."""

    def __init__(self, base, n: int) -> None:
        super().__init__(base)
        self.left = n

    def __getitem__(self, i):
        self.left -= 1
        if self.left < 0:
            raise _Kill
        return super().__getitem__(i)


def _run(tmp_path, name, *, kill_at=None, die_after=None, resume=False, model_seed=0,
         push=False, solver="convex"):  # fmt: skip
    # augmentation noise from torch's global RNG + a shuffling loader: resuming must
    # restore the RNG states exactly to repeat the run
    data = Jitter(squares(48)) if die_after is None else _DiesAfter(squares(48), die_after)
    train = DataLoader(data, batch_size=16, shuffle=True)
    val = DataLoader(squares(16, seed=1), batch_size=16)

    def callback(rec):
        if kill_at is not None and rec.step == kill_at:
            raise _Kill

    model = tiny_model(seed=model_seed)
    if push:  # warmup 0, joint 1, push 1, last 1 x2, joint 2, push 2, last 2 x2
        schedule = with_push(epochs=3, lr_step_size=1, last_layer_solver=solver)
        push_ld = DataLoader(squares(48))
    else:
        schedule, push_ld = no_push(epochs=4, lr_step_size=2, select="any"), None
    h = fit(model, train, val_loader=val, push_loader=push_ld, schedule=schedule,
            checkpoint=tmp_path / name, resume=resume, callback=callback,
            restore_best=False, progress=False, seed=123)  # fmt: skip
    return model, h


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
@pytest.mark.parametrize(("kill_at", "push"), [(0, False), (2, False), (3, True), (6, True)])
def test_resume_after_kill_ends_with_the_same_weights(tmp_path, kill_at, push):
    ref, ref_h = _run(tmp_path, "ref.pt", push=push)
    with pytest.raises(_Kill):
        _run(tmp_path, "run.pt", kill_at=kill_at, push=push)
    assert read_checkpoint(tmp_path / "run.pt")["next_step"] == kill_at + 1
    # a fresh process would build a fresh model: another init, overwritten by the resume
    resumed, h = _run(tmp_path, "run.pt", resume=True, model_seed=99, push=push)
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [r.train for r in h] == [r.train for r in ref_h]
    assert [r.val for r in h] == [r.val for r in ref_h]
    assert h.best_step == ref_h.best_step


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
def test_resume_after_a_kill_inside_an_epoch(tmp_path):
    ref, _ = _run(tmp_path, "ref.pt", push=True, solver="adam")
    # 48 images a pass: warm-up, joint 1, (push), 2 last-layer passes, then dies 20 images
    # into joint epoch 2, with 5 steps checkpointed
    with pytest.raises(_Kill):
        _run(tmp_path, "run.pt", die_after=48 * 4 + 20, push=True, solver="adam")
    assert read_checkpoint(tmp_path / "run.pt")["next_step"] == 5
    resumed, _ = _run(tmp_path, "run.pt", resume=True, model_seed=7, push=True, solver="adam")
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(seed=1), epoch=1)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny_model(seed=2), epoch=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.pt"]  # the temporary file was removed
    assert read_checkpoint(path)["epoch"] == 1
    assert torch.equal(load_checkpoint(path).prototypes, tiny_model(seed=1).prototypes)


def test_resume_refuses_another_schedule_or_model(tmp_path):
    train = loaders()[0]
    fit(tiny_model(), train, schedule=no_push(1), checkpoint=tmp_path / "c.pt", progress=False)
    with pytest.raises(ValueError, match="another schedule"):
        fit(tiny_model(), train, schedule=no_push(2), checkpoint=tmp_path / "c.pt",
            resume=True, progress=False)  # fmt: skip
    from interp_lib.protopnet import ProtoPNet

    other = ProtoPNet("small_cnn", n_classes=4, n_prototypes_per_class=1, prototype_dim=8,
                      image_size=16, backbone_kwargs={"widths": (8, 8), "batch_norm": False})  # fmt: skip
    with pytest.raises(ValueError, match="config"):
        fit(other, train, schedule=no_push(1), checkpoint=tmp_path / "c.pt", resume=True,
            progress=False)  # fmt: skip


# ------------------------------------------------------------------ integrity
def _flip_bit(path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def _tensor_offset(path) -> int:
    """Offset of the first bytes of the (inner) prototypes tensor in the file."""
    model_bytes = tiny_model(seed=3).prototypes.detach().numpy().tobytes()[:32]
    return path.read_bytes().index(model_bytes) + 8


def test_a_flipped_bit_in_a_tensor_is_detected(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(seed=3))
    _flip_bit(path, _tensor_offset(path), bit=6)  # silently a weight of ~1e36 before
    with pytest.raises(CorruptCheckpointError, match=r"m\.pt.*SHA-256"):
        load_checkpoint(path)
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint(path)


@pytest.mark.parametrize("damage", ["header", "truncate", "zeros", "junk_tail"])
def test_damaged_files_give_one_clear_error(tmp_path, damage):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(seed=3))
    data = bytearray(path.read_bytes())
    if damage == "header":  # raised a raw UnicodeDecodeError before
        data[:64] = b"\xff" * 64
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "zeros":
        data[len(data) // 3 : len(data) // 3 + 100] = bytes(100)
    else:
        data += b"trailing junk"
    path.write_bytes(bytes(data))
    if damage == "junk_tail":  # bytes after the zip's end are not part of the contents
        load_checkpoint(path)
        return
    with pytest.raises(CorruptCheckpointError, match=r"m\.pt"):
        load_checkpoint(path)


def test_config_is_validated_before_the_model_is_allocated(tmp_path):
    fake = torch.nn.Linear(2, 2)  # a tiny module whose config asks for a huge ProtoPNet
    base = tiny_model().config
    fake.config = {**base, "prototype_dim": 10**6, "n_prototypes_per_class": 10**5}
    path = save_checkpoint(tmp_path / "huge.pt", fake)
    assert path.stat().st_size < 10_000
    with pytest.raises(CorruptCheckpointError, match="does not match"):
        load_checkpoint(path)  # no 10^12-float allocation: shapes compared on meta
    fake.config = {**base, "prototype_dim": "eight"}
    save_checkpoint(path, fake)
    with pytest.raises(CorruptCheckpointError, match="config"):
        load_checkpoint(path)
    fake.config = {**base, "n_classes": 10**12}
    save_checkpoint(path, fake)
    with pytest.raises(CorruptCheckpointError, match="out of bounds"):
        load_checkpoint(path)


def test_unsigned_files_are_refused_unless_trusted(tmp_path):
    model = tiny_model(seed=3)
    torch.save({"config": model.config, "state_dict": model.state_dict()}, tmp_path / "old.pt")
    with pytest.raises(CorruptCheckpointError, match="no checksum"):
        load_checkpoint(tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt", verify=False)
    assert torch.equal(loaded.prototypes, model.prototypes)


@pytest.mark.filterwarnings("ignore:the schedule's epoch counts")
def test_resume_never_continues_from_a_damaged_checkpoint(tmp_path):
    train = loaders()[0]
    path = tmp_path / "c.pt"
    fit(tiny_model(), train, schedule=no_push(2), checkpoint=path, progress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=r"c\.pt"):
        fit(tiny_model(), train, schedule=no_push(2), checkpoint=path, resume=True,
            progress=False)  # fmt: skip


@pytest.mark.filterwarnings("ignore:the schedule's epoch counts")
def test_a_fresh_run_does_not_overwrite_a_checkpoint(tmp_path):
    train = loaders()[0]
    path = save_checkpoint(tmp_path / "c.pt", tiny_model(seed=5), note="keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fit(tiny_model(), train, schedule=no_push(1), checkpoint=path, progress=False)
    assert read_checkpoint(path)["note"] == "keep me"
    fit(tiny_model(), train, schedule=no_push(1), checkpoint=path, overwrite=True,
        progress=False)  # fmt: skip
    assert "note" not in read_checkpoint(path)


def test_stale_temporary_files_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".m.pt.{dead}.abc123.tmp"
    live = tmp_path / f".m.pt.{os.getppid()}.def456.tmp"  # a live process may be saving
    other = tmp_path / f".n.pt.{dead}.x.tmp"  # another checkpoint's: not ours to remove
    for f in (stale, live, other):
        f.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "m.pt", tiny_model())
    assert sorted(os.listdir(tmp_path)) == sorted(["m.pt", live.name, other.name])
    assert remove_stale_temporaries(tmp_path / "n.pt") == [other]


# ------------------------------------------------------------- crafted checkpoints
def _craft(path, payload) -> None:
    """Write ``payload`` as a correctly checksummed checkpoint (what an attacker can do)."""
    import hashlib
    import io

    buf = io.BytesIO()
    torch.save(payload, buf)
    data = bytearray(buf.getvalue())
    envelope = {
        "format": "interp_lib.protopnet.checkpoint/2",
        "sha256": hashlib.sha256(data).hexdigest(),
        "payload": torch.frombuffer(data, dtype=torch.uint8),
    }
    torch.save(envelope, path)


def _expanded(state):
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in state.items()}


def test_expanded_zero_stride_tensors_are_refused(tmp_path):
    model = tiny_model()
    path = tmp_path / "x.pt"
    _craft(path, {"config": model.config, "state_dict": _expanded(model.state_dict())})
    with pytest.raises(CorruptCheckpointError, match=r"x\.pt.*stride 0"):
        load_checkpoint(path)
    # at the config's allowed maximum: before, a 4 TB allocation failed in the allocator
    huge = {**model.config, "prototype_dim": 10**6, "n_prototypes_per_class": 10**5}
    with torch.device("meta"):
        from interp_lib.protopnet import ProtoPNet

        skeleton = ProtoPNet.from_config(huge)
    _craft(path, {"config": huge, "state_dict": _expanded(skeleton.state_dict())})
    assert path.stat().st_size < 20_000
    with pytest.raises(CorruptCheckpointError, match="stride 0"):
        load_checkpoint(path)


def test_overlapping_strides_are_refused(tmp_path):
    model = tiny_model()
    state = model.state_dict()
    p = state["prototypes"]  # (8, 8, 1, 1)
    state["prototypes"] = torch.zeros(15).as_strided(p.shape, (1, 1, 1, 1))
    path = tmp_path / "x.pt"
    _craft(path, {"config": model.config, "state_dict": state})
    with pytest.raises(CorruptCheckpointError, match="repeat elements"):
        read_checkpoint(path)


def test_tensors_sharing_one_storage_count_against_a_budget(tmp_path):
    model = tiny_model()
    big = torch.zeros(1 << 16)  # 256 KiB, stored once, referenced 64 times: 16 MiB loaded
    path = tmp_path / "x.pt"
    _craft(path, {"config": model.config, "state_dict": model.state_dict(), "junk": [big] * 64})
    assert path.stat().st_size < 400_000
    with pytest.raises(CorruptCheckpointError, match="budget"):
        read_checkpoint(path)
    assert len(read_checkpoint(path, max_bytes=1 << 26)["junk"]) == 64  # trusted: allowed
    save_checkpoint(path, model, note=torch.zeros(1 << 16))  # an honest file passes
    read_checkpoint(path)


def test_sparse_tensors_are_refused(tmp_path):
    model = tiny_model()
    state = model.state_dict()
    state["last_layer.weight"] = state["last_layer.weight"].to_sparse()
    path = tmp_path / "x.pt"
    _craft(path, {"config": model.config, "state_dict": state})
    with pytest.raises(CorruptCheckpointError, match="sparse"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "backbone, kwargs, match",
    [
        ("resnet18", {"num_classes": 400000}, "num_classes"),
        ("small_cnn", {"widths": [8, 8], "evil": 1}, "evil"),
        ("small_cnn", {"widths": [8] * 33}, "widths"),
        ("small_cnn", {"widths": [8, 10**6]}, "widths"),
        ("small_cnn", {"batch_norm": "yes"}, "batch_norm"),
        ("small_cnn", {"weights": "/etc/passwd"}, "weights"),
    ],
)
def test_backbone_kwargs_are_restricted_to_what_the_trunk_takes(tmp_path, backbone, kwargs, match):
    model = tiny_model()
    config = {**model.config, "backbone": backbone, "backbone_kwargs": kwargs}
    path = tmp_path / "x.pt"
    _craft(path, {"config": config, "state_dict": model.state_dict()})
    with pytest.raises(CorruptCheckpointError, match=match):
        load_checkpoint(path)


def test_a_config_never_makes_the_loader_open_another_file(tmp_path, monkeypatch):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump(_Payload(str(tmp_path / "pwned")), f)
    model = tiny_model()
    path = tmp_path / "x.pt"
    _craft(path, {"config": {**model.config, "backbone_weights": str(evil)},
                  "state_dict": model.state_dict()})  # fmt: skip
    opened = []
    real_load = torch.load
    monkeypatch.setattr(
        torch, "load", lambda f, *a, **k: (opened.append(str(f)), real_load(f, *a, **k))[1]
    )
    with pytest.raises(CorruptCheckpointError, match="backbone_weights"):
        load_checkpoint(path)
    assert str(evil) not in opened and not (tmp_path / "pwned").exists()


def test_load_checkpoint_gives_the_last_or_the_best_state(tmp_path):
    model = tiny_model(seed=1)
    best = tiny_model(seed=2).state_dict()
    path = save_checkpoint(tmp_path / "c.pt", model, best_state_dict=best)
    assert torch.equal(load_checkpoint(path).prototypes, model.prototypes)
    assert torch.equal(load_checkpoint(path, state="best").prototypes, best["prototypes"])
    save_checkpoint(path, model)
    with pytest.raises(ValueError, match="no best state"):
        load_checkpoint(path, state="best")
    with pytest.raises(ValueError, match="state"):
        load_checkpoint(path, state="first")


# ------------------------------------------------------------- file modes, links
@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    yield
    os.umask(old)


def test_a_new_checkpoint_follows_the_umask(tmp_path, umask_002):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model())
    assert oct(path.stat().st_mode & 0o777) == oct(0o664)  # 0o600 before


def test_overwriting_keeps_the_file_mode(tmp_path, umask_002):
    path = tmp_path / "m.pt"
    path.write_bytes(b"old")
    path.chmod(0o640)
    save_checkpoint(path, tiny_model())
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    load_checkpoint(path)


def test_saving_to_a_symlink_writes_through_it(tmp_path):
    target = tmp_path / "real" / "m.pt"
    target.parent.mkdir()
    link = tmp_path / "latest.pt"
    link.symlink_to(target)
    save_checkpoint(link, tiny_model(seed=4))
    assert link.is_symlink() and target.is_file()
    assert torch.equal(load_checkpoint(target).prototypes, tiny_model(seed=4).prototypes)
    save_checkpoint(link, tiny_model(seed=5))  # the link is kept on overwrite too
    assert link.is_symlink()
    assert torch.equal(load_checkpoint(link).prototypes, tiny_model(seed=5).prototypes)


def test_check_writable_finds_a_read_only_folder_before_any_work(tmp_path):
    from interp_lib._plumbing import check_writable

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores modes
            pytest.skip("running as root")
        with pytest.raises(PermissionError, match=r"ro.*not writable"):
            check_writable(folder / "c.pt", "checkpoint")
    finally:
        folder.chmod(0o755)
    with pytest.raises(IsADirectoryError, match="folder"):
        check_writable(tmp_path, "checkpoint")
    assert check_writable(tmp_path / "new" / "c.pt") == tmp_path / "new" / "c.pt"
    assert not (tmp_path / "new").joinpath("c.pt").exists()
