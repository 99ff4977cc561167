"""The textbook TwoNN, kept as a baseline for benchmarks and teaching.

It computes the full ``N x N`` distance matrix with one matrix product, keeps duplicates
and ties, and so shows what :func:`interp_lib.id.twonn` fixes: ``N^2`` memory, zero or
NaN distances between near-duplicates in float32, and a biased or NaN estimate when the
data contain repeated points. Do not use it for measurements.
"""

from __future__ import annotations

import torch

__all__ = ["naive_twonn"]


def naive_twonn(X: torch.Tensor, fraction: float = 0.9) -> float:
    """TwoNN by full distance matrix + ``topk``, with no care for duplicates or precision.

    Parameters
    ----------
    X : torch.Tensor, shape (N, D)
    fraction : float, default 0.9

    Returns
    -------
    float
        The least-squares estimate; NaN or biased when ``X`` has duplicates.
    """
    X = torch.as_tensor(X)
    sq = (X * X).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * X @ X.T
    d2.fill_diagonal_(float("inf"))
    r = torch.topk(d2, 2, dim=1, largest=False).values.clamp_min(0).sqrt().double()
    mu = (r[:, 1] / r[:, 0]).sort().values
    n = len(mu)
    m = int(fraction * n)
    x = torch.log(mu[:m])
    y = -torch.log1p(-torch.arange(1, m + 1, dtype=torch.float64) / n)
    return float((x * y).sum() / (x * x).sum())
