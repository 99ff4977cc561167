"""Nauta et al. 2021 ("This looks like that, because ..."): the perturbations against their
released code, and the importance scores on a hand-built ProtoPNet that sees only hue."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import transforms

from interp_lib.protopnet import ProtoPNet
from interp_lib.protopnet.characteristics import (
    non_local_means,
    perturb,
    prototype_characteristics,
    sine_warp,
)


def nauta_modify_shape(img: np.ndarray, a: float, w: float) -> np.ndarray:
    """``modify_shape`` of M-Nauta/Explaining_Prototypes (an (H, W, C) array), written out."""
    img = img.copy()

    def shift(x):
        return a * np.sin(np.pi * x * w)

    for i in range(img.shape[0]):
        img[i, :, :] = np.roll(img[i, :, :], int(shift(i)), axis=0)
    for i in range(img.shape[1]):
        img[:, i, :] = np.roll(img[:, i, :], int(shift(i)), axis=0)
    return img


@pytest.mark.parametrize(("a", "w"), [(4, 0.05), (7, 0.05), (3, 0.13)])
def test_sine_warp_equals_nauta_modify_shape(a: float, w: float) -> None:
    x = torch.rand(2, 3, 30, 41, generator=torch.Generator().manual_seed(0))
    ours = sine_warp(x, a, w)
    for i in range(2):
        ref = nauta_modify_shape(x[i].permute(1, 2, 0).numpy(), a, w)
        np.testing.assert_array_equal(ours[i].permute(1, 2, 0).numpy(), ref)
    assert not torch.equal(ours, x)


def test_colour_perturbations_equal_their_color_jitter() -> None:
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    for kind, kw in (("hue", {"hue": [0.1, 0.1]}), ("contrast", {"contrast": [0.45, 0.45]}),
                     ("saturation", {"saturation": [0.7, 0.7]}),
                     ("brightness", {"brightness": [0.8, 0.8]})):  # fmt: skip
        ref = transforms.ColorJitter(**kw)(x)
        torch.testing.assert_close(perturb(x, kind), ref)


def test_non_local_means_smooths_texture_and_keeps_edges() -> None:
    g = torch.Generator().manual_seed(2)
    edge = torch.full((1, 3, 32, 32), 0.3)
    edge[..., 16:] = 0.7
    noisy = edge + 0.01 * torch.randn(1, 3, 32, 32, generator=g)  # fine "texture"
    out = non_local_means(noisy)
    assert float((out - edge).std()) < 0.5 * float((noisy - edge).std())
    assert float(out[..., :15].max()) < 0.35 and float(out[..., 17:].min()) > 0.65  # edge kept
    flat = torch.full((1, 3, 24, 24), 0.4)
    torch.testing.assert_close(non_local_means(flat), flat)
    with pytest.raises(ValueError, match="odd"):
        non_local_means(flat, template=4)


class HueTrunk(nn.Module):
    """Sees only hue: the unit opponent-colour vector of each pixel, averaged over 4 x 4
    blocks. Invariant to ``rgb -> a rgb + b`` (a > 0): contrast, saturation and brightness
    changes of torchvision (blends with grey, scaling) keep it unless values clip."""

    in_channels = 3
    out_channels = 2

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.dummy = nn.Conv2d(3, 2, 1)  # unused: gives the trunk a parameter and a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        o = torch.stack([(r - g) / math.sqrt(2), (r + g - 2 * b) / math.sqrt(6)], 1)
        return self.pool(o / o.norm(dim=1, keepdim=True).clamp(min=1e-8))


def hue_model_and_images():
    torch.manual_seed(0)
    model = ProtoPNet(HueTrunk(), n_classes=2, n_prototypes_per_class=1, prototype_dim=4,
                      image_size=16).eval()  # fmt: skip
    colours = torch.tensor([[0.6, 0.35, 0.3], [0.3, 0.45, 0.6], [0.4, 0.55, 0.35]])
    x = colours[:, :, None, None].expand(3, 3, 16, 16).contiguous()  # uniform images
    with torch.no_grad():
        z = model.latent(x)
        model.prototypes[0] = z[0, :, 0, 0, None, None] + 0.01  # near image 0's colour
        model.prototypes[1] = z[1, :, 0, 0, None, None] + 0.01
    return model, x


def test_hue_only_prototype_responds_to_hue_only() -> None:
    model, x = hue_model_and_images()
    perts = ["hue", "shape", "texture", "contrast", "saturation", "brightness"]
    res = prototype_characteristics(model, x, perturbations=perts)
    assert res.delta.shape == (6, 3, 2) and res.similarity.shape == (3, 2)
    imp = dict(zip(perts, res.importance.abs().amax(1).tolist(), strict=True))
    assert imp["hue"] > 0.1
    for other in perts[1:]:
        assert imp[other] < 1e-3, (other, imp)
    # a user-supplied perturbation and a region: only the left half is hue-shifted
    left = torch.zeros(3, 16, 16, dtype=torch.bool)
    left[..., :8] = True
    part = prototype_characteristics(model, x, perturbations=[("hue", lambda t: perturb(t, "hue"))],
                                     region=left)  # fmt: skip
    assert bool((part.delta.abs() <= res.delta[:1].abs() + 1e-6).all())


@pytest.mark.slow  # imports pandas
def test_to_pandas() -> None:
    model, x = hue_model_and_images()
    res = prototype_characteristics(model, x, perturbations=["hue", "contrast"])
    df = res.to_pandas()
    assert len(df) == 4 and set(df.columns) == {"prototype", "perturbation", "importance"}
    assert df["importance"].tolist() == pytest.approx(res.importance.flatten().tolist())
    local = res.to_pandas(per_image=True)
    assert len(local) == 12 and list(local.columns) == [
        "image",
        "prototype",
        "perturbation",
        "delta",
        "orig_similarity",
    ]
    row = local[(local.image == 1) & (local.prototype == 0) & (local.perturbation == "hue")]
    assert float(row["delta"].iloc[0]) == pytest.approx(float(res.delta[0, 1, 0]))


def test_bad_inputs() -> None:
    torch.manual_seed(0)
    model = ProtoPNet(HueTrunk(), n_classes=2, n_prototypes_per_class=1, prototype_dim=4,
                      image_size=16).eval()  # fmt: skip
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        prototype_characteristics(model, torch.full((1, 3, 16, 16), 2.0))
    with pytest.raises(ValueError, match="perturbation must be one of"):
        prototype_characteristics(model, torch.rand(1, 3, 16, 16), perturbations=["blur"])


@pytest.mark.slow  # imports OpenCV (installed with grad-cam in the test extra)
def test_non_local_means_near_opencv() -> None:
    """Measured: on a smooth image with 8-bit noise of std 7.6, OpenCV's
    fastNlMeansDenoisingColored(h=4, hColor=4) leaves a residual std of 4.5, ours 5.1; the
    mean |ours - OpenCV| is 3.3 grey levels where the input differs from OpenCV by 5.0."""
    from _helpers import require_module

    cv2 = require_module("cv2")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    base = np.stack([0.5 + 0.3 * np.sin(xx / 7), 0.4 + 0.3 * np.cos(yy / 9),
                     0.5 + 0.2 * np.sin((xx + yy) / 11)], -1)  # fmt: skip
    u8 = (np.clip(base + 0.03 * rng.standard_normal((64, 64, 3)), 0, 1) * 255).round()
    u8 = u8.astype(np.uint8)
    ref = cv2.fastNlMeansDenoisingColored(u8, None, h=4, hColor=4, templateWindowSize=7,
                                          searchWindowSize=21).astype(float)  # fmt: skip
    x = torch.from_numpy(u8.astype(np.float32) / 255).permute(2, 0, 1)[None]
    ours = non_local_means(x)[0].permute(1, 2, 0).numpy().astype(float) * 255
    u = u8.astype(float)
    assert np.abs(ours - ref).mean() < 0.75 * np.abs(u - ref).mean()
    noise_in, noise_cv, noise_ours = ((a - base * 255).std() for a in (u, ref, ours))
    assert noise_ours < 0.75 * noise_in and noise_ours < 1.25 * noise_cv
