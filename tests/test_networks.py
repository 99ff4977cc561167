"""interp_lib.networks: one model builder, one weight loader, the architectures."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from interp_lib.networks import (
    FeatureInfo,
    FeatureStage,
    Trunk,
    build,
    build_backbone,
    cnn_classifier,
    load_weights,
    pooled_classifier,
    read_weights,
    resettable_layers,
    residual_classifier,
    resolve_weights,
    small_cnn,
)


def _net() -> nn.Sequential:
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), bn=nn.BatchNorm2d(2)))


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "ddp"])
def test_load_weights_reads_every_saved_form(tmp_path, wrap):
    torch.manual_seed(0)
    src = _net()
    state = src.state_dict()
    saved = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state, "optimizer": {}},
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    torch.save(saved, tmp_path / "w.pt")
    dst = _net()
    assert not _same(src, dst)
    assert load_weights(dst, tmp_path / "w.pt") is dst
    assert _same(src, dst)
    assert read_weights(tmp_path / "w.pt").keys() == state.keys()


def test_load_weights_takes_a_state_dict_and_requires_an_exact_fit(tmp_path):
    src, dst = _net(), _net()
    load_weights(dst, src.state_dict())
    assert _same(src, dst)
    with pytest.raises(ValueError, match=r"do not fit the model: missing keys \['bn.weight'"):
        load_weights(_net(), {"conv.weight": src.conv.weight, "conv.bias": src.conv.bias})
    extra = {**src.state_dict(), "head.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected keys \['head.weight'\]"):
        load_weights(_net(), extra)
    wrong = {**src.state_dict(), "conv.weight": torch.zeros(2, 1, 5, 5)}
    with pytest.raises(ValueError, match=r"do not fit the model.*size mismatch"):
        load_weights(_net(), wrong)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_weights(_net(), tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_weights(_net(), tmp_path / "missing.pt")
    with pytest.raises(TypeError, match=r"nn\.Module"):
        load_weights("net", src.state_dict())


def test_load_weights_renames_old_densenet_keys_only_where_they_fit():
    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.BatchNorm2d(2)

    net = nn.Sequential(OrderedDict(denselayer1=Layer()))
    old = {k.replace("norm1", "norm.1"): v + 1 for k, v in net.state_dict().items()
           if not k.endswith("num_batches_tracked")}  # fmt: skip
    old["denselayer1.norm1.num_batches_tracked"] = torch.tensor(0)
    load_weights(net, old)
    assert torch.equal(net.denselayer1.norm1.weight, torch.full((2,), 2.0))
    with pytest.raises(ValueError, match="unexpected keys"):  # no such module: not renamed
        load_weights(_net(), {**_net().state_dict(), "denselayer9.norm.1.weight": old[
            "denselayer1.norm.1.weight"]})  # fmt: skip


def test_resolve_weights_looks_in_the_hub_cache_only(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        resolve_weights("IMAGENET1K_V1", "resnet18")
    with pytest.raises(ValueError, match="no torchvision weights named 'NOPE'"):
        resolve_weights("NOPE", "resnet18")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_weights("IMAGENET1K_V1")  # no architecture: a path
    (tmp_path / "checkpoints").mkdir()
    file = tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    file.touch()
    assert resolve_weights("IMAGENET1K_V1", "resnet18") == file
    assert resolve_weights(file) == file


def test_build_loads_weights_by_path_or_torchvision_name(tmp_path, monkeypatch):
    torch.manual_seed(1)
    src = build("resnet18", num_classes=3)
    assert not src.training
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(src.state_dict(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    assert _same(src, build("resnet18", "IMAGENET1K_V1", num_classes=3))
    assert _same(src, build("resnet18", tmp_path / "checkpoints" / "resnet18-f37072fd.pth",
                            num_classes=3))  # fmt: skip
    with pytest.raises(ValueError, match="do not fit the model"):
        build("resnet18", "IMAGENET1K_V1")  # 1000 classes
    with pytest.raises(TypeError, match="spec must be a str"):
        build(nn.Linear(1, 1))
    with pytest.raises(ValueError, match=r"not a torch\.nn\.Module"):
        build("collections:OrderedDict")


def test_every_public_part_of_interp_lib_is_a_lazy_attribute():
    """``interp_lib.<part>`` works for every public subpackage and top-level module (the
    list once left out studies, zoo and the networks' home)."""
    import importlib
    from pathlib import Path

    import interp_lib

    root = Path(interp_lib.__file__).parent
    public = {
        p.stem if p.suffix == ".py" else p.name
        for p in root.iterdir()
        if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").is_file())
    }
    assert public == set(interp_lib._SUBMODULES)
    assert public <= set(dir(interp_lib))
    for name in ("networks", "studies", "zoo"):
        assert getattr(interp_lib, name) is importlib.import_module(f"interp_lib.{name}")
    with pytest.raises(AttributeError, match="no attribute 'nn'"):
        interp_lib.nn  # noqa: B018 -- the old name reads like torch.nn: gone


# ----------------------------------------------------------------------- architectures


def _stage_shapes(net: nn.Module, info: FeatureInfo, x: torch.Tensor) -> list[tuple]:
    shapes = {}
    modules = dict(net.named_modules())

    def record(name):
        def hook(_module, _inputs, out):
            shapes.setdefault(name, tuple(out.shape))  # the first call: a ReLU runs once

        return hook

    hooks = [modules[name].register_forward_hook(record(name)) for name in info.module_name()]
    with torch.no_grad():
        net.eval()(x)
    for h in hooks:
        h.remove()
    return [shapes[name] for name in info.module_name()]


ARCHS = {
    "small_cnn": lambda: small_cnn(widths=(4, 8, 16)),
    "small_cnn_no_last_pool": lambda: small_cnn(1, (4, 8), 2, False, pool_last=False),
    "cnn_classifier": lambda: cnn_classifier(3, image_size=64, widths=(4, 8), hidden=(8,)),
    "residual_classifier": lambda: residual_classifier(3, image_size=32, widths=(4, 8, 16)),
    "pooled_classifier": lambda: pooled_classifier(small_cnn(widths=(4, 8)), 3),
    "vgg11": lambda: build_backbone("vgg11"),
    "resnet18": lambda: build_backbone("resnet18"),
    "densenet121": lambda: build_backbone("densenet121"),
}


@pytest.mark.parametrize(
    "name",
    # VGG-11 takes a second to build and run at 64 px
    [pytest.param(n, marks=pytest.mark.slow if n == "vgg11" else ()) for n in ARCHS],
)
def test_feature_info_matches_the_feature_maps(name):
    torch.manual_seed(0)
    net = ARCHS[name]()
    info = net.feature_info
    assert isinstance(info, FeatureInfo) and len(info) >= 1
    in_channels = 1 if name == "small_cnn_no_last_pool" else 3
    side = 64
    shapes = _stage_shapes(net, info, torch.rand(2, in_channels, side, side))
    for (module, channels, reduction), shape in zip(info, shapes, strict=True):
        assert shape == (2, channels, side // reduction, side // reduction), module
    if isinstance(net, Trunk):  # the last stage is the trunk's declared output
        assert (info.channels(-1), info.reduction(-1)) == (net.out_channels, net.reduction)


def test_feature_info_reads_like_timms():
    info = small_cnn(widths=(4, 8, 16), pool_last=False).feature_info
    assert info.channels() == [4, 8, 16] and info.reduction() == [2, 4, 4]
    assert info.module_name() == ["pool1", "pool2", "relu3"]
    assert info.channels(-1) == 16 and info.module_name(0) == "pool1"
    assert info[1] == FeatureStage("pool2", 8, 4)
    assert residual_classifier(3, image_size=32, widths=(4, 8)).feature_info.module_name() == [
        "stem.pool", "layer1", "layer2"]  # fmt: skip
    assert cnn_classifier(3, image_size=16, widths=(4,)).feature_info.module_name() == [
        "features.pool1"]  # fmt: skip
    assert pooled_classifier(nn.Conv2d(3, 4, 3), 2).feature_info is None  # declares nothing


def test_feature_info_and_trunk_refuse_inconsistent_stages():
    with pytest.raises(ValueError, match="at least one stage"):
        FeatureInfo([])
    with pytest.raises(ValueError, match="must not decrease"):
        FeatureInfo([("a", 4, 4), ("b", 8, 2)])
    with pytest.raises(TypeError, match="str name"):
        FeatureInfo([(0, 4, 2)])
    with pytest.raises(ValueError, match="must agree"):
        Trunk(nn.Conv2d(3, 4, 3), out_channels=4, reduction=2, feature_info=[("0", 8, 2)])
    trunk = Trunk(OrderedDict(conv=nn.Conv2d(3, 4, 3)), out_channels=4, reduction=1)
    assert trunk.feature_info == FeatureInfo([("conv", 4, 1)])  # one stage by default
    assert Trunk(nn.Conv2d(3, 4, 3), out_channels=4).feature_info is None


def test_state_dict_names_are_stable():
    """The zoo stores state dicts keyed by module names: renaming a module would orphan
    every cached network."""
    assert list(small_cnn(widths=(4, 8)).state_dict()) == [
        f"{m}{i}.{p}" for i in (1, 2) for m, ps in (("conv", ["weight"]), ("bn", [
            "weight", "bias", "running_mean", "running_var", "num_batches_tracked"]))
        for p in ps
    ]  # fmt: skip
    assert list(cnn_classifier(3, image_size=8, widths=(2,), hidden=(4,)).state_dict()) == [
        "features.conv1.weight", "features.conv1.bias", "fc1.weight", "fc1.bias",
        "out.weight", "out.bias"]  # fmt: skip
    keys = list(residual_classifier(3, image_size=8, widths=(2, 4)).state_dict())
    assert keys[:2] == ["stem.conv.weight", "stem.bn.weight"]
    assert "layer2.0.shortcut.0.weight" in keys and "layer1.0.shortcut.0.weight" not in keys
    assert keys[-2:] == ["out.weight", "out.bias"]
    assert list(pooled_classifier(small_cnn(widths=(2,)), 3).state_dict())[-2:] == [
        "head.weight", "head.bias"]  # fmt: skip


def test_resettable_layers_are_the_layers_with_own_weights_last_first():
    net = cnn_classifier(3, image_size=8, widths=(2,), hidden=(4,), batch_norm=True)
    assert resettable_layers(net) == ["out", "fc1", "features.bn1", "features.conv1"]
    assert resettable_layers(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))) == []
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        resettable_layers("net")


def test_backbone_weights_go_through_the_one_loader(tmp_path):
    """build_backbone reads weights as the profile command line does: a checkpoint dict
    or a DataParallel state dict loads, a misfit is a ValueError naming the keys."""
    torch.manual_seed(2)
    trunk = small_cnn(widths=(4, 8))
    torch.save({"state_dict": {f"module.{k}": v for k, v in trunk.state_dict().items()}},
               tmp_path / "ckpt.pt")  # fmt: skip
    assert _same(trunk, build_backbone("small_cnn", weights=tmp_path / "ckpt.pt", widths=(4, 8)))
    with pytest.raises(ValueError, match="do not fit the model"):
        build_backbone("small_cnn", weights=tmp_path / "ckpt.pt", widths=(4, 8, 16))
