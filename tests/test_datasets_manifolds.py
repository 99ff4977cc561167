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


GENERATORS = {
    "hypercube": lambda **kw: hypercube(20, 2, **kw),
    "gaussian": lambda **kw: gaussian(20, 2, 4, **kw),
    "sphere": lambda **kw: sphere(20, 2, **kw),
    "swiss_roll": lambda **kw: swiss_roll(20, **kw),
    "curved": lambda **kw: curved_manifold(20, 2, 8, **kw),
}


@pytest.mark.parametrize("name", list(GENERATORS))
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, "float32"])
def test_integer_or_bad_dtype_raises(name, dtype):
    # sphere(dtype=torch.int64) used to return zeros: every coordinate is in (-1, 1)
    with pytest.raises(TypeError, match=r"floating-point torch\.dtype"):
        GENERATORS[name](dtype=dtype)


@pytest.mark.parametrize("name", list(GENERATORS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_floating_dtypes_are_kept(name, dtype):
    X = GENERATORS[name](dtype=dtype)
    assert X.dtype == dtype and bool(torch.isfinite(X).all())


@pytest.mark.parametrize("noise", [float("nan"), float("inf"), -0.1])
def test_non_finite_or_negative_noise_raises(noise):
    # a NaN noise used to pass the `noise < 0` check and return all-NaN points
    for make in GENERATORS.values():
        with pytest.raises(ValueError, match="noise"):
            make(noise=noise)
    with pytest.raises(TypeError, match="noise"):
        hypercube(10, 2, noise="0.1")


def test_bad_curvature_box_and_name():
    with pytest.raises(ValueError, match="curvature"):
        curved_manifold(10, 2, 8, curvature=float("nan"))
    with pytest.raises(ValueError, match="box"):
        periodic_distances(hypercube(5, 2), box=float("inf"))
    with pytest.raises(ValueError, match="NaN"):
        periodic_distances(torch.tensor([[0.1, float("nan")], [0.2, 0.3]]))
    with pytest.raises(ValueError, match="choose one of"):
        make_manifold(["sphere"], 10, 2)
    with pytest.raises(TypeError, match="seed"):
        sphere(10, 2, seed=1.5)
