"""Point clouds with a known intrinsic dimension, for validating estimators.

Every generator is seeded and returns a tensor of shape ``(n, D)``. ``noise`` adds
isotropic Gaussian noise of that standard deviation in all ``D`` ambient dimensions
(which raises the ID measured at small scales towards ``D``).

For the cube with periodic boundary conditions (a flat torus, no boundary effect),
measure distances with :func:`periodic_distances` and pass them as a precomputed matrix::

    twonn(periodic_distances(hypercube(1000, 10)), metric="precomputed")

==========================  ===========  ==============================================
generator                   ID           ambient dimension ``D``
==========================  ===========  ==============================================
:func:`hypercube`           d            d
:func:`gaussian`            d            ``D >= d`` (randomly rotated), default d
:func:`sphere`              d            ``d + 1``, or ``D >= d + 1`` (rotated)
:func:`swiss_roll`          2            3
:func:`curved_manifold`     d            ``D`` (nonlinear, curved embedding)
==========================  ===========  ==============================================
"""

from __future__ import annotations

import math

import torch

from .._validation import as_points, check_float_dtype, check_int, check_real, make_generator

__all__ = [
    "MANIFOLDS",
    "curved_manifold",
    "gaussian",
    "hypercube",
    "make_manifold",
    "periodic_distances",
    "sphere",
    "swiss_roll",
]

Seed = int | torch.Generator | None

#: Largest count of points or dimensions accepted (a tensor side must fit in an int32).
_MAX_SIZE = 2**31 - 1


def _start(
    n: int, noise: float, seed: Seed, dtype: torch.dtype
) -> tuple[int, float, torch.Generator, torch.dtype]:
    """Validate the arguments every generator shares (before drawing anything)."""
    n = check_int(n, "n", maximum=_MAX_SIZE)
    noise = check_real(noise, "noise", minimum=0)
    return n, noise, make_generator(seed), check_float_dtype(dtype)


