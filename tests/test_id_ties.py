"""Ties and duplicates judged up to the float64 rounding of the distances (issue 21, item 7).

Points of a lattice are all ties at any spacing: at 1 or 0.125 the float64 distances are
exactly equal, at 0.1, 0.3 or 0.7 they differ by a few units of rounding, which before
gave ratios of 1 + 1e-15 and a "dimension" of 1e15. Data without such near-ties must give
bit-identical results to the exact rule (what interp_lib computed before).
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from interp_lib.datasets import gaussian, hypercube, sphere, swiss_roll
from interp_lib.id import block_analysis, decimation, gride, nearest_neighbors, twonn, twonn_ls
from interp_lib.id._ratios import keep_mask, ratio_table, rounding_bound

SPACINGS = [1.0, 0.125, 0.1, 0.3, 0.7, 1e-7, 3.3e5]


def lattice(n: int, dim: int, spacing: float, offset: float = 0.0) -> np.ndarray:
    g = np.array(list(itertools.product(range(n), repeat=dim)), dtype=np.float64)
    return g * spacing + offset


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("n, dim", [(20, 2), (8, 3), (5, 4)])
def test_a_lattice_is_all_ties_at_any_spacing(n, dim, spacing):
    X = lattice(n, dim, spacing)
    with pytest.raises(ValueError, match=f"only 0 of {n**dim} points are usable.*ties"):
        twonn(X)  # spacing 0.1: 7.5e14 before
    with pytest.raises(ValueError, match="degenerate"):
        gride(X, max_rank=2)


@pytest.mark.parametrize("spacing", [0.1, 0.3, 0.7])
def test_a_shifted_or_rotated_lattice_is_all_ties(spacing):
    X = lattice(20, 2, spacing, offset=1000.0)
    with pytest.raises(ValueError, match="only 0 of 400"):
        twonn(X)
    theta = 0.3
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    with pytest.raises(ValueError, match="only 0 of 400"):
        twonn(lattice(20, 2, spacing) @ R.T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = block_analysis(lattice(20, 2, spacing), min_size=50)
    # the whole lattice has no usable point (before: a row of 1e14 at 400 points)
    assert res.sizes.tolist() == [200, 100, 50] and bool((res.dimensions < 5).all())


def test_a_lattice_with_a_few_random_points_drops_the_lattice():
    rng = np.random.default_rng(0)
    X = np.vstack([lattice(10, 2, 0.1), rng.uniform(5, 10, (200, 2))])  # apart
    with pytest.warns(UserWarning, match="ties"):
        res = twonn(X)
    assert res.n_dropped == 100 and res.n_used == 200 and res.dimension < 5  # 1e14 before


def test_near_duplicates_at_rounding_level_are_duplicates():
    X = np.array([[0.1 + 0.2, 1.0], [0.3, 1.0], [0.0, 0.0], [2.0, 0.5], [1.0, 3.0], [4.0, 1.0]])
    t = ratio_table(nearest_neighbors(X, 2).distances, points=torch.from_numpy(X))
    assert t.n_duplicates == 2  # 5.6e-17 apart: the same point up to rounding


def _exact_rule(X: torch.Tensor, n1: int = 1, n2: int = 2) -> torch.Tensor:
    """The ratios under exact comparisons (interp_lib's rule before the tolerance)."""
    d = nearest_neighbors(X, n2).distances
    r1, r2 = d[:, n1 - 1], d[:, n2 - 1]
    keep = (r1 > 0) & (r2 > r1)
    return r2[keep] / r1[keep]


CLOUDS = {
    "gaussian64": lambda: gaussian(1500, 5, 12, seed=1, dtype=torch.float64),
    "gaussian32": lambda: gaussian(1500, 5, 12, seed=2),
    "sphere": lambda: sphere(1000, 4, seed=0),
    "hypercube": lambda: hypercube(1000, 3, seed=3, dtype=torch.float64),
    "swiss_roll": lambda: swiss_roll(2000, noise=0.1, seed=0),
    "dadapy": lambda: torch.from_numpy(
        np.load(Path(__file__).parent / "data" / "dadapy_2gaussians_in_2d.npy")
    ),
    "offset": lambda: gaussian(800, 6, 12, seed=3, dtype=torch.float64) + 1e3,
    "tiny": lambda: gaussian(500, 3, seed=4, dtype=torch.float64) * 1e-200,
}


@pytest.mark.parametrize("name", list(CLOUDS))
def test_data_without_near_ties_give_bit_identical_results(name):
    X = CLOUDS[name]()
    mu = _exact_rule(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing dropped
        res = twonn(X)
    assert torch.equal(res.mu, mu) and res.dimension == twonn_ls(mu)[0]
    g = gride(X, max_rank=8)
    for n1, n_used in zip(g.n1.tolist(), g.n_used.tolist(), strict=True):
        assert n_used == _exact_rule(X, n1, 2 * n1).numel()
    first = decimation(X, min_size=20).dimensions[0].item()  # the whole set
    assert first == twonn_ls(mu)[0]


def test_keep_mask_without_bounds_is_the_exact_rule():
    r1 = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    r2 = torch.tensor([1.0, 1.0, 1.0 + 2**-52, 2.0], dtype=torch.float64)
    assert keep_mask(r1, r2).tolist() == [False, False, True, True]
    tol = rounding_bound(r1, torch.full_like(r1, 10.0), 2)
    assert keep_mask(r1, r2, tol, rounding_bound(r2, torch.full_like(r1, 10.0), 2)).tolist() == [
        False,
        False,
        False,
        True,
    ]
