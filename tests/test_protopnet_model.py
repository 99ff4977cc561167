"""ProtoPNet model: shapes, initialisation, scoring sheet, config round trip, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from interp_lib.networks import build_backbone, trunk_info
from interp_lib.protopnet import ProtoPNet, add_on_layers
from interp_lib.protopnet.functional import similarity

SMALL = {"widths": (4, 8)}


def test_shapes_and_output_fields(make_protopnet):
    torch.manual_seed(0)
    model = make_protopnet(None).eval()
    x = torch.rand(4, 3, 16, 16)
    out = model.forward_all(x)
    assert out.logits.shape == (4, 3)
    assert out.min_distances.shape == (4, 6)
    assert out.distances.shape == out.similarities.shape == (4, 6, 4, 4)
    assert out.latent.shape == (4, 6, 4, 4)
    assert ((out.latent > 0) & (out.latent < 1)).all()
    assert torch.equal(model(x), out.logits)
    torch.testing.assert_close(out.similarities, similarity(out.distances, "log"))
    assert model.prototypes.shape == (6, 6, 1, 1)
    assert ((model.prototypes >= 0) & (model.prototypes < 1)).all()


def test_class_identity_and_last_layer_init_paper_layout():
    model = ProtoPNet(
        "small_cnn",
        n_classes=20,
        n_prototypes_per_class=10,
        prototype_dim=4,
        image_size=16,
        backbone_kwargs=SMALL,
    )
    assert "class_identity" in dict(model.named_buffers())
    classes = torch.arange(200) // 10
    assert torch.equal(model.prototype_classes, classes)
    assert torch.equal(model.class_identity, nn.functional.one_hot(classes, 20).float())
    w = model.last_layer.weight
    assert w.shape == (20, 200) and model.last_layer.bias is None
    assert torch.equal(w, torch.where(classes[None] == torch.arange(20)[:, None], 1.0, -0.5))
    # each class row sums to 10 - 0.5 (M - 10)
    assert torch.equal(w.sum(1), torch.full((20,), 10 - 0.5 * (200 - 10)))


def test_logit_is_the_sum_of_points(make_protopnet):
    torch.manual_seed(1)
    model = make_protopnet(None).double().eval()
    with torch.no_grad():
        model.last_layer.weight.normal_()
        out = model.forward_all(torch.rand(3, 3, 16, 16, dtype=torch.float64))
    act = similarity(out.min_distances, "log")
    points = act[:, None, :] * model.last_layer.weight[None]  # (N, K, P)
    torch.testing.assert_close(points.sum(-1), out.logits, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_other_similarities(kind, make_protopnet):
    model = make_protopnet(None, similarity=kind).eval()
    out = model.forward_all(torch.rand(2, 3, 16, 16))
    torch.testing.assert_close(out.similarities, similarity(out.distances, kind))
    if kind == "cosine":
        assert (out.distances >= 0).all() and (out.distances <= 2).all()


def test_config_rebuilds_the_model_and_is_json(make_protopnet):
    model = make_protopnet(None, prototype_size=2)
    cfg = json.loads(json.dumps(model.config))
    clone = ProtoPNet.from_config(cfg)
    clone.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 16, 16)
    model.eval(), clone.eval()
    assert torch.equal(model(x), clone(x))


def test_custom_backbone_module():
    trunk = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    model = ProtoPNet(trunk, n_classes=2, n_prototypes_per_class=1, prototype_dim=3, image_size=8)
    assert model.receptive_field.n == 4 and model.receptive_field.size == 4
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 2)
    with pytest.raises(ValueError, match="custom backbone"):
        ProtoPNet.from_config(model.config)
    assert ProtoPNet.from_config(model.config, backbone=trunk).n_prototypes == 2


def test_remove_prototypes_shrinks_everything_consistently(make_protopnet):
    torch.manual_seed(2)
    model = make_protopnet(None).eval()
    x = torch.rand(3, 3, 16, 16)
    before = model.forward_all(x)
    protos = model.prototypes.detach().clone()
    weight = model.last_layer.weight.detach().clone()
    model.prototypes.requires_grad_(False)  # e.g. frozen by the last-layer stage
    model.remove_prototypes([1, 4])
    assert not model.prototypes.requires_grad and model.last_layer.weight.requires_grad
    keep = [0, 2, 3, 5]
    assert model.n_prototypes == 4
    assert torch.equal(model.prototypes, protos[keep])
    assert torch.equal(model.last_layer.weight, weight[:, keep])
    assert model.prototype_classes.tolist() == [0, 1, 1, 2]
    assert model.config["n_prototypes_per_class"] == [1, 2, 1]
    after = model.forward_all(x)
    torch.testing.assert_close(after.min_distances, before.min_distances[:, keep])
    clone = ProtoPNet.from_config(model.config)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.prototype_classes, model.prototype_classes)
    with pytest.raises(ValueError, match="every prototype"):
        model.remove_prototypes([0, 1, 2, 3])


def test_clear_errors(make_protopnet):
    with pytest.raises(ValueError, match="unknown backbone"):
        ProtoPNet("vgg99", n_classes=2)
    with pytest.raises(ValueError, match="similarity"):
        make_protopnet(None, similarity="dot")
    with pytest.raises(TypeError, match="backbone"):
        ProtoPNet(3, n_classes=2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        make_protopnet(None)(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="n_prototypes_per_class"):
        make_protopnet(None, n_prototypes_per_class=[1, 2])


@pytest.mark.slow
def test_weights_from_a_local_file_and_the_hub_cache(tmp_path, monkeypatch):
    torch.manual_seed(3)
    trunk = build_backbone("small_cnn", widths=(4, 8))
    path = tmp_path / "trunk.pt"
    torch.save(trunk.state_dict(), path)
    loaded = build_backbone("small_cnn", weights=path, widths=(4, 8))
    for a, b in zip(trunk.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # a torchvision weight name is looked up in the hub cache only, never downloaded
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_backbone("resnet18", weights="IMAGENET1K_V1")
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(net.state_dict(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    trunk = build_backbone("resnet18", weights="IMAGENET1K_V1")
    assert torch.equal(trunk.conv1.weight, net.conv1.weight)
    assert torch.equal(trunk.layer4[1].bn2.running_var, net.layer4[1].bn2.running_var)


def test_distances_stay_in_float32_under_autocast(make_protopnet):
    torch.manual_seed(4)
    model = make_protopnet(None).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        ref = model.forward_all(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model.forward_all(x)
    assert out.distances.dtype == torch.float32
    # the only bf16 error left comes from the trunk, not from the distance expansion
    z = out.latent.float()
    torch.testing.assert_close(out.distances, model.distances(z), rtol=0, atol=0)
    assert (out.min_distances - ref.min_distances).abs().max() < 0.1


def _original_bottleneck(c: int, d: int) -> list[tuple]:
    """The layer sequence of the original construct_PPNet's bottleneck loop, as
    ``("conv", in, out)`` / ``("relu",)`` / ``("sigmoid",)`` records."""
    layers: list[tuple] = []
    while c > d or not layers:
        out = max(d, c // 2)
        layers += [("conv", c, out), ("relu",), ("conv", out, out)]
        layers.append(("relu",) if out > d else ("sigmoid",))
        c = c // 2
    return layers


def _records(seq: nn.Sequential) -> list[tuple]:
    out = []
    for layer in seq:
        if isinstance(layer, nn.Conv2d):
            assert layer.kernel_size == (1, 1) and layer.bias is not None
            out.append(("conv", layer.in_channels, layer.out_channels))
        else:
            out.append((type(layer).__name__.lower(),))
    return out


@pytest.mark.parametrize(("c", "d"), [(512, 128), (2048, 128), (300, 128), (100, 128), (64, 64)])
def test_bottleneck_add_on_is_the_original_layer_sequence(c, d):
    layers = _records(add_on_layers("bottleneck", c, d))
    assert layers == _original_bottleneck(c, d)
    if (c, d) == (512, 128):  # written out once
        assert layers == [
            ("conv", 512, 256), ("relu",), ("conv", 256, 256), ("relu",),
            ("conv", 256, 128), ("relu",), ("conv", 128, 128), ("sigmoid",),
        ]  # fmt: skip
    regular = _records(add_on_layers("regular", c, d))
    assert regular == [("conv", c, d), ("relu",), ("conv", d, d), ("sigmoid",)]
    if c <= 2 * d:
        assert layers == regular


def test_add_on_choice_is_in_the_config_and_the_default_is_unchanged(make_protopnet):
    regular = make_protopnet(0)
    assert regular.config["add_on"] == "regular"
    assert _records(regular.add_on) == [("conv", 8, 6), ("relu",), ("conv", 6, 6), ("sigmoid",)]
    model = make_protopnet(0, widths=(4, 32), prototype_dim=6, add_on="bottleneck")
    assert _records(model.add_on) == _original_bottleneck(32, 6)
    clone = ProtoPNet.from_config(json.loads(json.dumps(model.config)))
    clone.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(model.eval()(x), clone.eval()(x))
    with pytest.raises(ValueError, match="add_on"):
        make_protopnet(0, add_on="deep")


def test_trunks_declare_their_geometry():
    trunk = build_backbone("small_cnn", widths=(4, 8, 16), in_channels=1)
    assert trunk_info(trunk) == (1, 16, 8)
    assert trunk(torch.rand(1, 1, 32, 32)).shape == (1, 16, 4, 4)
    # undeclared modules: guessed from their convolutions, reduction unknown
    plain = nn.Sequential(nn.Conv2d(2, 5, 3), nn.BatchNorm2d(5), nn.MaxPool2d(2))
    assert trunk_info(plain) == (2, 5, None)
    with pytest.raises(ValueError, match="out_channels"):
        trunk_info(nn.Identity())


def test_bad_images_fail_in_our_frames_with_what_to_do(make_protopnet):
    model = make_protopnet(0).eval()
    cases = [
        (torch.rand(2, 1, 16, 16), ValueError, "3 channels"),
        (torch.randint(0, 255, (2, 3, 16, 16)), TypeError, "floating point"),
        (torch.rand(2, 3, 16, 16, dtype=torch.float64), TypeError, r"x\.to\(torch\.float32\)"),
        (torch.rand(2, 3, 3, 16), ValueError, "too small"),
        (torch.rand(2, 3, 16, 2), ValueError, "too small"),
        (np.zeros((2, 3, 16, 16), dtype=np.float32), TypeError, "torch.Tensor"),
        (torch.rand(3, 16, 16), ValueError, r"\(N, C, H, W\)"),
    ]
    for x, kind, message in cases:
        with pytest.raises(kind, match=message) as info:
            model(x)
        assert "interp_lib" in info.traceback[-1].path.parts, info.traceback[-1].path
    # prototypes of side 3 on a 2x2 latent map (8-px images): our error, not torch's
    big = make_protopnet(0, prototype_size=3)
    with pytest.raises(ValueError, match="do not fit"):
        big(torch.rand(1, 3, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts: no dtype error
        assert model(torch.rand(1, 3, 16, 16, dtype=torch.bfloat16)).shape == (1, 3)


@pytest.mark.parametrize("eps", [-1.0, 0.0, float("nan"), float("inf")])
def test_eps_must_be_finite_and_positive(eps):
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        ProtoPNet("small_cnn", n_classes=2, n_prototypes_per_class=1, prototype_dim=4,
                  backbone_kwargs={"widths": (4,)}, eps=eps)  # fmt: skip
    with pytest.raises(TypeError, match="eps"):
        ProtoPNet("small_cnn", n_classes=2, prototype_dim=4, eps="small")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_incorrect_class_connection_must_be_finite(value):
    with pytest.raises(ValueError, match="incorrect_class_connection"):
        ProtoPNet("small_cnn", n_classes=2, n_prototypes_per_class=1, prototype_dim=4,
                  backbone_kwargs={"widths": (4,)}, incorrect_class_connection=value)  # fmt: skip
    model = ProtoPNet("small_cnn", n_classes=2, n_prototypes_per_class=1, prototype_dim=4,
                      backbone_kwargs={"widths": (4,)})  # fmt: skip
    with pytest.raises(ValueError, match="incorrect_class_connection"):
        model.set_last_layer_incorrect_connection(value)
    assert bool(torch.isfinite(model.last_layer.weight).all())
