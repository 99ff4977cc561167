"""Warm start of the ProtoPNet trunk (pretrain_backbone) and the documented birds recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from interp_lib.datasets.birds import birds
from interp_lib.models import accuracy
from interp_lib.networks import pooled_classifier, small_cnn
from interp_lib.protopnet import ProtoPNet, Schedule, fit, pretrain_backbone, seed_prototypes

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread


def test_pooled_classifier_shares_the_trunk_and_pools():
    trunk = small_cnn(widths=(4, 8))
    x = torch.randn(2, 3, 16, 16)
    net = pooled_classifier(trunk, 3)
    assert net.features is trunk
    assert net(x).shape == (2, 3)
    torch.testing.assert_close(net(x), net.head(trunk(x).amax((2, 3))))
    avg = pooled_classifier(trunk, 3, pool="avg")
    torch.testing.assert_close(avg(x), avg.head(trunk(x).mean((2, 3))))
    with pytest.raises(ValueError, match="pool"):
        pooled_classifier(trunk, 3, pool="min")
    with pytest.raises(TypeError, match=r"nn\.Module"):
        pooled_classifier("small_cnn", 3)
    with pytest.raises(ValueError, match="n_classes"):
        pooled_classifier(trunk, 1)


@pytest.mark.slow
def test_pretrain_backbone_trains_the_given_trunk_in_place():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()  # class = sign of the red mean: GAP can read it
    trunk = small_cnn(widths=(8,))
    before = [p.detach().clone() for p in trunk.parameters()]
    net, hist = pretrain_backbone(
        trunk, (x, y), n_classes=2, epochs=15, lr=1e-2, batch_size=20,
        val=(x, y), progress=False,
    )  # fmt: skip
    assert net.features is trunk and not trunk.training
    assert net.head.weight.shape == (2, 8)
    assert any(not torch.equal(a, b) for a, b in zip(before, trunk.parameters(), strict=True))
    assert len(hist.test_accuracy) == 15 and hist.test_accuracy[-1] >= 0.9


def test_pretrain_backbone_by_name_is_seeded_and_checks_arguments():
    x, y = torch.rand(8, 3, 8, 8), torch.arange(8) % 2
    a, _ = pretrain_backbone("small_cnn", (x, y), n_classes=2, epochs=1, progress=False,
                          backbone_kwargs={"widths": (4,)}, seed=3)  # fmt: skip
    b, _ = pretrain_backbone("small_cnn", (x, y), n_classes=2, epochs=1, progress=False,
                          backbone_kwargs={"widths": (4,)}, seed=3)  # fmt: skip
    assert a.features.out_channels == 4
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(TypeError, match="backbone"):
        pretrain_backbone(3, (x, y), n_classes=2)
    with pytest.raises(ValueError, match="backbone_kwargs"):
        pretrain_backbone(nn.Conv2d(3, 4, 3), (x, y), n_classes=2, backbone_kwargs={"a": 1})


def test_schedule_cpu_birds():
    s = Schedule.cpu_birds()
    assert (s.epochs, s.warmup_epochs, s.last_layer_passes) == (12, 2, 5)
    assert s.push_epochs() == [4, 8, 11]
    assert s.joint_lr_features == 1e-4  # the paper's: the trunk is warm
    assert Schedule.cpu_birds(6, push_start=9).push_epochs() == [5]


def test_seed_prototypes_picks_the_strongest_evidence_patch_of_each_class():
    # trunk = identity on 2 channels; class c's evidence is channel c (head = identity)
    trunk = nn.Identity()
    trunk.out_channels = 2
    torch.manual_seed(0)
    model = ProtoPNet(trunk, n_classes=2, n_prototypes_per_class=2, prototype_dim=4, image_size=4)
    x = torch.zeros(5, 2, 4, 4)
    y = torch.tensor([0, 1, 0, 1, 0])
    x[0, 0, 1, 2] = 3.0  # class 0: image 0 strongest at (1, 2), then image 4 at (3, 0)
    x[4, 0, 3, 0] = 2.0
    x[2, 0, 0, 0] = 1.0
    x[1, 1, 2, 2] = 5.0  # class 1: image 3 strongest at (0, 1), then image 1 at (2, 2)
    x[3, 1, 0, 1] = 6.0
    x[0, 1, 0, 0] = 9.0  # class-1 evidence on a class-0 image: ignored
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    loader = DataLoader(TensorDataset(x, y), batch_size=2, shuffle=False)
    seeds = seed_prototypes(model, loader, head)
    assert seeds["sample_index"].tolist() == [0, 4, 3, 1]
    assert seeds["location"].tolist() == [[1, 2], [3, 0], [0, 1], [2, 2]]
    torch.testing.assert_close(seeds["evidence"], torch.tensor([3.0, 2.0, 6.0, 5.0]))
    z = model.latent(x)
    for p, (n, (h, w)) in enumerate(zip(seeds["sample_index"], seeds["location"], strict=True)):
        torch.testing.assert_close(model.prototypes[p, :, 0, 0], z[n, :, h, w])
    # each prototype is now at distance 0 from its seed patch
    assert float(model.forward_all(x).min_distances.detach().min()) < 1e-5
    with pytest.raises(ValueError, match="classes"):
        seed_prototypes(model, loader, nn.Linear(2, 3))
    with pytest.raises(ValueError, match="random order"):
        seed_prototypes(model, DataLoader(TensorDataset(x, y), shuffle=True), head)


@pytest.mark.slow
def test_warm_started_protopnet_learns_birds_above_chance():
    """The documented recipe, tiny: 4 classes of 64-px birds, 160 training images, a few
    epochs (the full recipe is ``bench/protopnet_birds.py``)."""
    kw = {"image_size": 64, "classes": 4, "difficulty": 0.0}
    train, test = birds(40, seed=0, **kw), birds(25, seed=1, **kw)
    mean = train.images.mean((0, 2, 3), keepdim=True)
    std = train.images.std((0, 2, 3), keepdim=True)
    train_n = TensorDataset((train.images - mean) / std, train.labels)
    test_n = TensorDataset((test.images - mean) / std, test.labels)
    net, _ = pretrain_backbone(
        "small_cnn", train_n, n_classes=4, epochs=12, progress=False,
        backbone_kwargs={"widths": (8, 16, 32)},
    )  # fmt: skip
    torch.manual_seed(0)
    model = ProtoPNet(
        net.features, n_classes=4, n_prototypes_per_class=2, prototype_dim=32, image_size=64
    )
    loader = DataLoader(train_n, batch_size=32, shuffle=True)
    push_loader = DataLoader(train_n, batch_size=160, shuffle=False)
    seed_prototypes(model, push_loader, net.head)
    schedule = Schedule.cpu_birds(5, warmup_epochs=1, push_start=5)  # one push, at the end
    fit(model, loader, push_loader=push_loader, schedule=schedule, progress=False)
    # 100 test images, chance 0.25 (binomial sd 0.043): both clearly above it
    assert accuracy(net, test_n) >= 0.45
    assert accuracy(model, test_n) >= 0.38


def test_pretrain_backbone_takes_a_generator_and_leaves_the_global_rng_alone():
    x, y = torch.rand(8, 3, 8, 8), torch.arange(8) % 2
    kw = {"n_classes": 2, "epochs": 1, "progress": False, "backbone_kwargs": {"widths": (4,)}}
    state = torch.random.get_rng_state()
    a, _ = pretrain_backbone("small_cnn", (x, y), seed=torch.Generator().manual_seed(5), **kw)
    b, _ = pretrain_backbone("small_cnn", (x, y), seed=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    c = pretrain_backbone("small_cnn", (x, y), seed=None, **kw).classifier
    assert not torch.equal(a.head.weight, c.head.weight)
