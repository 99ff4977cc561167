"""Deletion/insertion (RISE), pointing game and energy inside a mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
    # image 1's maximum is 2 px from the region along both axes: Chebyshev distance 2,
    # Euclidean sqrt(8) = 2.83
    assert pointing_game(sal, masks, tolerance=2, rule="chebyshev")[:2].tolist() == [1.0, 1.0]
    assert pointing_game(sal, masks, tolerance=1, rule="chebyshev")[1].item() == 0.0
    assert pointing_game(sal, masks, tolerance=2)[1].item() == 0.0  # default: Euclidean
    assert pointing_game(sal, masks, tolerance=3)[1].item() == 1.0
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


def torchray_hit(mask: torch.Tensor, point: tuple[int, int], tolerance: int) -> bool:
    """TorchRay's ``PointingGame.evaluate`` (Zhang et al.), written from its definition: the
    acceptance region is the pixels at squared Euclidean distance < tolerance**2 of the
    point ``(u, v) = (column, row)``; a hit if it meets the mask."""
    h, w = mask.shape
    v, u = torch.meshgrid(
        (torch.arange(h, dtype=torch.float32) - point[1]) ** 2,
        (torch.arange(w, dtype=torch.float32) - point[0]) ** 2,
        indexing="ij",
    )
    return bool((mask & ((v + u) < tolerance**2)).any())


@pytest.mark.parametrize("tolerance", [1, 2, 3, 5, 8])
def test_pointing_game_euclidean_equals_torchray_rule(tolerance: int) -> None:
    g = torch.Generator().manual_seed(tolerance)
    n = 400
    sal = torch.rand(n, 1, 20, 24, generator=g)  # continuous: no ties
    masks = torch.zeros(n, 20, 24, dtype=torch.bool)
    for i in range(n):  # small random boxes: hits, near misses and far misses
        r, c = (
            torch.randint(0, 18, (1,), generator=g).item(),
            torch.randint(0, 22, (1,), generator=g).item(),
        )
        masks[i, r : r + 3, c : c + 2] = True
    ours = pointing_game(sal, masks, tolerance=tolerance)
    ref = []
    for i in range(n):
        row, col = divmod(int(sal[i].flatten().argmax()), 24)
        ref.append(float(torchray_hit(masks[i], (col, row), tolerance)))
    assert ours.tolist() == ref
    assert 0 < sum(ref) < n  # hits and misses both checked
    cheb = pointing_game(sal, masks, tolerance=tolerance, rule="chebyshev")
    assert bool((cheb >= ours).all())  # the square contains the disc
    if tolerance >= 2:
        assert bool((cheb > ours).any())  # ... strictly: the rules differ


def test_pointing_game_ties_take_the_first_pixel_in_row_major_order() -> None:
    sal = torch.zeros(2, 1, 6, 6)
    sal[:, 0, 1, 4] = sal[:, 0, 4, 1] = 1.0  # two tied maxima; (1, 4) comes first
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[0, 1, 4] = True  # around the first: hit
    masks[1, 4, 1] = True  # around the second only: miss
    assert pointing_game(sal, masks).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="rule"):
        pointing_game(sal, masks, rule="manhattan")


def test_deletion_ties_are_broken_by_pixel_index() -> None:
    """A constant map deletes pixels in row-major order (stable sort)."""
    w = torch.zeros(1, 1, 4, 4)
    w[0, 0, 0, 0] = 1.0  # the model reads the first pixel only
    model = LinearEvidence(w * 8).eval()
    x = torch.ones(1, 1, 4, 4)
    c = deletion(model, x, torch.zeros(1, 1, 4, 4), step=1)
    assert c.scores[0, 0] > 0.9 and bool((c.scores[0, 1:] < 0.2).all())  # gone at step 1
    w2 = torch.zeros(1, 1, 4, 4)
    w2[0, 0, 3, 3] = 1.0  # the last pixel: deleted last
    c = deletion(LinearEvidence(w2 * 8).eval(), x, torch.zeros(1, 1, 4, 4), step=1)
    assert bool((c.scores[0, :-1] > 0.9).all()) and c.scores[0, -1] < 0.2


def rise_gkern(klen: int, nsig: float) -> torch.Tensor:
    """RISE's ``gkern`` (eclique/RISE ``evaluation.py``), written out."""
    from scipy.ndimage import gaussian_filter

    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    k = gaussian_filter(inp, nsig)
    kern = np.zeros((3, 3, klen, klen))
    kern[0, 0] = k
    kern[1, 1] = k
    kern[2, 2] = k
    return torch.from_numpy(kern.astype("float32"))


def test_rise_substrate_equals_rise_blur() -> None:
    from interp_lib.baselines.metrics import rise_blur

    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    ref = F.conv2d(x, rise_gkern(11, 5), padding=11 // 2)  # RISE's blur lambda
    torch.testing.assert_close(rise_blur(x), ref, rtol=0, atol=1e-6)
    # not our default "blur": RISE zero-pads (dark border) and its kernel is not a
    # normalised sampled Gaussian
    assert float((gaussian_blur(x) - ref).abs().max()) > 0.05
    model, xs, perfect, _ = toy(n=2)
    ins = insertion(model, xs, perfect, step=16, substrate="rise")
    torch.testing.assert_close(ins.scores[:, 0], model(rise_blur(xs)).softmax(1)[:, 1])
