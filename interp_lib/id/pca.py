r"""Linear dimension: principal components.

PCA measures the dimension of the flattest linear subspace that holds the data. On a
curved manifold it overestimates the intrinsic dimension, which is exactly the contrast
Ansuini et al. draw: PC-ID is in the hundreds where TwoNN finds a few tens.

- :func:`pca_spectrum`: explained-variance ratios :math:`\lambda_i / \sum_j \lambda_j`,
  descending.
- :func:`pca_dim` (PC-ID): the **number** of components whose cumulative explained
  variance first reaches ``variance`` (0.9 in the paper). Ansuini et al.'s code returns
  the 0-based index of that component, i.e. this count minus one; we return the count,
  so that data on a k-dimensional subspace gives exactly k.
- :func:`participation_ratio`: :math:`(\sum \lambda)^2 / \sum \lambda^2`, a smooth
  count of the components that carry the variance.
- :func:`pca_dim_from_spectrum`: PC-ID from explained-variance ratios already computed
  (one SVD for all three, as :class:`interp_lib.id.PCADim` and the figures use it).

``covariance_eigenvalues``, ``explained_ratios`` and ``participation_from_eigenvalues``
are the steps of these, shared with :mod:`interp_lib.id.estimators` (one SVD for
:class:`interp_lib.id.PCADim`); they are not exported by :mod:`interp_lib.id`.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .._validation import ArrayLike, as_points, check_fraction
from .neighbors import _torch_threads

__all__ = ["participation_ratio", "pca_dim", "pca_dim_from_spectrum", "pca_spectrum"]


#: ``standardize=True`` drops a feature whose standard deviation is at most this many
#: times its largest absolute value: constant up to the float64 rounding of its values
#: and of their mean (``64 eps``), whatever its units.
CONSTANT_RTOL = 64 * torch.finfo(torch.float64).eps


def covariance_eigenvalues(X: torch.Tensor, standardize: bool) -> torch.Tensor:
    """Covariance eigenvalues, descending, float64, from the singular values."""
    X = X.to(torch.float64)
    if standardize:
        # a feature is constant when its spread is at the rounding level of its own values
        # (relative to the feature, so that a feature in small units is kept)
        magnitude = X.abs().amax(dim=0)
    X = X - X.mean(dim=0, keepdim=True)
    if standardize:
        std = X.std(dim=0)
        constant = std <= CONSTANT_RTOL * magnitude
        if bool(constant.any()):
            if bool(constant.all()):
                raise ValueError("every feature is constant: the data has no variance.")
            X = X[:, ~constant]
            std = std[~constant]
        X = X / std
    # LAPACK's SVD of these wide activation matrices spends more time, not less, with a
    # second thread on a small shared CPU: one thread, the caller's count restored after
    with _torch_threads(1) if X.device.type == "cpu" else contextlib.nullcontext():
        s = torch.linalg.svdvals(X)
    ev = s**2 / max(X.shape[0] - 1, 1)
    if float(ev.sum()) <= 0:
        raise ValueError("the data has no variance: all points are identical.")
    return ev


def pca_spectrum(X: ArrayLike, *, standardize: bool = False) -> torch.Tensor:
    """Explained-variance ratio of every principal component.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D)
    standardize : bool, default False
        z-score each feature first (constant features are ignored).

    Returns
    -------
    torch.Tensor, shape (min(N, D),), float64
        Ratios in descending order, summing to 1.
    """
    return explained_ratios(covariance_eigenvalues(as_points(X, min_samples=2), standardize))


def explained_ratios(ev: torch.Tensor) -> torch.Tensor:
    """Explained-variance ratios from covariance eigenvalues, on the CPU."""
    return (ev / ev.sum()).cpu()


def participation_from_eigenvalues(ev: torch.Tensor) -> float:
    """``ev.sum()**2 / (ev**2).sum()``: the participation ratio of eigenvalues ``ev``."""
    return float(ev.sum() ** 2 / (ev**2).sum())


def pca_dim_from_spectrum(ratios: ArrayLike, variance: float = 0.9) -> int:
    """PC-ID from explained-variance ratios: the smallest ``k`` whose cumulative sum
    reaches ``variance``.

    Parameters
    ----------
    ratios : array-like or torch.Tensor, shape (K,)
        Explained-variance ratios in descending order, summing to 1 (as returned by
        :func:`pca_spectrum`).
    variance : float in (0, 1], default 0.9

    Returns
    -------
    int
        A count between 1 and ``K`` (round-off of ``1e-12`` is tolerated at
        ``variance=1``).
    """
    variance = check_fraction(variance, "variance")
    if isinstance(ratios, torch.Tensor):
        r = ratios.detach().to("cpu", torch.float64)
    else:
        arr = np.asarray(ratios)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(
                f"ratios must hold explained-variance ratios (floats), got dtype {arr.dtype}."
            )
        r = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
    if r.ndim != 1 or r.numel() == 0:
        raise ValueError(f"ratios must be 1-D and non-empty, got shape {tuple(r.shape)}.")
    if (
        not bool(torch.isfinite(r).all())
        or bool((r < 0).any())
        or abs(float(r.sum()) - 1.0) > 1e-6
        or bool((r[1:] > r[:-1] * (1 + 1e-9) + 1e-15).any())
    ):
        raise ValueError(
            "ratios must be explained-variance ratios: finite, non-negative, descending "
            "and summing to 1. Use interp_lib.id.pca_spectrum(X)."
        )
    cum = torch.cumsum(r, 0)
    # tolerate round-off when variance == 1
    k = int(torch.searchsorted(cum, torch.tensor([variance - 1e-12], dtype=torch.float64)))
    return min(k + 1, r.numel())


def pca_dim(X: ArrayLike, variance: float = 0.9, *, standardize: bool = True) -> int:
    """PC-ID: how many principal components explain ``variance`` of the total.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D)
    variance : float in (0, 1], default 0.9
    standardize : bool, default True
        z-score the features first, as Ansuini et al. do. Constant features are ignored:
        those whose standard deviation is at the float64 rounding level of their own
        values (``CONSTANT_RTOL`` times their largest magnitude), so that a feature
        in small units (1e-13) is kept and scaling the data changes nothing.

    Returns
    -------
    int
        The smallest ``k`` with cumulative explained variance ``>= variance`` (a count,
        1-based; Ansuini et al.'s code reports ``k - 1``).

    Examples
    --------
    >>> import torch
    >>> X = torch.randn(200, 3, generator=torch.Generator().manual_seed(0)) @ torch.randn(3, 50)
    >>> pca_dim(X, 0.999)
    3
    """
    variance = check_fraction(variance, "variance")
    return pca_dim_from_spectrum(pca_spectrum(X, standardize=standardize), variance)


def participation_ratio(X: ArrayLike, *, standardize: bool = False) -> float:
    r"""Participation ratio :math:`(\sum_i \lambda_i)^2 / \sum_i \lambda_i^2`.

    Between 1 (one direction holds all variance) and ``min(N - 1, D)`` (isotropic).

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D)
    standardize : bool, default False

    Returns
    -------
    float
    """
    return participation_from_eigenvalues(
        covariance_eigenvalues(as_points(X, min_samples=2), standardize)
    )
