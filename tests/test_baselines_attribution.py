"""attribute(): one (N, 1, H, W) contract for every method, completeness, safety, errors."""

from __future__ import annotations

import sys

import pytest
import torch
from _helpers import attribution_cnn as cnn
from _helpers import tiny_protopnet
from torch import nn

from interp_lib.baselines import METHODS, attribute, grad_cam

LAYER_METHODS = {"grad_cam", "guided_grad_cam", "cam"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_returns_n1hw(method: str) -> None:
    x = torch.rand(2, 3, 12, 12)
    if method.startswith("prototype"):
        model = tiny_protopnet(
            0, prototype_dim=4, image_size=12, widths=(4,), backbone_kwargs={"batch_norm": False}
        ).eval()
        kw = {}
    else:
        model, kw = cnn(), ({"layer": "3"} if method in LAYER_METHODS else {})
    if method == "integrated_gradients":
        kw["n_steps"] = 8
    out = attribute(model, x, target=[1, 2], method=method, **kw)
    assert out.shape == (2, 1, 12, 12)
    assert out.dtype == x.dtype and not out.requires_grad
    assert bool(torch.isfinite(out).all())


def test_noise_tunnel_wraps_any_captum_method() -> None:
    x = torch.rand(2, 3, 12, 12)
    for method, kw in (("saliency", {}), ("grad_cam", {"layer": "3"})):
        out = attribute(
            cnn(), x, 0, method=method, noise_tunnel="smoothgrad_sq", nt_samples=3, **kw
        )
        assert out.shape == (2, 1, 12, 12)
    with pytest.raises(ValueError, match="noise_tunnel must be one of"):
        attribute(cnn(), x, 0, method="saliency", noise_tunnel="blur")


def test_integrated_gradients_completeness() -> None:
    """sum of IG attributions == F(x) - F(baseline), up to the quadrature error."""
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 5, 3, padding=1), nn.Softplus(), nn.Conv2d(5, 5, 3, padding=1), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3),
    ).double().eval()  # fmt: skip
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    base = torch.full_like(x, 0.25)
    target = torch.tensor([0, 1, 2])
    ig = attribute(net, x, target, method="integrated_gradients", baselines=base, n_steps=64)
    gap = (net(x) - net(base)).detach()[torch.arange(3), target]
    torch.testing.assert_close(ig.sum((1, 2, 3)), gap, rtol=1e-6, atol=1e-8)


def _snapshot(model: nn.Module):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [type(m) for m in model.modules()],
        [getattr(m, "inplace", None) for m in model.modules()],
        [
            (len(m._forward_hooks), len(m._backward_hooks), len(m._forward_pre_hooks))
            for m in model.modules()
        ],
        model.training,
    )


@pytest.mark.parametrize(
    "method", ["guided_backprop", "deconvolution", "guided_grad_cam", "grad_cam"]
)
def test_user_model_unchanged_by_hooking_methods(method: str) -> None:
    model = cnn()
    before = _snapshot(model)
    kw = {"layer": model[3]} if method in LAYER_METHODS else {}
    out = attribute(model, torch.rand(2, 3, 12, 12), 0, method=method, **kw)
    assert out.shape == (2, 1, 12, 12)
    after = _snapshot(model)
    assert before[1:] == after[1:]
    assert before[0].keys() == after[0].keys()
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k])
    assert model[1].inplace and model[4].inplace


def test_guided_backprop_matches_plain_relu_model() -> None:
    """The in-place workaround changes nothing numerically."""
    inplace = cnn()
    plain = cnn()
    for m in plain.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x = torch.rand(2, 3, 12, 12)
    for method in ("guided_backprop", "guided_grad_cam"):
        kw = {"layer": "3"} if method in LAYER_METHODS else {}
        torch.testing.assert_close(
            attribute(inplace, x, 1, method=method, **kw),
            attribute(plain, x, 1, method=method, **kw),
        )


def test_reduce_and_target_forms() -> None:
    model, x = cnn(), torch.rand(3, 3, 12, 12)
    raw_sum = attribute(model, x, 2, method="input_x_gradient")
    by_list = attribute(model, x, [2, 2, 2], method="input_x_gradient")
    by_tensor = attribute(model, x, torch.tensor([2, 2, 2]), method="input_x_gradient")
    torch.testing.assert_close(raw_sum, by_list)
    torch.testing.assert_close(raw_sum, by_tensor)
    abs_sum = attribute(model, x, 2, method="input_x_gradient", reduce="abs_sum")
    assert bool((abs_sum >= raw_sum.abs() - 1e-7).all())
    pred = model(x).argmax(1)
    torch.testing.assert_close(
        attribute(model, x, None, method="saliency"), attribute(model, x, pred, method="saliency")
    )


