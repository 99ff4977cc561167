"""Stages, schedule and fit() of ProtoPNet training, on tiny synthetic images."""

from __future__ import annotations

import itertools

import pytest
import torch
from _protopnet_toy import loaders, no_push, one_thread, squares, tiny_model, with_push
from torch.utils.data import DataLoader, TensorDataset

from interp_lib.protopnet import protopnet_loss
from interp_lib.protopnet.stages import (
    Schedule,
    Stage,
    Step,
    parameter_groups,
    set_trainable,
)
from interp_lib.protopnet.train import NonFiniteLossError, fit

_ = one_thread  # autouse fixture: one torch thread for tiny models


# ------------------------------------------------------------------ schedule as data
def test_schedule_defaults_are_the_papers():
    s = Schedule()
    assert (s.warmup_epochs, s.push_start, s.push_every, s.last_layer_passes) == (5, 10, 10, 20)
    assert (s.warmup_lr_add_on, s.warmup_lr_prototypes) == (3e-3, 3e-3)
    assert (s.joint_lr_features, s.joint_lr_add_on, s.joint_lr_prototypes) == (1e-4, 3e-3, 3e-3)
    assert (s.last_layer_lr, s.weight_decay, s.lr_step_size, s.lr_gamma) == (1e-4, 1e-3, 5, 0.1)
    assert s.push_epochs()[:3] == [10, 20, 30]
    assert s.lr_drop_epochs()[:3] == [10, 15, 20]  # 5 warm-up epochs, then every 5
    # the released code's last-layer stage: 20 Adam passes after each push
    steps = Schedule(last_layer_solver="adam").steps()
    assert [st.stage for st in steps[:6]] == [Stage.WARMUP] * 5 + [Stage.JOINT]
    i = steps.index(Step(10, Stage.PUSH))
    assert steps[i - 1] == Step(10, Stage.JOINT)
    assert steps[i + 1 : i + 21] == [Step(10, Stage.LAST_LAYER, k) for k in range(20)]
    assert steps[i + 21] == Step(11, Stage.JOINT)
    # 1000 epochs + 99 pushes (10..990) + the final push after epoch 999, 20 passes each
    assert len(steps) == 1000 + 100 * 21
    # the default solves the last layer once, to convergence, after each push
    assert s.last_layer_solver == "convex"
    default = s.steps()
    i = default.index(Step(10, Stage.PUSH))
    assert default[i + 1 : i + 3] == [Step(10, Stage.LAST_LAYER, 0), Step(11, Stage.JOINT)]
    assert len(default) == 1000 + 100 * 2


def test_schedule_quick_and_validation():
    q = Schedule.quick()
    assert q.epochs == 10 and q.push_epochs() == [5, 9]
    assert Schedule.quick(epochs=4, final_push=False, push_start=9).push_epochs() == []
    with pytest.raises(ValueError, match="select"):
        Schedule(select="test")
    with pytest.raises(ValueError, match="epochs"):
        Schedule(epochs=0)
    with pytest.raises(ValueError, match="last_layer_lr"):
        Schedule(last_layer_lr=-1.0)


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        (Stage.WARMUP, {"add_on", "prototypes"}),
        (Stage.JOINT, {"features", "add_on", "prototypes"}),
        (Stage.LAST_LAYER, {"last_layer"}),
        (Stage.PUSH, set()),
    ],
)
def test_stage_flags_only_intended_parameters_get_gradients(stage, expected):
    model = tiny_model()
    x, y = squares(8)[:]
    set_trainable(model, stage)
    loss, _ = protopnet_loss(model.forward_all(x), y, model)
    if expected:
        loss.backward()
    for name, params in parameter_groups(model).items():
        for p in params:
            got = p.grad is not None and bool(p.grad.abs().sum() > 0)
            assert got == (name in expected), (stage, name)


