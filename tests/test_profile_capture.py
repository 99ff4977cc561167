"""capture(), list_layers() and layer-name resolution."""

from __future__ import annotations

import pytest
import torch
from _helpers import run_in_threads
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


# --------------------------------------------------- one layer, module objects, gradients


def test_resolve_layer_by_name_or_module_and_clear_errors():
    from interp_lib.profile.layers import get_layer, resolve_layer

    net = _named()
    assert resolve_layer(net, "features.6") == "features.6"
    assert resolve_layer(net, net.features[3]) == "features.3"
    assert resolve_layer(net, net) == "output" and resolve_layer(net, "input") == "input"
    assert get_layer(net, "features.0") is net.features[0] and get_layer(net, "input") is net
    with pytest.raises(ValueError, match=r"Did you mean 'features.6'"):
        resolve_layer(net, "feature.6")
    with pytest.raises(ValueError, match=r"Valid names: 'features', 'features.0'"):
        resolve_layer(net, "zzz", pseudo=False)
    with pytest.raises(ValueError, match="no layer named 'input'"):
        resolve_layer(net, "input", pseudo=False)
    with pytest.raises(ValueError, match=r"not a submodule.*Conv2d layers are \['features.0'\]"):
        resolve_layer(net, nn.Conv2d(1, 3, 3))
    with pytest.raises(ValueError, match="the model itself"):
        resolve_layer(net, net, pseudo=False)
    with pytest.raises(TypeError, match="dotted module name"):
        resolve_layer(net, 3)


def test_capture_accepts_module_objects_and_keys_them_by_name():
    net = small_net()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad(), capture(net, [net[0], "3"]) as acts:
        net(x)
    assert list(acts) == ["0", "3"]
    with torch.no_grad(), capture(net, {net[6]: "logits"}) as acts:
        out = net(x)
    torch.testing.assert_close(acts["logits"], out)
    with pytest.raises(ValueError, match="requested twice"), capture(net, [net[0], "0"]):
        pass
    assert n_hooks(net) == 0


def test_gradients_match_autograd_through_an_inplace_relu():
    net = small_net()
    x = torch.randn(3, 1, 8, 8)
    target = torch.tensor([0, 4, 2])
    with capture(net, [net[1], "6"], gradients=True) as acts:
        logits = net(x)
        logits.gather(1, target[:, None]).sum().backward()
    assert n_hooks(net) == 0
    # reference: the same quantities with torch.autograd.grad on the eval-mode model
    net.eval()
    bn = net[1](net[0](x))
    rest = nn.Sequential(*list(net)[2:])
    out = rest(bn.clone())  # the clone keeps bn as the layer returned it
    (ref,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), bn)
    assert (bn < 0).any()  # the in-place ReLU changes the captured tensor afterwards
    torch.testing.assert_close(acts["1"], bn.detach())
    torch.testing.assert_close(acts.gradients["1"], ref)
    onehot = torch.zeros(3, 5).scatter_(1, target[:, None], 1.0)
    torch.testing.assert_close(acts.gradients["6"], onehot)


def test_gradients_of_a_module_called_twice_are_those_of_its_last_call():
    relu = nn.ReLU()
    lin = nn.Linear(4, 4)
    net = nn.Sequential(lin, relu, nn.Linear(4, 4), relu)
    net.eval()
    x = torch.randn(5, 4)
    with capture(net, ["1"], gradients=True) as acts:
        (net(x) * torch.arange(4.0)).sum().backward()
    torch.testing.assert_close(acts.gradients["1"], torch.arange(4.0).expand(5, 4))
    torch.testing.assert_close(acts["1"], net(x).detach())


def test_gradients_need_autograd():
    net = small_net()
    with pytest.raises(ValueError, match="does not require grad"):
        with torch.no_grad(), capture(net, ["0"], gradients=True):
            net(torch.randn(2, 1, 8, 8))
    assert n_hooks(net) == 0
    with capture(net, ["0"]) as acts:
        net(torch.randn(2, 1, 8, 8))
    assert acts.gradients == {}


def test_one_model_captured_from_several_threads_gives_each_its_own_outputs():
    import time

    class Pause(nn.Module):  # lets the other threads run mid-forward
        def forward(self, x):
            time.sleep(0.002)
            return x

    net = nn.Sequential(nn.Linear(8, 16), Pause(), nn.ReLU(), nn.Linear(16, 4))
    inputs = [torch.randn(3 + i, 8) for i in range(6)]
    with torch.no_grad():
        expected = [net[0](x) for x in inputs]
    got: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        for _ in range(10):
            with torch.no_grad(), capture(net, ["0"]) as acts:
                net(inputs[i])
                got[i] = acts["0"]
                assert got[i].shape[0] == 3 + i

    run_in_threads(work, 6)
    for i in range(6):
        torch.testing.assert_close(got[i], expected[i])
    assert n_hooks(net) == 0
