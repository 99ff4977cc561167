"""Gride and the scale analyses."""

import math

import pytest
import torch

from interp_lib.datasets import gaussian, swiss_roll
from interp_lib.id import block_analysis, decimation, gride, gride_mle, nearest_neighbors, twonn_mle


def test_gride_1_2_is_the_twonn_likelihood():
    X = gaussian(1000, 4, seed=0, dtype=torch.float64)
    d = nearest_neighbors(X, k=2).distances
    mu = d[:, 1] / d[:, 0]
    n = mu.numel()
    # DADApy's convention: (n - 1) / sum log mu, the unbiased TwoNN MLE, exactly
    assert gride_mle(mu, 1, 2)[0] == pytest.approx((n - 1) / float(torch.log(mu).sum()), rel=1e-9)
    assert gride_mle(mu, 1, 2)[0] == pytest.approx(twonn_mle(mu)[0], rel=1e-9)
    assert gride(X).dimensions[0].item() == pytest.approx(gride_mle(mu, 1, 2)[0], rel=1e-12)


@pytest.mark.parametrize("n1", [2, 4, 8])
def test_gride_recovers_d_from_its_own_model(n1):
    # sample the ratio r_{2 n1} / r_{n1} of a homogeneous Poisson process in d dims:
    # volumes to successive neighbours are sums of exponentials
    d, n = 5.0, 20000
    g = torch.Generator().manual_seed(n1)
    e = torch.empty(n, 2 * n1, dtype=torch.float64).exponential_(generator=g)
    v = torch.cumsum(e, 1)
    mu = (v[:, 2 * n1 - 1] / v[:, n1 - 1]) ** (1 / d)
    est, se = gride_mle(mu, n1, 2 * n1)
    assert abs(est - d) < 4 * se
    assert se < 0.1


def test_gride_ranks_and_scales():
    res = gride(gaussian(2000, 3, 8, seed=1), max_rank=32)
    assert res.n1.tolist() == [1, 2, 4, 8, 16] and res.n2.tolist() == [2, 4, 8, 16, 32]
    assert bool((res.scales[1:] > res.scales[:-1]).all())
    assert bool((res.dimensions - 3).abs().max() < 0.4)


def test_gride_is_robust_to_noise_at_large_scale():
    X = swiss_roll(3000, noise=0.3, seed=0)
    res = gride(X, max_rank=64)
    assert res.dimensions[0] > 2.5  # the smallest scale sees the 3-D noise
    assert abs(res.dimensions[-1].item() - 2) < abs(res.dimensions[0].item() - 2)


def test_block_analysis_uses_every_point():
    X = gaussian(1000, 5, seed=0)
    res = block_analysis(X, min_size=100)
    assert res.sizes.tolist() == [1000, 500, 250, 125]
    assert res.n_subsets.tolist() == [1, 2, 4, 8]
    assert res.errors[0] == 0 and bool((res.errors[1:] > 0).all())
    assert bool(((res.dimensions - 5).abs() < 0.8).all())
    assert bool((res.scales[1:] > res.scales[:-1]).all())  # fewer points, larger distances


def test_decimation_single_subset():
    res = decimation(gaussian(1000, 5, seed=0), min_size=100)
    assert res.n_subsets.tolist() == [1, 1, 1, 1]
    assert bool((res.errors == 0).all())


def test_noise_inflates_the_small_scale_estimate():
    res = block_analysis(swiss_roll(4000, noise=0.5, seed=0), min_size=60)
    assert res.dimensions[0] > 2.5  # all points: noise-dominated scale
    assert res.dimensions[-1] < res.dimensions[0]


def test_scaling_errors():
    with pytest.raises(ValueError, match="min_size"):
        block_analysis(gaussian(10, 2), min_size=20)
    assert math.isfinite(block_analysis(gaussian(40, 2), min_size=20).dimensions[0].item())