def _finish(
    Z: torch.Tensor, noise: float, gen: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    if noise:
        Z = Z + noise * torch.randn(Z.shape, generator=gen, dtype=Z.dtype)
    return Z.to(dtype)


def _rotate(Z: torch.Tensor, D: int | None, gen: torch.Generator) -> torch.Tensor:
    """Embed the columns of ``Z`` in ``D`` dimensions by a random orthonormal map."""
    d = Z.shape[1]
    if D is None or D == d:
        return Z
    Q, _ = torch.linalg.qr(torch.randn(int(D), d, generator=gen, dtype=torch.float64))
    return Z @ Q.T


def _rotated_normal(
    n: int, k: int, D: int | None, noise: float, seed: Seed, dtype: torch.dtype, *, unit: bool
) -> torch.Tensor:
    """``n`` standard normal points in ``R^k`` (scaled onto the unit sphere with ``unit``),
    rotated into ``D`` dimensions, then noised: shape ``(n, D or k)``."""
    if D is not None:
        check_int(D, "the ambient dimension D", minimum=k, maximum=_MAX_SIZE)
    n, noise, gen, dtype = _start(n, noise, seed, dtype)
    Z = torch.randn(n, k, generator=gen, dtype=torch.float64)
    if unit:
        Z = Z / torch.linalg.vector_norm(Z, dim=1, keepdim=True)
    return _finish(_rotate(Z, D, gen), noise, gen, dtype)


def hypercube(
    n: int,
    d: int,
    *,
    noise: float = 0.0,
    seed: Seed = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform points in the unit cube ``[0, 1)^d``.

    Returns
    -------
    torch.Tensor, shape (n, d)

    See Also
    --------
    periodic_distances : distances with the cube's opposite faces glued together.
    """
    d = check_int(d, "d", maximum=_MAX_SIZE)
    n, noise, gen, dtype = _start(n, noise, seed, dtype)
    U = torch.rand(n, d, generator=gen, dtype=torch.float64)
    return _finish(U, noise, gen, dtype)


def periodic_distances(
    X: torch.Tensor, box: float = 1.0, *, chunk_size: int = 1024
) -> torch.Tensor:
    """Euclidean distances with periodic boundary conditions (the flat torus).

    Each coordinate difference ``delta`` becomes ``min(|delta|, box - |delta|)``. In a
    bounded cube the points near a face have fewer neighbours than the model assumes,
    which biases TwoNN downwards in high dimension; on the torus that effect is gone.

    Parameters
    ----------
    X : torch.Tensor, shape (N, d)
        Points in ``[0, box)^d``.
    box : float, default 1.0
    chunk_size : int, default 1024
        Rows per block; the temporaries take ``chunk_size * N`` elements.

    Returns
    -------
    torch.Tensor, shape (N, N), float64
        Use with ``metric="precomputed"``.
    """
    X = as_points(X, min_samples=1).to(torch.float64)
    box = check_real(box, "box", positive=True)
    chunk_size = check_int(chunk_size, "chunk_size")
    X = X.remainder(box)  # wrap into the box, so that every |delta| < box
    n = X.shape[0]
    out = torch.empty(n, n, dtype=torch.float64)
    for a in range(0, n, chunk_size):
        acc = out[a : a + chunk_size].zero_()
        for k in range(X.shape[1]):  # one coordinate at a time: O(chunk x N) memory
            delta = (X[a : a + chunk_size, k, None] - X[None, :, k]).abs_()
            delta = torch.minimum(delta, box - delta)
            acc.addcmul_(delta, delta)
    return out.sqrt_()


def gaussian(
    n: int,
    d: int,
    D: int | None = None,
    *,
    noise: float = 0.0,
    seed: Seed = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal ``N(0, I_d)``, optionally rotated into ``D`` dimensions.

    Returns
    -------
    torch.Tensor, shape (n, D or d)
    """
    d = check_int(d, "d", maximum=_MAX_SIZE)
    return _rotated_normal(n, d, D, noise, seed, dtype, unit=False)


def sphere(
    n: int,
    d: int,
    D: int | None = None,
    *,
    noise: float = 0.0,
    seed: Seed = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform points on the unit sphere ``S^d`` in ``R^(d+1)``, optionally rotated into ``D``.

    Returns
    -------
    torch.Tensor, shape (n, D or d + 1)
    """
    d = check_int(d, "d", maximum=_MAX_SIZE)
    return _rotated_normal(n, d + 1, D, noise, seed, dtype, unit=True)


def swiss_roll(
    n: int, *, noise: float = 0.0, seed: Seed = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The swiss roll: a 2-D sheet rolled up in ``R^3`` (as scikit-learn's ``make_swiss_roll``).

    Returns
    -------
    torch.Tensor, shape (n, 3)
    """
    n, noise, gen, dtype = _start(n, noise, seed, dtype)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=gen, dtype=torch.float64))
    h = 21 * torch.rand(n, generator=gen, dtype=torch.float64)
    Z = torch.stack([t * torch.cos(t), h, t * torch.sin(t)], dim=1)
    return _finish(Z, noise, gen, dtype)


def curved_manifold(
    n: int,
    d: int,
    D: int = 100,
    *,
    curvature: float = 1.0,
    noise: float = 0.0,
    seed: Seed = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A curved ``d``-manifold embedded nonlinearly in ``D`` dimensions.

    Latent points ``t ~ U[0, 1)^d`` are mapped by random Fourier features,
    ``x = [cos(W t + b), sin(W t + b)] / sqrt(D / 2)`` with ``W ~ N(0, (pi curvature)^2)``:
    a smooth embedding whose curvature grows with ``curvature``, so PCA needs many more
    than ``d`` components while the intrinsic dimension stays ``d``.

    Returns
    -------
    torch.Tensor, shape (n, D)
    """
    d, D = check_int(d, "d", maximum=_MAX_SIZE), check_int(D, "D", maximum=_MAX_SIZE)
    if D < 2 * d or D % 2:
        raise ValueError(f"D must be even and at least 2 d = {2 * d}, got D={D}.")
    curvature = check_real(curvature, "curvature", minimum=0)
    n, noise, gen, dtype = _start(n, noise, seed, dtype)
    t = torch.rand(n, d, generator=gen, dtype=torch.float64)
    W = math.pi * curvature * torch.randn(d, D // 2, generator=gen, dtype=torch.float64)
    b = 2 * math.pi * torch.rand(D // 2, generator=gen, dtype=torch.float64)
    a = t @ W + b
    Z = torch.cat([torch.cos(a), torch.sin(a)], dim=1) / math.sqrt(D / 2)
    return _finish(Z, noise, gen, dtype)


#: Name -> generator ``f(n, d, **kwargs)``, for menus and widgets.
MANIFOLDS = {
    "hypercube": hypercube,
    "gaussian": gaussian,
    "sphere": sphere,
    "swiss_roll": lambda n, d=2, **kw: swiss_roll(n, **kw),
    "curved": curved_manifold,
}


def make_manifold(name: str, n: int, d: int, **kwargs) -> torch.Tensor:
    """Generate the manifold called ``name`` (a key of :data:`interp_lib.datasets.MANIFOLDS`)."""
    if not isinstance(name, str) or name not in MANIFOLDS:
        raise ValueError(f"unknown manifold {name!r}; choose one of {sorted(MANIFOLDS)}.")
    if name == "swiss_roll" and d != 2:
        raise ValueError(f"the swiss roll is 2-dimensional, got d={d}.")
    return MANIFOLDS[name](n, d, **kwargs)
