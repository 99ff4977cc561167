"""ROAD (Rong et al. 2022): known answers, tie handling, and pytorch-grad-cam's implementation.

Cross-check (pytorch-grad-cam >= 1.5, ``pytorch_grad_cam/metrics/road.py``): with the same
seed our imputed images equal ``NoisyLinearImputer``'s to 1e-6 (measured: 6e-8, one
float32 ulp, from the order of scipy's sparse solve), and the MoRF/LeRF score changes
equal ``ROADMostRelevantFirst`` / ``ROADLeastRelevantFirst`` to 1e-6 (measured: 3e-8 on
probabilities, 1e-8 on logits). Their percentile ``p`` removes ``100 - p`` %: our
percentages run in the reverse order so that the noise draws line up.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import attribution_cnn, require_module
from torch import nn

from interp_lib.baselines import noisy_linear_imputation, road


class RegionReader(nn.Module):
    """Two classes; logit_1 - logit_0 = 8 * (mean of channel 0 over ``region`` - 0.5)."""

    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 8 * ((x[:, 0] * self.region).sum((1, 2)) / self.region.sum() - 0.5)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def region_world(n: int = 4):
    g = torch.Generator().manual_seed(0)
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[4:9, 6:12] = True
    x = 0.1 * torch.rand(n, 2, 16, 16, generator=g)
    x[:, 0][:, region] = 1.0  # a bright object the model reads; dark background
    perfect = region.float().expand(n, 1, 16, 16) + 0.01 * torch.rand(n, 1, 16, 16, generator=g)
    random = torch.rand(n, 1, 16, 16, generator=g)
    return RegionReader(region).eval(), x, perfect, random


@pytest.mark.slow  # 216 sparse solves (~1.5 s)
def test_road_ranks_perfect_random_inverted() -> None:
    model, x, perfect, random = region_world()
    assert bool((model(x).argmax(1) == 1).all())
    r = {k: road(model, x, s) for k, s in
         {"perfect": perfect, "random": random, "inverted": -perfect}.items()}  # fmt: skip
    morf = {k: v.morf_mean for k, v in r.items()}
    lerf = {k: v.lerf_mean for k, v in r.items()}
    assert bool((morf["perfect"] < morf["random"]).all())
    assert bool((morf["random"] < morf["inverted"]).all())
    assert bool((lerf["perfect"] > lerf["random"]).all())
    assert bool((lerf["random"] > lerf["inverted"]).all())
    assert bool((r["perfect"].combined > r["random"].combined).all())
    # removing 10 % of the most relevant pixels (the object is 30/256 = 12 %) already
    # drops the probability; the least relevant 50 % (background) leave it unchanged
    res = r["perfect"]
    assert bool((res.morf[:, 0] < res.original - 0.2).all())
    torch.testing.assert_close(res.lerf[:, 4], res.original, atol=1e-3, rtol=0)
    assert res.morf.shape == res.lerf.shape == (4, 9) and res.percentages[0] == 10


def test_imputation_is_the_neighbour_mean_and_keeps_known_pixels() -> None:
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    removed = torch.zeros(1, 6, 6, dtype=torch.bool)
    removed[0, 2, 3] = True  # one interior pixel: the weighted mean of its 8 neighbours
    out = noisy_linear_imputation(x, removed, noise=0.0)
    nb = x[0, :, 1:4, 2:5]
    w = torch.tensor([[1, 2, 1], [2, 0, 2], [1, 2, 1]], dtype=x.dtype) / 12
    torch.testing.assert_close(out[0, :, 2, 3], (nb * w).sum((1, 2)))
    keep = ~removed[0]
    assert torch.equal(out[0][:, keep], x[0][:, keep])
    # a removed constant region inside a constant image stays constant (no noise)
    c = torch.full((1, 1, 8, 8), 0.3)
    hole = torch.zeros(1, 8, 8, dtype=torch.bool)
    hole[0, 2:6, 2:6] = True
    torch.testing.assert_close(noisy_linear_imputation(c, hole, noise=0.0), c)
    # noise: seeded, and of the asked size
    a = noisy_linear_imputation(c, hole, noise=0.5, seed=3)
    assert torch.equal(a, noisy_linear_imputation(c, hole, noise=0.5, seed=3))
    assert 0.2 < float((a - c)[0, 0][hole[0]].std()) < 1.0


def test_ties_threshold_removes_all_tied_rank_removes_exactly() -> None:
    model, x, _, _ = region_world(2)
    flat = torch.zeros(2, 1, 16, 16)
    flat[:, :, :4] = 1.0  # 64 of 256 pixels at 1, the rest tied at 0
    # threshold: MoRF at 10 % removes every pixel >= the 90th percentile (1.0): 64 pixels;
    # at 80 % the threshold is 0 and every pixel would go: refused (nothing to impute from)
    road(model, x, flat, percentages=(10,), orders=("morf",))
    with pytest.raises(ValueError, match="every pixel of an image is removed"):
        road(model, x, flat, percentages=(80,), orders=("morf",))
    # rank: exactly round(q/100 * 256) pixels, ties by pixel index: at 80 % the first
    # 205 pixels in row-major order (rows 0-12 and 10 pixels of row 12)
    res = road(model, x, flat, percentages=(80,), orders=("morf",), ties="rank", noise=0.0)
    assert res.lerf is None and res.morf.shape == (2, 1)
    from interp_lib.baselines.remove_debias import _removed_masks

    gone = _removed_masks(flat, 80, "morf", "rank")
    assert int(gone[0].sum()) == 205 and bool(gone[0].flatten()[:205].all())
    gone = _removed_masks(flat, 10, "lerf", "rank")  # least relevant: the zeros, by index
    assert int(gone[0].sum()) == 26 and bool(gone[0, 4, :16].all()) and not gone[0, :4].any()


def test_bad_arguments() -> None:
    model, x, perfect, _ = region_world(1)
    for bad in ((0,), (100,), ()):
        with pytest.raises(ValueError, match="percentages"):
            road(model, x, perfect, percentages=bad)
    with pytest.raises(ValueError, match="ties"):
        road(model, x, perfect, ties="random")
    with pytest.raises(ValueError, match="orders"):
        road(model, x, perfect, orders=("forward",))
    with pytest.raises(ValueError, match="removed must have shape"):
        noisy_linear_imputation(x, torch.zeros(1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="saliency"):
        road(model, x, perfect[:, :, :8])


# imports pytorch-grad-cam (OpenCV); its np.argwhere on tensors warns under NumPy 2
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")
@pytest.mark.parametrize("channels", [3, 1])
def test_imputation_matches_pytorch_grad_cam(channels: int) -> None:
    road_ref = require_module("pytorch_grad_cam.metrics.road")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(channels, 12, 12, generator=g)
    cam = torch.rand(12, 12, generator=g)
    keep = cam < float(np.percentile(cam.numpy(), 70))
    torch.manual_seed(3)
    ref = road_ref.NoisyLinearImputer()(x, keep.float())
    ours = noisy_linear_imputation(x[None], ~keep[None], seed=3)[0]
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")
@pytest.mark.parametrize("score", ["probability", "logit"])
def test_road_matches_pytorch_grad_cam(score: str) -> None:
    road_ref = require_module("pytorch_grad_cam.metrics.road")
    targets_mod = require_module("pytorch_grad_cam.utils.model_targets")
    net = attribution_cnn()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 12, 12, generator=g)
    cams = torch.rand(4, 12, 12, generator=g)
    y = net(x).argmax(1)
    kind = (
        targets_mod.ClassifierOutputSoftmaxTarget
        if score == "probability"
        else targets_mod.ClassifierOutputTarget
    )
    targets = [kind(int(c)) for c in y]
    ps = list(range(10, 100, 10))
    # their percentile p removes (100 - p) %: our percentages in reverse order draw the
    # imputation noise in the same order as their loop over p
    ours = road(net, x, cams, y, seed=7, score=score, percentages=[100 - p for p in ps])
    for order, cls in (("morf", road_ref.ROADMostRelevantFirst),
                       ("lerf", road_ref.ROADLeastRelevantFirst)):  # fmt: skip
        torch.manual_seed(7)
        ref = np.stack([cls(p)(x, cams.numpy(), targets, net) for p in ps], 1)  # (N, P)
        mine = (getattr(ours, order) - ours.original[:, None]).numpy()
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-6)
    torch.manual_seed(7)
    rm = road_ref.ROADMostRelevantFirstAverage(ps)(x, cams.numpy(), targets, net)
    torch.manual_seed(7)
    rl = road_ref.ROADLeastRelevantFirstAverage(ps)(x, cams.numpy(), targets, net)
    np.testing.assert_allclose(ours.combined.numpy(), (rl - rm) / 2, rtol=0, atol=1e-6)
