"""Deletion/insertion (RISE), pointing game and energy inside a mask."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp_lib.baselines import deletion, energy_in_mask, insertion, pointing_game
from interp_lib.baselines.metrics import gaussian_blur


class LinearEvidence(nn.Module):
    """Two classes; logit_1 - logit_0 = sum(w * x) - 2: pixel (i, j) contributes w x."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x * self.w).sum((1, 2, 3)) - 2.0
        return torch.stack([torch.zeros_like(z), z], dim=1)


def toy(n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(1, 1, 16, 16, generator=g) ** 3
    x = torch.rand(n, 1, 16, 16, generator=g)
    w = w * 6.0 / (x * w).sum((1, 2, 3)).mean()  # full image: logit gap ~ 4 (p ~ 0.98)
    model = LinearEvidence(w).eval()
    perfect = x * w
    random = torch.rand(n, 1, 16, 16, generator=g)
    return model, x, perfect, random


def test_deletion_and_insertion_rank_perfect_random_inverted() -> None:
    model, x, perfect, random = toy()
    assert bool((model(x).argmax(1) == 1).all())
    d = {k: deletion(model, x, s, step=8).auc for k, s in
         {"perfect": perfect, "random": random, "inverted": -perfect}.items()}  # fmt: skip
    i = {k: insertion(model, x, s, step=8, substrate="zeros").auc for k, s in
         {"perfect": perfect, "random": random, "inverted": -perfect}.items()}  # fmt: skip
    # Per image: the perfect order removes the most evidence at every step.
    assert bool((d["perfect"] < d["random"]).all()) and bool((d["random"] < d["inverted"]).all())
    assert bool((i["perfect"] > i["random"]).all()) and bool((i["random"] > i["inverted"]).all())
    assert float(d["inverted"].mean() - d["perfect"].mean()) > 0.3


def test_curve_endpoints_and_trapezoid() -> None:
    model, x, perfect, _ = toy(n=3)
    c = deletion(model, x, perfect, step=10)
    n_steps = -(-256 // 10)
    assert c.scores.shape == (3, n_steps + 1) and c.fractions.shape == (n_steps + 1,)
    assert c.fractions[0] == 0 and c.fractions[-1] == 1
    p = model(x).softmax(1)[:, 1]
    torch.testing.assert_close(c.scores[:, 0], p)
    p0 = model(torch.zeros_like(x)).softmax(1)[:, 1]
    torch.testing.assert_close(c.scores[:, -1], p0)
    f, s = c.fractions.double(), c.scores.double()
    manual = ((s[:, 1:] + s[:, :-1]) / 2 * (f[1:] - f[:-1])).sum(1)
    torch.testing.assert_close(c.auc.double(), manual, rtol=1e-6, atol=1e-7)
    ins = insertion(model, x, perfect, step=10)  # default substrate: blurred image
    torch.testing.assert_close(ins.scores[:, -1], p)
    torch.testing.assert_close(ins.scores[:, 0], model(gaussian_blur(x)).softmax(1)[:, 1])


def test_batching_and_explicit_target_do_not_change_scores() -> None:
    model, x, perfect, _ = toy(n=4)
    a = deletion(model, x, perfect[:, 0], step=16, batch_size=5)  # (N, H, W) maps accepted
    b = deletion(model, x, perfect, step=16, batch_size=1000)
    torch.testing.assert_close(a.scores, b.scores)
    c = deletion(model, x, perfect, 0, step=16)  # tracks class 0 instead
    torch.testing.assert_close(c.scores, 1 - b.scores)
    assert c.target.tolist() == [0, 0, 0, 0]


def test_constant_map_blur_is_identity_and_shape_errors() -> None:
    x = torch.full((2, 3, 9, 9), 0.7)
    torch.testing.assert_close(gaussian_blur(x), x)
    model, xs, perfect, _ = toy(n=2)
    with pytest.raises(ValueError, match=r"expected \(2, 1, 16, 16\)"):
        deletion(model, xs, perfect[:, :, :8], step=4)
    with pytest.raises(ValueError, match="substrate must be"):
        insertion(model, xs, perfect, substrate="noise")


def test_pointing_game_and_energy() -> None:
    sal = torch.zeros(3, 1, 8, 8)
    sal[0, 0, 2, 2] = 1.0  # inside
    sal[1, 0, 6, 6] = 1.0  # outside, 2 px from the region
    sal[2, 0, 0, 0] = 1.0
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:2, 1:5, 1:5] = True  # image 2: empty mask
    hits = pointing_game(sal, masks)
    assert hits[:2].tolist() == [1.0, 0.0] and torch.isnan(hits[2])
    assert pointing_game(sal, masks, tolerance=2)[:2].tolist() == [1.0, 1.0]
    assert pointing_game(sal, masks, tolerance=1)[1].item() == 0.0
    s = torch.zeros(1, 1, 4, 4)
    s[0, 0, 0, 0], s[0, 0, 3, 3], s[0, 0, 1, 1] = 3.0, 1.0, -5.0
    m = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    m[0, 0, :2, :2] = True
    assert energy_in_mask(s, m).item() == pytest.approx(0.75)
    assert energy_in_mask(s, m, positive=False).item() == pytest.approx(8 / 9)
    assert torch.isnan(energy_in_mask(torch.zeros(1, 1, 4, 4), m)).all()
    with pytest.raises(ValueError, match="part masks"):
        pointing_game(sal, torch.zeros(3, 2, 8, 8, dtype=torch.bool))


def test_keypoint_and_box_masks() -> None:
    from interp_lib.baselines.masks import boxes_to_region_masks, keypoints_to_masks

    kp = torch.tensor([[[2.4, 3.7, 1.0], [5.0, 5.0, 0.0], [-3.0, 1.0, 1.0]]])
    m = keypoints_to_masks(kp, (6, 8))
    assert m.shape == (1, 3, 6, 8)
    assert m[0, 0].nonzero().tolist() == [[3, 2]]  # row = floor(y), col = floor(x)
    assert not m[0, 1].any() and not m[0, 2].any()  # invisible, outside the image
    disk = keypoints_to_masks(kp, (6, 8), radius=1.0)
    assert int(disk[0, 0].sum()) == 5
    box = boxes_to_region_masks(torch.tensor([[1.0, 2.0, 3.0, 2.0]]), (5, 6))
    assert box[0].nonzero().tolist() == [[r, c] for r in (2, 3) for c in (1, 2, 3)]
    same = boxes_to_region_masks(torch.tensor([[1.0, 2.0, 4.0, 4.0]]), (5, 6), box_format="xyxy")
    assert torch.equal(box, same)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_maps_are_refused(bad: float) -> None:
    """A NaN/inf map has no pixel order and no maximum: refused, not scored."""
    model, x, perfect, _ = toy(n=2)
    sal = perfect.clone()
    sal[1, 0, 3, 4] = bad
    for curve in (deletion, insertion):
        with pytest.raises(ValueError, match=r"NaN or infinity in 1 of its 2 maps"):
            curve(model, x, sal, step=8)
    masks = torch.ones(2, 16, 16, dtype=torch.bool)
    for score in (pointing_game, energy_in_mask):
        with pytest.raises(ValueError, match="NaN or infinity"):
            score(sal, masks)


def test_bad_tolerance_step_and_batch_size_are_refused() -> None:
    sal = torch.rand(2, 1, 8, 8)
    masks = torch.ones(2, 8, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match="tolerance must be at least 0, got -3"):
        pointing_game(sal, masks, tolerance=-3)
    with pytest.raises(TypeError, match="tolerance must be an integer"):
        pointing_game(sal, masks, tolerance=1.5)
    model, x, perfect, _ = toy(n=2)
    with pytest.raises(ValueError, match="step must be at least 1"):
        deletion(model, x, perfect, step=0)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        insertion(model, x, perfect, batch_size=0)
    with pytest.raises(ValueError, match=r"inputs is empty"):
        deletion(model, x[:0], perfect[:0])
    with pytest.raises(ValueError, match="substrate tensor must broadcast"):
        deletion(model, x, perfect, substrate=torch.zeros(3, 3))
