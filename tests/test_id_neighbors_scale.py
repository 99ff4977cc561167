"""Neighbours exact at every finite scale (issue 10, item 1).

The search rescales by an exact power of two and certifies its float32/float64 result
with a rounding-error bound, so the neighbours and the TwoNN estimate of ``s * X`` are
those of ``X`` for any finite scale ``s``, including scales where ``|x|^2`` under- or
overflows.
"""

import math

import pytest
import torch

from interp_lib.id import nearest_neighbors, neighbors, twonn


def robust_brute(X: torch.Tensor, k: int):
    """Float64 brute force with per-pair rescaling (no under/overflow of the squares)."""
    X = X.to(torch.float64)
    diff = X[:, None, :] - X[None, :, :]
    top = diff.abs().amax(-1, keepdim=True)
    safe = torch.where(top > 0, top, torch.ones_like(top))
    D = (diff / safe).square().sum(-1).sqrt() * safe.squeeze(-1)
    D.fill_diagonal_(float("inf"))
    d, i = torch.sort(D, dim=1, stable=True)
    return d[:, :k], i[:, :k], D


@pytest.fixture(autouse=True)
def project_small_data(monkeypatch):
    """Let small test data take the projected search (by default only N >= 4096 does)."""
    monkeypatch.setattr(neighbors, "_MIN_ROWS_PROJECTED", 0)


def data(kind: str, dtype: torch.dtype, n: int = 300) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    if kind == "full":  # full rank, searched in the full space
        X = torch.randn(n, 5, generator=g, dtype=torch.float64)
    else:  # rank 4 in 40 dimensions, searched through the projection
        X = torch.randn(n, 4, generator=g, dtype=torch.float64) @ torch.randn(
            4, 40, generator=g, dtype=torch.float64
        )
    return X.to(dtype)


F32_SCALES = [1e-30, 1e-25, 1e-22, 1e-12, 1.0, 1e12, 1e20, 1e25, 1e30]
F64_SCALES = [1e-300, 1e-200, 1e-170, 1e-50, 1.0, 1e50, 1e160, 1e200, 1e300]
# the failures reported in issue 10 run in the fast suite, the whole grid in the slow one
FAST = {
    (torch.float32, 1e-25),
    (torch.float32, 1e20),
    (torch.float64, 1e-170),
    (torch.float64, 1e160),
}
GRID = [
    pytest.param(dt, s, marks=() if (dt, s) in FAST else pytest.mark.slow)
    for dt, scales in ((torch.float32, F32_SCALES), (torch.float64, F64_SCALES))
    for s in scales
]


@pytest.mark.parametrize("kind", ["full", "low"])
@pytest.mark.parametrize(("dtype", "scale"), GRID)
def test_same_neighbours_and_id_at_every_scale(kind, dtype, scale):
    X = data(kind, dtype)
    Xs = (X.to(torch.float64) * scale).to(dtype)
    unit = (Xs.to(torch.float64) / scale).to(dtype)  # the same points at unit scale
    d, i = nearest_neighbors(Xs, k=3)
    du, iu = nearest_neighbors(unit, k=3)
    assert torch.equal(i, iu)
    torch.testing.assert_close(d / scale, du, rtol=1e-6, atol=0)
    assert bool((d > 0).all())  # no spurious duplicates
    bd, _, D = robust_brute(Xs, 3)
    torch.testing.assert_close(d, bd, rtol=1e-12, atol=0)
    torch.testing.assert_close(D.gather(1, i), d, rtol=1e-12, atol=0)
    est = twonn(Xs).dimension
    assert est == pytest.approx(twonn(unit).dimension, rel=1e-6)
    assert math.isfinite(est)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("j", [-140, -100, 9, 100])
def test_power_of_two_scaling_is_bit_exact(dtype, j):
    if dtype == torch.float32 and j < -100:
        pytest.skip("float32 data would be subnormal")
    X = data("low", dtype, n=200)
    d, i = nearest_neighbors(X, k=2)
    ds, i_s = nearest_neighbors(X * 2.0**j, k=2)
    assert torch.equal(i, i_s)
    assert torch.equal(ds, d * 2.0**j)


def test_float32_values_that_overflow_when_squared():
    X = data("full", torch.float32) * 3e37  # |x|^2 ~ 1e75 is not a float32
    assert not bool(torch.isfinite(X * X).all())
    d, i = nearest_neighbors(X, k=2)
    bd, _, D = robust_brute(X, 2)
    torch.testing.assert_close(d, bd, rtol=1e-12, atol=0)
    torch.testing.assert_close(D.gather(1, i), d, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("dtype", "big", "small"),
    [(torch.float32, 1e30, 1e-30), (torch.float64, 1e150, 1e-150), (torch.float64, 1e3, 1e-3)],
)
def test_mixed_huge_and_tiny_rows(dtype, big, small):
    # rows at two extreme scales: the tiny rows collapse to one point in any rounded
    # search around the huge ones; their exact neighbours are still found
    g = torch.Generator().manual_seed(1)
    A = torch.randn(60, 6, generator=g, dtype=torch.float64) * big
    B = torch.randn(60, 6, generator=g, dtype=torch.float64) * small
    X = torch.cat([A, B])[torch.randperm(120, generator=g)].to(dtype)
    d, i = nearest_neighbors(X, k=3, chunk_size=32)
    bd, _, D = robust_brute(X, 3)
    torch.testing.assert_close(d, bd, rtol=1e-12, atol=0)
    torch.testing.assert_close(D.gather(1, i), d, rtol=1e-12, atol=0)
    assert bool((d > 0).all())


def test_subnormal_float64_differences():
    # points that differ by ~1e-310 (subnormal) around 0: squares underflow to 0
    X = torch.tensor([[0.0], [3e-310], [7e-310], [1.5e-309]], dtype=torch.float64)
    d, _ = nearest_neighbors(X, k=1)
    bd, _, _ = robust_brute(X, 1)
    torch.testing.assert_close(d, bd, rtol=1e-12, atol=0)
    assert bool((d > 0).all())
