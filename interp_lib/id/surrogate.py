"""Is a representation curved? Compare it with a Gaussian of the same covariance.

A Gaussian with the covariance of ``X`` fills the flat, linear subspace that PCA sees,
with the same spectrum. If the TwoNN ID of ``X`` is far below that of its Gaussian
surrogate, the data lie on a curved manifold that PCA cannot flatten: this is Ansuini
et al.'s test that network representations are curved.
"""

from __future__ import annotations

import torch

from .._validation import ArrayLike, as_points, check_int, make_generator

__all__ = ["gaussian_surrogate"]


def gaussian_surrogate(
    X: ArrayLike, n: int | None = None, *, seed: int | torch.Generator | None = 0
) -> torch.Tensor:
    """Samples of ``N(mean(X), cov(X))``: the same first two moments, no curvature.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D)
    n : int, optional
        Samples to draw; default ``N``.
    seed : int, torch.Generator or None

    Returns
    -------
    torch.Tensor, shape (n, D), dtype of ``X`` (on ``X``'s device)
        Drawn as ``mean + Z S V^T / sqrt(N - 1)`` with ``X - mean = U S V^T`` and
        ``Z ~ N(0, I)``, so the sample covariance matches without forming the
        ``D x D`` matrix.
    """
    X = as_points(X, min_samples=2)
    n = X.shape[0] if n is None else check_int(n, "n", maximum=2**31 - 1)
    X64 = X.to(torch.float64)
    mean = X64.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(X64 - mean, full_matrices=False)
    gen = make_generator(seed)
    z = torch.randn(n, s.numel(), generator=gen, dtype=torch.float64).to(X.device)
    out = mean + (z * s / (X.shape[0] - 1) ** 0.5) @ vh
    return out.to(X.dtype)