def test_fit_stages_touch_only_their_parameters():
    model = tiny_model()
    train, _, _ = loaders()
    before = {k: [p.detach().clone() for p in v] for k, v in parameter_groups(model).items()}
    fit(model, train, schedule=no_push(epochs=1), progress=False)  # one warm-up epoch
    after = parameter_groups(model)
    for name in ("features", "last_layer"):
        assert all(torch.equal(a, b) for a, b in zip(before[name], after[name], strict=True))
    for name in ("add_on", "prototypes"):
        assert not all(torch.equal(a, b) for a, b in zip(before[name], after[name], strict=True))
    # requires_grad is restored afterwards
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.slow
# ------------------------------------------------------------------ fit
def test_fit_logs_every_term_learns_and_decays_lr():
    model = tiny_model()
    train, val, _ = loaders(n_train=96)
    s = no_push(epochs=6, lr_step_size=3, select="any")
    h = fit(model, train, val_loader=val, schedule=s, progress=False)
    assert [r.stage for r in h] == [Stage.WARMUP] + [Stage.JOINT] * 5
    for r in h:
        assert {"loss", "ce", "clst", "sep", "avg_sep", "l1", "accuracy"} <= set(r.train)
        assert {"loss", "accuracy"} <= set(r.val)
    assert h[0].lr == {"add_on": 3e-3, "prototypes": 3e-3}
    joint_proto_lrs = [r.lr["prototypes"] for r in h if r.stage is Stage.JOINT]
    assert joint_proto_lrs == pytest.approx([1e-2, 1e-2, 1e-2, 1e-3, 1e-3])
    assert [r.lr["features"] for r in h.records[1:4]] == pytest.approx([1e-2, 1e-2, 1e-2])
    # Schedule.lr_drop_epochs names the epochs from which the rate is lower (for MultiStepLR)
    drops = s.lr_drop_epochs()
    assert drops == [4]
    for r in h:
        if r.stage is Stage.JOINT:
            lower = sum(d <= r.epoch for d in drops)
            assert r.lr["prototypes"] == pytest.approx(1e-2 * 0.1**lower)
    # the loss went down and the model beats chance (0.25) on the validation split
    assert h[-1].train["loss"] < h[0].train["loss"]
    assert h.best_val_accuracy >= 0.75
    # the model is left in the selected (best validation) state
    rows = h.rows()
    assert rows[0]["stage"] == "warmup" and "val_accuracy" in rows[0]
    x, y = val.dataset[:]
    acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(h.best_val_accuracy)
    assert h.best.val["accuracy"] == max(r.val["accuracy"] for r in h)
    assert not model.training


def test_fit_selects_only_pushed_states_by_default():
    model = tiny_model()
    train, val, _ = loaders()
    h = fit(model, train, val_loader=val, schedule=no_push(epochs=2), progress=False)
    assert h.best_step is None  # no push happened: nothing is a candidate


def test_nonfinite_loss_names_epoch_and_batch():
    x, y = squares(48)[:]
    x = x.clone()
    x[40] = float("nan")  # in batch 2 (batch size 16, no shuffling)
    model = tiny_model()
    ld = DataLoader(TensorDataset(x, y), batch_size=16)
    with pytest.raises(NonFiniteLossError, match=r"epoch 0 \(warmup\), batch 2") as err:
        fit(model, ld, schedule=no_push(epochs=1), progress=False)
    assert err.value.batch == 2 and err.value.epoch == 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_and_channels_last_run_on_cpu(amp):
    model = tiny_model()
    train, val, _ = loaders(n_train=32)
    h = fit(model, train, val_loader=val, schedule=no_push(epochs=2), amp=amp,
            channels_last=True, progress=False)  # fmt: skip
    assert all(torch.isfinite(torch.tensor(r.train["loss"])) for r in h)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_arguments_are_refused():
    model = tiny_model()
    train, _, push_ld = loaders()
    s = Schedule.quick(epochs=2, push_start=1, push_every=1)
    with pytest.raises(ValueError, match="push_loader"):
        fit(model, train, schedule=s, progress=False)
    shuffled = DataLoader(push_ld.dataset, batch_size=8, shuffle=True)
    with pytest.raises(ValueError, match="shuffle=False"):
        fit(model, train, push_loader=shuffled, schedule=s, progress=False)
    with pytest.raises(ValueError, match="amp"):
        fit(model, train, schedule=no_push(), amp="fp8", progress=False)
    with pytest.raises(TypeError, match="ProtoPNet"):
        fit(torch.nn.Linear(2, 2), train, schedule=no_push(), progress=False)
    with pytest.raises(ValueError, match="checkpoint"):
        fit(model, train, schedule=no_push(), resume=True, progress=False)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
