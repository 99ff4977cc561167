"""interp_lib.networks: one model builder, one weight loader, the architectures."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from interp_lib import networks
from interp_lib.networks import build, load_weights, read_weights, resolve_weights


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


def test_networks_is_a_lazy_subpackage():
    import interp_lib

    assert interp_lib.networks is networks
    assert "networks" in dir(interp_lib)
