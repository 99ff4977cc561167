"""fit() refuses what would only fail later: an unwritable checkpoint before any training,
non-finite schedule values and loss weights when they are made (issue 21)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from _protopnet_toy import loaders, no_push, one_thread, tiny_model

from interp_lib.protopnet.losses import LossWeights
from interp_lib.protopnet.stages import Schedule
from interp_lib.protopnet.train import fit

_ = one_thread  # autouse fixture: one torch thread for tiny models


def _trained_steps(tmp_path, checkpoint, **kw):
    """Fit with ``checkpoint``; return the exception and the steps that ran before it."""
    model, before = tiny_model(), tiny_model().state_dict()
    steps = []
    with pytest.raises(OSError) as err:
        fit(model, loaders()[0], schedule=no_push(1, steps_per_epoch=None),
            checkpoint=checkpoint, callback=steps.append, progress=False, **kw)  # fmt: skip
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # nothing trained
    return err.value, steps


def test_an_unwritable_checkpoint_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err, steps = _trained_steps(tmp_path, blocker / "run.pt")  # its folder is a file
    assert steps == [] and "checkpoint" in str(err) and "run.pt" in str(err)
    (tmp_path / "dir.pt").mkdir()
    err, steps = _trained_steps(tmp_path, tmp_path / "dir.pt", overwrite=True)  # a folder
    assert isinstance(err, IsADirectoryError) and steps == []
    # a writable path is left as it was: nothing written before the first step
    fit(tiny_model(), loaders()[0], schedule=no_push(1, steps_per_epoch=None),
        checkpoint=tmp_path / "new" / "run.pt", progress=False)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["run.pt"]


FLOAT_FIELDS = [f.name for f in dataclasses.fields(Schedule)
                if f.type in ("float", float)]  # fmt: skip


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_schedule_refuses_non_finite_values_naming_the_field(name, bad):
    with pytest.raises(ValueError, match=rf"{name} must be .*finite.*, got {bad}"):
        Schedule(**{name: bad})


def test_schedule_float_fields_are_the_rates_and_weights():
    assert set(FLOAT_FIELDS) == {
        "warmup_lr_add_on", "warmup_lr_prototypes", "joint_lr_features", "joint_lr_add_on",
        "joint_lr_prototypes", "last_layer_lr", "weight_decay", "lr_gamma", "last_layer_l2",
    }  # fmt: skip
    with pytest.raises(ValueError, match="joint_lr_features must be a finite number >= 0"):
        Schedule(joint_lr_features=-1e-3)
    with pytest.raises(TypeError, match="last_layer_lr must be a real number"):
        Schedule(last_layer_lr="1e-4")
    assert Schedule(lr_gamma=1).lr_gamma == 1  # ints stay as given (checkpoints compare them)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(LossWeights)])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_loss_weights_refuse_non_finite_values_naming_the_field(name, bad):
    with pytest.raises(ValueError, match=rf"LossWeights.{name} must be a finite number"):
        LossWeights(**{name: bad})
    with pytest.raises(ValueError, match=rf"LossWeights.{name}"):
        dataclasses.replace(LossWeights(), **{name: bad})
    with pytest.raises(TypeError, match=rf"LossWeights.{name} must be a real number"):
        LossWeights(**{name: "1"})
    assert LossWeights(**{name: 0.5}).to_dict()[name] == 0.5
