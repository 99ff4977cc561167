"""CAM and Grad-CAM: analytic identities on GAP-linear networks, and pytorch-grad-cam."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from interp_lib.baselines import attribute, cam, grad_cam


def gap_net(pool: bool, inplace: bool = False, seed: int = 0) -> nn.Sequential:
    """conv-relu[-pool]-conv-relu -> GAP -> linear (with bias): the CAM setting."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(inplace=inplace)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)]
    net = nn.Sequential(*layers).double().eval()
    with torch.no_grad():
        net[-1].bias.copy_(torch.randn(5, dtype=torch.float64))
    return net


def test_cam_mean_is_logit_minus_bias() -> None:
    net = gap_net(pool=True)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    target = torch.tensor([0, 3, 4, 1])
    m = cam(net, x, target, layer="4", upsample=False)  # layer output: 6 x 6 x 6
    assert m.shape == (4, 1, 6, 6)
    logits = net(x).detach()
    expected = logits[torch.arange(4), target] - net[-1].bias[target].detach()
    torch.testing.assert_close(m.mean((1, 2, 3)), expected, rtol=0, atol=1e-12)


def test_grad_cam_is_relu_cam_over_hw() -> None:
    net = gap_net(pool=True)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    m_cam = cam(net, x, 2, layer="4", upsample=False)
    m_grad = grad_cam(net, x, 2, layer="4", upsample=False)
    torch.testing.assert_close(m_grad, m_cam.clamp(min=0) / 36, rtol=0, atol=1e-12)
    # Without the paper's ReLU, captum's raw map is CAM / (h w) exactly.
    raw = grad_cam(net, x, 2, layer="4", relu=False, upsample=False)
    torch.testing.assert_close(raw, m_cam / 36, rtol=0, atol=1e-12)


def test_identities_at_input_resolution_and_by_module() -> None:
    net = gap_net(pool=False)  # layer resolution == input resolution: no resizing
    x = torch.randn(3, 3, 10, 10, dtype=torch.float64)
    m_cam = cam(net, x, layer=net[3])
    m_grad = attribute(net, x, method="grad_cam", layer=net[3])
    assert m_cam.shape == m_grad.shape == (3, 1, 10, 10)
    torch.testing.assert_close(m_grad, m_cam.clamp(min=0) / 100, rtol=0, atol=1e-12)


def test_upsampled_map_keeps_input_size_and_sign() -> None:
    net = gap_net(pool=True)
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    for mode in ("bilinear", "nearest"):
        m = grad_cam(net, x, layer="3", interpolate_mode=mode)
        assert m.shape == (2, 1, 12, 12)
        assert float(m.min()) >= 0.0


def test_inplace_relu_gives_same_grad_cam_as_plain_relu() -> None:
    plain, inplace = gap_net(pool=True), gap_net(pool=True, inplace=True)
    x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
    for layer in ("3", "4"):  # the conv whose output a later in-place ReLU overwrites
        torch.testing.assert_close(
            grad_cam(inplace, x, 1, layer=layer), grad_cam(plain, x, 1, layer=layer)
        )
    assert inplace[1].inplace and inplace[4].inplace


@pytest.mark.parametrize(("pool", "atol"), [(False, 1e-6), (True, 3e-4)])
def test_grad_cam_matches_pytorch_grad_cam(pool: bool, atol: float) -> None:
    """Same model, layer and classes as pytorch-grad-cam (package ``grad-cam``).

    It rescales each map to [0, 1] (min-max, twice) and resizes with OpenCV, so we compare the
    min-max normalised maps. Without pooling no resizing happens (agreement to float
    precision); with pooling OpenCV's bilinear resize rounds its interpolation weights,
    hence a looser 3e-4 on a [0, 1] scale.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net = gap_net(pool=pool).float()
    x = torch.randn(4, 3, 16, 16)
    target = [0, 2, 4, 1]
    ref_net = copy.deepcopy(net)
    layer = "3" if pool else "2"
    with GradCAM(model=ref_net, target_layers=[ref_net.get_submodule(layer)]) as gc:
        ref = torch.from_numpy(gc(x, targets=[ClassifierOutputTarget(t) for t in target]))
    ours = grad_cam(net, x, target, layer=layer)[:, 0]
    for _ in range(2):  # pytorch-grad-cam min-max scales twice (per layer, then overall)
        ours = ours - ours.amin((1, 2), keepdim=True)
        ours = ours / (1e-7 + ours.amax((1, 2), keepdim=True))
    assert float(ref.amax()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(ours, ref, rtol=0, atol=atol)


def test_cam_errors() -> None:
    net = gap_net(pool=True)
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs layer"):
        cam(net, x, 0, layer=None)
    with pytest.raises(ValueError, match="no layer named 'feature'"):
        grad_cam(net, x, 0, layer="feature")
    with pytest.raises(ValueError, match="not a submodule"):
        grad_cam(net, x, 0, layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match=r"out of range.*5 classes"):
        cam(net, x, 5, layer="4")
    with pytest.raises(ValueError, match="input features"):
        cam(net, x, 0, layer="1")  # 8 channels, fc expects 6
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        cam(
            nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval(),
            x.float(),
            0,
            layer="0",
        )


def test_layer_without_spatial_map_is_refused() -> None:
    """grad_cam on a Linear layer raised inside torch (or, with upsample=False, returned
    a (N, K) "map"); now a clear error from every layer method."""
    net = gap_net(pool=True).float()
    x = torch.randn(2, 3, 12, 12)
    for upsample in (True, False):
        with pytest.raises(ValueError, match=r"layer '7' \(Linear\) gives shape \(2, 5\)"):
            grad_cam(net, x, 0, layer="7", upsample=upsample)
    for method in ("grad_cam", "guided_grad_cam", "cam"):
        with pytest.raises(ValueError, match=rf"{method} needs a layer whose output is a feature"):
            attribute(net, x, 0, method=method, layer=net[6])  # Flatten
    with pytest.raises(ValueError, match="no layer named 'input'"):
        grad_cam(net, x, 0, layer="input")


def test_cam_reads_the_layer_output_before_an_inplace_relu() -> None:
    """The conv before an in-place ReLU: CAM of the conv's own output (as with a plain
    ReLU), not of the ReLU's output that overwrote it."""
    plain, inplace = gap_net(pool=True), gap_net(pool=True, inplace=True)
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    torch.testing.assert_close(cam(inplace, x, 1, layer="3"), cam(plain, x, 1, layer="3"))
    assert not torch.allclose(cam(plain, x, 1, layer="3"), cam(plain, x, 1, layer="4"))