@pytest.mark.parametrize("batch_norm", [False, True])
def test_push_and_last_layer_stages_in_fit(batch_norm):
    # with BatchNorm in the trunk, the stages that freeze it must not move its running
    # statistics either, or the pushed prototypes stop being training patches
    model = tiny_model(batch_norm=batch_norm)
    train, val, push_ld = loaders()
    snapshots = []

    def callback(rec):
        snapshots.append((rec.stage, {k: v.clone() for k, v in model.state_dict().items()}))

    schedule = with_push(epochs=3, last_layer_solver="adam")
    h = fit(model, train, val_loader=val, push_loader=push_ld, schedule=schedule,
            callback=callback, progress=False)  # fmt: skip
    stages = [(r.epoch, r.stage.value) for r in h]
    assert stages == [(0, "warmup"), (1, "joint"), (1, "push"), (1, "last_layer"),
                      (1, "last_layer"), (2, "joint"), (2, "push"), (2, "last_layer"),
                      (2, "last_layer")]  # fmt: skip
    for r in h:
        if r.stage is Stage.PUSH:
            assert {"push_distance_mean", "push_duplicates"} <= set(r.train) and r.lr == {}
        if r.stage is Stage.LAST_LAYER:
            assert r.lr == {"last_layer": 1e-4}
            # last-layer passes optimise CE + L1 only
            assert r.train["loss"] == pytest.approx(r.train["ce"] + 1e-4 * r.train["l1"])
    # a push moves only the prototypes; a last-layer pass only the last layer
    for (_, prev), (stage, cur) in itertools.pairwise(snapshots):
        changed = {k for k in cur if not torch.equal(cur[k], prev[k])}
        if stage is Stage.PUSH:
            assert changed <= {"prototypes"}
        if stage is Stage.LAST_LAYER:
            assert changed == {"last_layer.weight"}
        if stage is Stage.WARMUP:
            assert not any(k.startswith("features.") for k in changed)
    # the selected state is a pushed one: every prototype is a training patch exactly
    assert h.best.stage in (Stage.PUSH, Stage.LAST_LAYER)
    x, _ = push_ld.dataset[:]
    with torch.no_grad():
        d = model.forward_all(x).min_distances.amin(0)
    assert torch.all(d <= 1e-5)


# ------------------------------------------------------------------ refactor, hardening
def test_learning_rates_are_tied_to_parameter_groups_by_name():
    from interp_lib.protopnet.train import _make_optimizers, learning_rates

    model = tiny_model()
    opts = _make_optimizers(model, Schedule(joint_lr_features=1e-5, joint_lr_add_on=2e-3))
    groups = parameter_groups(model)
    for opt in opts.values():
        for pg in opt.param_groups:  # each named group holds exactly that group's tensors
            assert [id(p) for p in pg["params"]] == [id(p) for p in groups[pg["name"]]]
    joint = opts["joint"]
    joint.param_groups.reverse()  # order no longer matters
    assert learning_rates(joint) == {"features": 1e-5, "add_on": 2e-3, "prototypes": 3e-3}


def test_loss_terms_are_tensors_on_the_device():
    model = tiny_model()
    x, y = squares(8)[:]
    loss, terms = protopnet_loss(model.forward_all(x), y, model)
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in terms.values())
    assert not any(v.requires_grad for v in terms.values())
    assert float(terms["loss"]) == pytest.approx(loss.item())


def test_class_specific_false_follows_the_original_formulas():
    model = tiny_model()
    x, y = squares(8)[:]
    out = model.forward_all(x)
    loss, terms = protopnet_loss(out, y, model, class_specific=False)
    clst = out.min_distances.amin(1).mean()
    l1 = model.last_layer.weight.abs().sum()  # every weight, not only off-class ones
    ce = torch.nn.functional.cross_entropy(out.logits, y)
    assert float(terms["clst"]) == pytest.approx(clst.item())
    assert float(terms["l1"]) == pytest.approx(l1.item())
    assert float(terms["sep"]) == 0.0
    assert loss.item() == pytest.approx((ce + 0.8 * clst + 1e-4 * l1).item(), rel=1e-6)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
