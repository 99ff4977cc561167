"""capture(), list_layers() and layer-name resolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp_lib.profile import capture, list_layers


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(3 * 4 * 4, 5),
    )


def n_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_hooks_removed_and_modes_restored_on_normal_exit():
    net = small_net().train()
    net[1].eval()  # mixed modes must come back exactly
    before = modes(net)
    with capture(net, ["0", "3", "input", "output"]) as acts:
        assert n_hooks(net) == 4
        assert not any(modes(net))  # eval inside
        net(torch.randn(2, 1, 8, 8))
    assert n_hooks(net) == 0
    assert modes(net) == before
    assert set(acts) == {"0", "3", "input", "output"}


def test_hooks_removed_when_forward_raises():
    net = nn.Sequential(nn.Linear(4, 4), Boom()).train()
    with pytest.raises(RuntimeError, match="boom"), capture(net, ["0"]):
        net(torch.randn(2, 4))
    assert n_hooks(net) == 0
    assert all(modes(net))


def test_hooks_removed_when_a_hook_raises():
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).train()

    def fail(alias, tensor):
        raise KeyError("in hook")

    with pytest.raises(KeyError), capture(net, ["1"], on_output=fail):
        net(torch.randn(2, 4))
    assert n_hooks(net) == 0 and net.training


def test_bad_name_registers_nothing_and_suggests():
    net = small_net().train()
    with pytest.raises(ValueError, match=r"Did you mean 'features.4'"):
        with capture(_named(), ["featurs.4"]):
            pass
    with pytest.raises(ValueError, match="no layer named '9'"):
        with capture(net, ["0", "9"]):
            pass
    assert n_hooks(net) == 0 and net.training


def _named() -> nn.Module:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = small_net()

        def forward(self, x):
            return self.features(x)

    return Net()


def test_errors_for_non_module_and_bad_layer_types():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        with capture({"weight": torch.zeros(1)}, ["0"]):
            pass
    with pytest.raises(TypeError, match="list of dotted"):
        with capture(small_net(), 3):
            pass
    with pytest.raises(ValueError, match="empty"):
        with capture(small_net(), []):
            pass
    with pytest.raises(ValueError, match="unique"):
        with capture(small_net(), {"0": "a", "3": "a"}):
            pass
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        list_layers(lambda x: x)


def test_inplace_relu_does_not_corrupt_captured_values():
    net = small_net()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        expected = net[1].eval()(net[0](x))  # batch-norm output before the in-place ReLU
    assert (expected < 0).any()
    with torch.no_grad(), capture(net, {"1": "bn", "2": "relu"}) as acts:
        net(x)
    torch.testing.assert_close(acts["bn"], expected)
    torch.testing.assert_close(acts["relu"], expected.clamp_min(0))


def test_aliases_input_output_and_values():
    net = small_net().eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad(), capture(net, {"input": "x", "output": "logits", "3": "pool"}) as acts:
        out = net(x)
    assert set(acts) == {"x", "logits", "pool"}
    torch.testing.assert_close(acts["x"], x)
    torch.testing.assert_close(acts["logits"], out)
    assert acts["pool"].shape == (3, 3, 4, 4)


def test_tuple_output_keeps_first_tensor():
    class Two(nn.Module):
        def forward(self, x):
            return x * 2, x * 3

    net = Two()
    with capture(net, ["output"]) as acts:
        net(torch.ones(2, 2))
    torch.testing.assert_close(acts["output"], torch.full((2, 2), 2.0))


def test_list_layers_names_and_type_filter():
    net = _named()
    names = list_layers(net)
    assert names[0] == "features" and "features.6" in names and "" not in names
    assert list_layers(net, types=nn.Linear) == ["features.6"]
    assert list_layers(net, types=(nn.Conv2d, nn.Linear)) == ["features.0", "features.6"]
    with pytest.raises(TypeError, match="class"):
        list_layers(net, types="Linear")
