"""ProtoPNet as a pixel attribution, and prototype consistency / stability / purity."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_lib.baselines import attribute, prototype_attribution
from interp_lib.protopnet import ProtoPNet
from interp_lib.protopnet.prototype_metrics import (
    box_part_presence,
    consistency,
    prototype_part_metrics,
    purity,
    stability,
)


def tiny_protopnet(seed: int = 0) -> ProtoPNet:
    torch.manual_seed(seed)
    return ProtoPNet(
        "small_cnn",
        n_classes=3,
        n_prototypes_per_class=[2, 3, 1],
        prototype_dim=4,
        image_size=16,
        backbone_kwargs={"widths": (4, 4), "batch_norm": False},
    ).eval()


def test_prototype_map_matches_brute_force() -> None:
    net = tiny_protopnet()
    with torch.no_grad():
        net.last_layer.weight.add_(0.3 * torch.randn_like(net.last_layer.weight))
    x = torch.rand(3, 3, 16, 16)
    target = torch.tensor([1, 0, 2])
    out = net.forward_all(x)
    for mode in ("map", "box"):
        got = prototype_attribution(net, x, target, mode=mode)
        assert got.shape == (3, 1, 16, 16)
        for n in range(3):
            c = int(target[n])
            ref = torch.zeros(16, 16)
            for j in range(net.n_prototypes):
                if net.prototype_classes[j] != c:
                    continue
                s = out.similarities[n, j]
                up = F.interpolate(
                    s[None, None], size=(16, 16), mode="bicubic", align_corners=False
                )[0, 0]
                if mode == "box":
                    thr = torch.quantile(up.flatten().double(), 0.95).float()
                    rows = (up >= thr).any(1).nonzero().flatten()
                    cols = (up >= thr).any(0).nonzero().flatten()
                    up = torch.zeros(16, 16)
                    up[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = 1.0
                ref += up * s.max() * net.last_layer.weight[c, j]
            torch.testing.assert_close(got[n, 0], ref.detach(), rtol=1e-5, atol=1e-5)
    # same through attribute(), predicted class by default
    pred = out.logits.argmax(1)
    torch.testing.assert_close(
        attribute(net, x, method="prototype_box"), prototype_attribution(net, x, pred, mode="box")
    )


def test_prototype_attribution_errors() -> None:
    net, x = tiny_protopnet(), torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="mode must be one of"):
        prototype_attribution(net, x, 0, mode="boxes")
    with pytest.raises(ValueError, match="3 classes"):
        prototype_attribution(net, x, 3)
    with pytest.raises(TypeError, match="needs a ProtoPNet"):
        prototype_attribution(nn.Conv2d(3, 1, 1), x, 0)


def test_box_part_presence_matches_loops() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 4, 12, 10, generator=g) > 0.93
    loc = torch.stack(
        [torch.randint(0, 12, (3, 5), generator=g), torch.randint(0, 10, (3, 5), generator=g)], -1
    )
    for box, overlap in ((4, 0.0), (5, 0.1), (1, 0.0)):
        got = box_part_presence(loc, masks, box_size=box, overlap=overlap)
        half = box // 2
        for n in range(3):
            for p in range(5):
                r, c = loc[n, p].tolist()
                r0, c0 = max(0, r - half), max(0, c - half)
                r1, c1 = min(12, r - half + box), min(10, c - half + box)
                inside = masks[n, :, r0:r1, c0:c1].flatten(1).sum(1).double()
                area = (r1 - r0) * (c1 - c0)
                assert got[n, p].tolist() == (inside > overlap * area).tolist()


def test_consistency_stability_purity_known_values() -> None:
    # 10 images of class 0, 10 of class 1; prototypes: 0, 1 -> class 0, 2 -> class 1,
    # 3 -> class 2 (no images); 3 parts.
    labels = torch.tensor([0] * 10 + [1] * 10)
    classes = torch.tensor([0, 0, 1, 2])
    pres = torch.zeros(20, 4, 3, dtype=torch.bool)
    pres[:9, 0, 1] = True  # 9/10: consistent
    pres[:7, 1, 2] = True  # 7/10: not
    pres[10:18, 2, 0] = True  # 8/10: consistent (threshold is inclusive)
    cons = consistency(pres, labels, classes)
    assert cons.per_prototype[:3].tolist() == [1.0, 0.0, 1.0] and torch.isnan(cons.per_prototype[3])
    assert cons.score == pytest.approx(2 / 3)
    assert consistency(pres, labels, classes, threshold=0.9).per_prototype[:3].tolist() == [
        1.0,
        0.0,
        0.0,
    ]
    noisy = pres.clone()
    noisy[:2, 0, 1] = False  # 2 of prototype 0's images change
    noisy[12, 2, 2] = True  # 1 of prototype 2's
    noisy[0, 2, 0] = True  # class-1 prototype on a class-0 image: not counted
    stab = stability(pres, noisy, labels, classes)
    assert stab.per_prototype[:3].tolist() == pytest.approx([0.8, 1.0, 0.9])
    # Purity: prototype 0's top-4 images are 6..9 -> parts {1,1,1,none} -> 3/4.
    act = torch.zeros(20, 4)
    act[6:10, 0] = torch.tensor([4.0, 3.0, 2.0, 1.0])
    pur = purity(pres, act, k=4)
    assert pur.per_prototype[0].item() == pytest.approx(0.75)
    pur_own = purity(pres, act, k=4, labels=labels, prototype_classes=classes)
    assert torch.isnan(pur_own.per_prototype[3])  # no own-class image


@dataclass
class _Out:
    similarities: torch.Tensor


def peak_at_part(masks: torch.Tensor) -> ProtoPNet:
    """A ProtoPNet (2 classes x 1 prototype) whose prototype j always fires on part j
    (its mask's centre): its ``forward_all`` is replaced."""
    torch.manual_seed(0)
    net = ProtoPNet(
        "small_cnn", n_classes=2, n_prototypes_per_class=1, prototype_dim=4, image_size=24,
        backbone_kwargs={"widths": (4,), "batch_norm": False},
    ).eval()  # fmt: skip

    def forward_all(x: torch.Tensor) -> _Out:
        m = masks[: len(x)].float()
        return _Out(similarities=F.avg_pool2d(m, 3, stride=1, padding=1) + 1e-3 * x[:, :2])

    net.forward_all = forward_all
    return net


def test_prototype_part_metrics_end_to_end() -> None:
    g = torch.Generator().manual_seed(0)
    n, size = 8, 24
    masks = torch.zeros(n, 2, size, size, dtype=torch.bool)
    for i in range(n):
        r, c = torch.randint(3, 18, (2,), generator=g).tolist()
        masks[i, 0, r : r + 3, c : c + 3] = True
        masks[i, 1, (r + 10) % 20 : (r + 10) % 20 + 3, 2:5] = True
    fake = peak_at_part(masks)
    labels = torch.tensor([0, 1] * 4)
    x = torch.rand(n, 3, size, size, generator=g)
    res = prototype_part_metrics(fake, x, masks, labels, box_size=3, batch_size=n, k=3)
    assert res["consistency"].score == 1.0 and res["purity"].score == 1.0
    assert res["stability"].score == 1.0  # clipped noise x 1e-3 cannot move the peak
    real = prototype_part_metrics(
        tiny_protopnet().eval(), x[:, :, :16, :16], masks[:, :, :16, :16], labels, noise_std=0.0
    )
    assert real["stability"].score == 1.0  # no noise: nothing changes
    assert 0.0 <= real["consistency"].score <= 1.0 and 0.0 <= real["purity"].score <= 1.0
    with pytest.raises(ValueError, match="part_masks"):
        prototype_part_metrics(fake, x, masks[:, 0], labels)


def test_attribute_passes_interpolate_mode_to_prototype_methods() -> None:
    """attribute(..., interpolate_mode=...) used to be swallowed for the prototype methods
    (they always used bicubic); the default is still ProtoPNet's bicubic."""
    net, x = tiny_protopnet(), torch.rand(2, 3, 16, 16)
    for mode in ("map", "box"):
        method = "prototype" if mode == "map" else "prototype_box"
        torch.testing.assert_close(
            attribute(net, x, 1, method=method),
            prototype_attribution(net, x, 1, mode=mode, interpolate_mode="bicubic"),
        )
        torch.testing.assert_close(
            attribute(net, x, 1, method=method, interpolate_mode="nearest"),
            prototype_attribution(net, x, 1, mode=mode, interpolate_mode="nearest"),
        )
    with pytest.raises(ValueError, match=r"percentile must lie in \[0, 100\]"):
        attribute(net, x, 1, method="prototype_box", percentile=101)