def test_clear_errors() -> None:
    model, x = cnn(), torch.rand(2, 3, 12, 12)
    with pytest.raises(ValueError, match=r"unknown method 'gradcam'.*'grad_cam'.*'saliency'"):
        attribute(model, x, 0, method="gradcam")
    with pytest.raises(ValueError, match=r"needs layer=.*last convolution is '3'"):
        attribute(model, x, 0, method="grad_cam")
    with pytest.raises(ValueError, match=r"no layer named '33'. Did you mean '3'"):
        attribute(model, x, 0, method="guided_grad_cam", layer="33")
    with pytest.raises(ValueError, match=r"target \[4\] out of range: the model has 4 classes"):
        attribute(model, x, 4, method="saliency")
    with pytest.raises(ValueError, match="out of range"):
        attribute(model, x, [0, -1], method="integrated_gradients")
    with pytest.raises(ValueError, match="one int or 2 class indices"):
        attribute(model, x, [0, 1, 2], method="saliency")
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        attribute(model, x[0], 0, method="saliency")
    with pytest.raises(TypeError, match="needs a ProtoPNet"):
        attribute(model, x, 0, method="prototype")
    with pytest.raises(ValueError, match="reduce must be one of"):
        attribute(model, x, 0, method="saliency", reduce="mean")


def test_training_mode_warns() -> None:
    model = cnn().train()
    with pytest.warns(UserWarning, match="training mode"):
        attribute(model, torch.rand(1, 3, 12, 12), 0, method="saliency")


def test_missing_captum_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    for method, kw in (("saliency", {}), ("grad_cam", {"layer": "3"})):
        with pytest.raises(ModuleNotFoundError, match=r'pip install "interp_lib\[captum\]"'):
            attribute(cnn(), torch.rand(1, 3, 12, 12), 0, method=method, **kw)
    with pytest.raises(ModuleNotFoundError, match=r"grad_cam needs captum"):
        grad_cam(cnn(), torch.rand(1, 3, 12, 12), 0, layer="3")
    # methods that do not need captum keep working
    assert attribute(cnn(), torch.rand(1, 3, 12, 12), 0, method="cam", layer="4").shape == (
        1,
        1,
        12,
        12,
    )


def test_noise_tunnel_rejected_for_non_captum_methods() -> None:
    with pytest.raises(ValueError, match="captum methods only"):
        attribute(
            cnn(), torch.rand(1, 3, 12, 12), 0, method="cam", layer="4", noise_tunnel="smoothgrad"
        )


def test_empty_or_non_finite_batch_is_refused() -> None:
    model = cnn()
    x = torch.rand(2, 3, 12, 12)
    for method, kw in (("saliency", {}), ("grad_cam", {"layer": "3"}), ("random", {})):
        with pytest.raises(ValueError, match=r"inputs is empty \(shape \(0, 3, 12, 12\)\)"):
            attribute(model, x[:0], method=method, **kw)
    bad = x.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity in 1 of its 2 images"):
        attribute(model, bad, 0, method="saliency")


def test_model_that_cannot_run_on_the_inputs() -> None:
    with pytest.raises(ValueError, match=r"could not run on inputs of shape \(2, 1, 12, 12\)"):
        attribute(cnn(), torch.rand(2, 1, 12, 12), 0, method="saliency")
    with pytest.raises(ValueError, match=r"dtype torch\.float64"):
        attribute(cnn(), torch.rand(2, 3, 12, 12, dtype=torch.float64), 0, method="saliency")
    with pytest.raises(TypeError, match="target must be None, an int"):
        attribute(cnn(), torch.rand(2, 3, 12, 12), "cat", method="saliency")


def test_registry_is_the_one_table() -> None:
    from interp_lib.baselines import get_method
    from interp_lib.baselines.methods import REGISTRY

    assert list(METHODS) == list(REGISTRY)
    assert {m for m in METHODS if get_method(m).needs_layer} == LAYER_METHODS
    assert {m for m in METHODS if get_method(m).needs_protopnet} == {"prototype", "prototype_box"}
    hooking = {m for m in METHODS if get_method(m).in_place_free}
    assert hooking == {"guided_backprop", "deconvolution", "guided_grad_cam", "grad_cam"}
    with pytest.raises(ValueError, match="unknown method"):
        get_method("gradcam")


def test_grad_cam_through_attribute_is_grad_cam() -> None:
    model, x = cnn(), torch.rand(2, 3, 12, 12)
    for kw in ({}, {"relu": False, "interpolate_mode": "bicubic"}):
        torch.testing.assert_close(
            attribute(model, x, [0, 3], method="grad_cam", layer="3", **kw),
            grad_cam(model, x, [0, 3], layer="3", **kw),
            rtol=0,
            atol=0,
        )
