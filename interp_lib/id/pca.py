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
"""

from __future__ import annotations

import torch

from .._validation import ArrayLike, as_points, check_fraction

__all__ = ["participation_ratio", "pca_dim", "pca_spectrum"]


def _eigenvalues(X: torch.Tensor, standardize: bool) -> torch.Tensor:
    """Covariance eigenvalues, descending, float64, from the singular values."""
    X = X.to(torch.float64)
    X = X - X.mean(dim=0, keepdim=True)
    if standardize:
        std = X.std(dim=0)
        constant = std <= 1e-12 * max(1.0, float(std.max()))
        if bool(constant.any()):
            if bool(constant.all()):
                raise ValueError("every feature is constant: the data has no variance.")
            X = X[:, ~constant]
            std = std[~constant]
        X = X / std
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
    ev = _eigenvalues(as_points(X, min_samples=2), standardize)
    return (ev / ev.sum()).cpu()


def pca_dim(X: ArrayLike, variance: float = 0.9, *, standardize: bool = True) -> int:
    """PC-ID: how many principal components explain ``variance`` of the total.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D)
    variance : float in (0, 1], default 0.9
    standardize : bool, default True
        z-score the features first, as Ansuini et al. do. Constant features are ignored.

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
    ratios = pca_spectrum(X, standardize=standardize)
    cum = torch.cumsum(ratios, 0)
    # tolerate round-off when variance == 1
    k = int(torch.searchsorted(cum, torch.tensor([variance - 1e-12], dtype=torch.float64)))
    return min(k + 1, ratios.numel())


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
    ev = _eigenvalues(as_points(X, min_samples=2), standardize)
    return float(ev.sum() ** 2 / (ev**2).sum())