@pytest.mark.filterwarnings("ignore:the schedule's epoch counts")
def test_fit_class_specific_false_penalises_every_weight():
    model = tiny_model()
    train, val, push_ld = loaders()
    h = fit(model, train, val_loader=val, push_loader=push_ld, class_specific=False,
            schedule=with_push(epochs=2, last_layer_l2=0.0), restore_best=False,
            progress=False)  # fmt: skip
    assert h[0].train["sep"] == 0.0
    assert h[-1].stage is Stage.LAST_LAYER and h[-1].train["residual"] <= 1e-6
    # L1 over all weights: the reported L1 is the sum of every |w|
    assert h[-1].train["l1"] == pytest.approx(model.last_layer.weight.abs().sum().item(), rel=1e-5)


@pytest.mark.filterwarnings("ignore:the schedule's epoch counts")
def test_empty_loader_and_bad_labels_are_refused():
    model = tiny_model()
    x, y = squares(16)[:]
    empty = DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        fit(model, empty, schedule=no_push(1), progress=False)
    bad = DataLoader(TensorDataset(x, torch.full_like(y, 7)), batch_size=4)
    with pytest.raises(ValueError, match=r"\[0, 4\)|0 to 3|range"):
        fit(model, bad, schedule=no_push(1), progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_schedule_budgets_in_optimizer_steps():
    from interp_lib.protopnet.stages import PAPER_STEPS_PER_EPOCH

    paper = Schedule()
    assert paper.steps_per_epoch == PAPER_STEPS_PER_EPOCH == 2250
    want = paper.optimizer_steps(PAPER_STEPS_PER_EPOCH)
    assert want == {"warmup": 5 * 2250, "joint": 995 * 2250, "last_layer": 0, "pushes": 100}
    small = paper.scaled(45)  # a data set 50x smaller: 50x more epochs, same steps
    assert (small.epochs, small.warmup_epochs, small.push_every) == (50000, 250, 500)
    got = small.optimizer_steps(45)
    assert got["warmup"] == want["warmup"] and got["joint"] == want["joint"]
    assert got["pushes"] == want["pushes"] and small.steps_per_epoch == 45
    adam = Schedule(last_layer_solver="adam", epochs=20).scaled(45)
    assert adam.last_layer_passes == 1000  # 20 passes x 2250 steps = 1000 x 45
    with pytest.raises(ValueError, match="reference"):
        Schedule.quick().scaled(10)


def test_fit_warns_when_the_loader_is_far_from_the_schedules_budget():
    model = tiny_model()
    train, _, _ = loaders()
    with pytest.warns(UserWarning, match="562x fewer steps"):
        fit(model, train, schedule=no_push(1), progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(model, train, schedule=no_push(1, steps_per_epoch=len(train)), progress=False)


@pytest.mark.filterwarnings("ignore:the schedule's epoch counts")
def test_seed_may_be_a_generator():
    train, _, _ = loaders()
    runs = []
    for _ in range(2):
        model = tiny_model()
        fit(model, train, schedule=no_push(2), seed=torch.Generator().manual_seed(5),
            progress=False)  # fmt: skip
        runs.append(model.state_dict())
    for k, v in runs[0].items():
        assert torch.equal(v, runs[1][k]), k


def test_the_epoch_bar_shows_a_current_loss_in_short_epochs(monkeypatch):
    """With 3 batches an epoch (fewer than the bar's refresh stride of 25) the epoch bar's
    loss is refreshed up to the last batch, not read once at batch 0 and shown all epoch
    as ``batch=0`` (issue 27 item 9)."""
    import tqdm.auto
    import tqdm.std

    shown = []  # (bar description, batches yielded so far, postfix keywords)

    class Recording(tqdm.std.tqdm):
        def __iter__(self):
            self.yielded = 0
            for item in super().__iter__():
                self.yielded += 1
                yield item

        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            shown.append((self.desc, getattr(self, "yielded", None), dict(kwargs)))
            super().set_postfix(ordered_dict, refresh, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    train, _, _ = loaders(n_train=48)  # 3 batches of 16
    fit(tiny_model(), train, schedule=no_push(2, steps_per_epoch=len(train)), progress=True)
    epochs = sorted({desc for desc, _, _ in shown if desc.startswith("epoch")})
    assert epochs == ["epoch 0 warmup", "epoch 1 joint"]
    for desc in epochs:
        rows = [(seen, kw) for d, seen, kw in shown if d == desc]
        assert [seen for seen, _ in rows] == [1, 2, 3]  # every batch, the last one included
        assert all(set(kw) == {"loss"} for _, kw in rows)  # no `batch=`: the bar counts
        assert all(float(kw["loss"]) > 0 for _, kw in rows)
