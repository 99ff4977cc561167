"""The TwoNN estimate as a function of sample size: is there a plateau?

An intrinsic dimension is only meaningful at the scale where the estimate is stable.
Fewer points mean larger nearest-neighbour distances, so sub-sampling probes coarser
scales; noise inflates the ID at the finest scales and curvature deflates it at coarse
ones.

- :func:`block_analysis` (Ansuini et al.): shuffle, split into ``b`` disjoint blocks of
  ``N / b`` points for ``b = 1, 2, 4, ...``, estimate in every block; mean and standard
  deviation over the blocks. Every point is used at every scale.
- :func:`decimation` (DADApy's ``return_id_scaling_2NN``): one random subset of
  ``N / 2^i`` points per scale; cheaper, no spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validation import (
    ArrayLike,
    as_points,
    check_choice,
    check_fraction,
    check_int,
    check_neighbors,
    make_generator,
)
from ._ratios import check_prior, check_scale, length_scale, ratio_table
from .neighbors import Neighbors, knn
from .twonn import METHODS, fit_ratios

__all__ = ["ScalingResult", "block_analysis", "decimation"]


@dataclass(frozen=True)
class ScalingResult:
    """TwoNN estimates at several sample sizes.

    Attributes
    ----------
    sizes : torch.Tensor, shape (S,), int64
        Points per subset (decreasing).
    n_subsets : torch.Tensor, shape (S,), int64
        Subsets estimated at each size.
    dimensions, errors : torch.Tensor, shape (S,), float64
        Mean estimate over the subsets and its standard deviation (0 with one subset).
    scales : torch.Tensor, shape (S,), float64
        The length scale probed at that size, averaged over the subsets: by default the
        mean of the first- and second-neighbour distances (DADApy's), see ``scale``.
    """

    sizes: torch.Tensor
    n_subsets: torch.Tensor
    dimensions: torch.Tensor
    errors: torch.Tensor
    scales: torch.Tensor


def _scaling(
    X: ArrayLike,
    *,
    all_blocks: bool,
    min_size: int,
    method: str,
    fraction: float,
    prior: tuple[float, float],
    scale: str,
    seed: int | torch.Generator | None,
    device: torch.device | str | None,
    neighbors: Neighbors | None,
    name: str,
) -> ScalingResult:
    check_choice(method, "method", METHODS)
    check_scale(scale)
    fraction = check_fraction(fraction, "fraction")
    prior = check_prior(prior)
    min_size = check_int(min_size, "min_size", minimum=3)
    X = as_points(X, device=device)
    n = X.shape[0]
    if n < min_size:
        raise ValueError(f"need at least min_size={min_size} points, got {n}.")
    full = None if neighbors is None else check_neighbors(neighbors, n, 2, name)
    gen = make_generator(seed)
    perm = torch.randperm(n, generator=gen).to(X.device)
    rows = []
    b = 1
    while n // b >= min_size:
        size = n // b
        blocks = range(b) if all_blocks else range(1)
        dims, scales = [], []
        for i in blocks:
            sub = X[perm[i * size : (i + 1) * size]]
            if size == n and full is not None:  # the whole set, in the order of sub
                dist = full[perm.to(full.device)]
            else:
                dist = knn(sub, 2).distances
            table = ratio_table(dist, points=sub)
            if table.mu.numel() >= 3:
                dims.append(fit_ratios(table.mu, method, fraction, prior)[0])
                scales.append(length_scale(table, scale))
        if dims:
            d = torch.tensor(dims, dtype=torch.float64)
            err = float(d.std()) if len(dims) > 1 else 0.0
            rows.append((size, len(dims), float(d.mean()), err, sum(scales) / len(scales)))
        b *= 2
    if not rows:
        raise ValueError(
            f"too few distinct points: fewer than 3 of the {n} points have distinct first "
            "and second neighbours (all points identical?). Pass more distinct points."
        )
    cols = list(zip(*rows, strict=True))
    return ScalingResult(
        sizes=torch.tensor(cols[0]),
        n_subsets=torch.tensor(cols[1]),
        dimensions=torch.tensor(cols[2], dtype=torch.float64),
        errors=torch.tensor(cols[3], dtype=torch.float64),
        scales=torch.tensor(cols[4], dtype=torch.float64),
    )


def block_analysis(
    X: ArrayLike,
    *,
    min_size: int = 20,
    method: str = "ls",
    fraction: float = 0.9,
    prior: tuple[float, float] = (1e-3, 1e-3),
    scale: str = "mean",
    seed: int | torch.Generator | None = 0,
    device: torch.device | str | None = None,
    neighbors: Neighbors | None = None,
) -> ScalingResult:
    """Ansuini's block analysis: TwoNN on ``b`` disjoint blocks, ``b = 1, 2, 4, ...``.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D)
    min_size : int, default 20
        Smallest block size.
    method, fraction, prior
        As in :func:`interp_lib.id.twonn`.
    scale : {"mean", "outer"}, default "mean"
        The length scale of a subset: ``"mean"``, the mean of ``(r1 + r2) / 2`` over its
        points (DADApy's, as in :func:`interp_lib.id.gride`); ``"outer"``, the mean of
        ``r2`` (interp_lib's definition before this option existed).
    seed : int, torch.Generator or None
        Seed of the shuffle.
    device : torch.device or str, optional
    neighbors : Neighbors, optional
        The neighbours of ``X`` computed once by :func:`interp_lib.id.nearest_neighbors`
        (``k >= 2``): they serve the whole set (``b = 1``), with the same result; the
        smaller blocks search inside themselves.

    Returns
    -------
    ScalingResult
        One row per block size, from ``N`` down to about ``min_size``.

    Raises
    ------
    ValueError
        ``neighbors`` of other points or with ``k < 2``; fewer than ``min_size`` points.
    """
    return _scaling(
        X,
        all_blocks=True,
        neighbors=neighbors,
        name="block_analysis",
        min_size=min_size,
        method=method,
        fraction=fraction,
        prior=prior,
        scale=scale,
        seed=seed,
        device=device,
    )


def decimation(
    X: ArrayLike,
    *,
    min_size: int = 20,
    method: str = "ls",
    fraction: float = 0.9,
    prior: tuple[float, float] = (1e-3, 1e-3),
    scale: str = "mean",
    seed: int | torch.Generator | None = 0,
    device: torch.device | str | None = None,
    neighbors: Neighbors | None = None,
) -> ScalingResult:
    """TwoNN on one random subset of ``N / 2^i`` points per scale (as DADApy does).

    Parameters and returns as :func:`block_analysis` (``neighbors`` serve the first scale,
    the whole set); ``errors`` are 0.
    """
    return _scaling(
        X,
        all_blocks=False,
        neighbors=neighbors,
        name="decimation",
        min_size=min_size,
        method=method,
        fraction=fraction,
        prior=prior,
        scale=scale,
        seed=seed,
        device=device,
    )
