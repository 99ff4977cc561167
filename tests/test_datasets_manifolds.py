"""Manifold generators: shapes, seeds, geometry."""

import pytest
import torch

from interp_lib.datasets import (
    curved_manifold,
    gaussian,
    hypercube,
    make_manifold,
    periodic_distances,
    sphere,
    swiss_roll,
)
from interp_lib.id import pca_dim, twonn


def test_shapes_and_seeds():
    assert hypercube(10, 3).shape == (10, 3)
    assert gaussian(10, 3, 7).shape == (10, 7)
    assert sphere(10, 3).shape == (10, 4) and sphere(10, 3, 9).shape == (10, 9)
    assert swiss_roll(10).shape == (10, 3)
    assert curved_manifold(10, 2, 20).shape == (10, 20)
    assert torch.equal(gaussian(20, 3, seed=1), gaussian(20, 3, seed=1))
    assert not torch.equal(gaussian(20, 3, seed=1), gaussian(20, 3, seed=2))
    assert hypercube(5, 2, dtype=torch.float64).dtype == torch.float64


def test_geometry():
    s = sphere(500, 4, 12, seed=0, dtype=torch.float64)
    torch.testing.assert_close(
        torch.linalg.vector_norm(s, dim=1), torch.ones(500, dtype=torch.float64)
    )
    c = hypercube(500, 3)
    assert bool((c >= 0).all() and (c < 1).all())
    assert pca_dim(gaussian(500, 4, 30, seed=0), 1.0, standardize=False) == 4  # rotation keeps rank


def test_noise_fills_the_ambient_space():
    X = gaussian(500, 2, 10, noise=0.1, seed=0)
    assert pca_dim(X, 0.999, standardize=False) == 10


def test_curved_manifold_is_curved_but_low_dimensional():
    X = curved_manifold(2000, 3, 100, seed=0)
    assert pca_dim(X, 0.9, standardize=False) > 10
    assert twonn(X).dimension == pytest.approx(3, abs=0.4)


def test_periodic_distances():
    X = torch.tensor([[0.05, 0.5], [0.95, 0.5], [0.5, 0.5]], dtype=torch.float64)
    D = periodic_distances(X)
    assert D[0, 1].item() == pytest.approx(0.1)
    assert D[0, 2].item() == pytest.approx(0.45)
    torch.testing.assert_close(D, D.T)


def test_make_manifold():
    assert make_manifold("sphere", 10, 2).shape == (10, 3)
    with pytest.raises(ValueError, match="choose one of"):
        make_manifold("torus", 10, 2)
    with pytest.raises(ValueError, match="2-dimensional"):
        make_manifold("swiss_roll", 10, 3)
    with pytest.raises(ValueError, match="at least 4"):
        gaussian(10, 4, 2)
    with pytest.raises(ValueError, match="noise"):
        gaussian(10, 2, noise=-1.0)
