r"""Gride: maximum likelihood on the ratio of farther neighbours (Denti et al., 2022).

For neighbour ranks :math:`n_1 < n_2`, the ratio :math:`\mu = r_{n_2} / r_{n_1}` on a
locally uniform :math:`d`-manifold has the density

.. math::

   f(\mu) = \frac{d\,(\mu^d - 1)^{n_2 - n_1 - 1}}{B(n_2 - n_1, n_1)\,\mu^{(n_2 - 1) d + 1}},

whose log-likelihood is concave in :math:`d`. With :math:`(n_1, n_2) = (1, 2)` it is
TwoNN's likelihood. Doubling the ranks (1, 2), (2, 4), (4, 8), ... probes the data at
growing scales without throwing points away, which makes Gride robust to noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validation import ArrayLike, as_points, check_int
from .neighbors import knn

__all__ = ["GrideResult", "gride", "gride_mle"]


def _score(d: float, log_mu: torch.Tensor, n1: int, n2: int) -> float:
    """Derivative of the log-likelihood in ``d`` (decreasing in ``d``)."""
    n = log_mu.numel()
    s = float(log_mu.sum())
    extra = n2 - n1 - 1
    grad = n / d - (n2 - 1) * s
    if extra:
        grad += extra * float((log_mu / -torch.expm1(-d * log_mu)).sum())
    return grad


def gride_mle(mu: torch.Tensor, n1: int = 1, n2: int = 2) -> tuple[float, float]:
    """Maximum-likelihood ``d`` from ratios ``mu = r_{n2} / r_{n1}``, and its standard error.

    Parameters
    ----------
    mu : torch.Tensor, shape (N,)
        Ratios, all ``> 1``.
    n1, n2 : int
        Neighbour ranks, ``1 <= n1 < n2``.

    Returns
    -------
    dimension, standard_error : float, float
        The error is :math:`1/\\sqrt{-\\ell''(\\hat d)}` (observed Fisher information).
    """
    from scipy.optimize import brentq

    log_mu = torch.log(torch.as_tensor(mu, dtype=torch.float64).flatten().cpu())
    if log_mu.numel() < 2 or not bool((log_mu > 0).all()):
        raise ValueError("gride needs at least 2 ratios, all strictly greater than 1.")
    lo, hi = 1e-6, 1.0
    while _score(hi, log_mu, n1, n2) > 0:  # bracket the root of the decreasing score
        hi *= 2.0
        if hi > 1e6:
            raise ValueError("gride: the likelihood has no maximum below d = 1e6.")
    d = brentq(_score, lo, hi, args=(log_mu, n1, n2), xtol=1e-12, rtol=1e-12)
    extra = n2 - n1 - 1
    info = log_mu.numel() / d**2
    if extra:
        e = torch.exp(-d * log_mu)  # mu^-d
        info += extra * float((log_mu**2 * e / (1 - e) ** 2).sum())
    return float(d), 1.0 / math.sqrt(info)


@dataclass(frozen=True)
class GrideResult:
    """Gride estimates at neighbour ranks ``(n1, 2 n1)`` for ``n1 = 1, 2, 4, ...``.

    Attributes
    ----------
    n1, n2 : torch.Tensor, shape (S,), int64
        The neighbour ranks of each estimate.
    dimensions, errors : torch.Tensor, shape (S,), float64
        The estimate and its standard error at each scale.
    scales : torch.Tensor, shape (S,), float64
        The mean distance to the ``n2``-th neighbour: the length scale probed.
    n_used : torch.Tensor, shape (S,), int64
        Points with ``r_{n1} > 0`` and ``r_{n2} > r_{n1}`` at each scale.
    """

    n1: torch.Tensor
    n2: torch.Tensor
    dimensions: torch.Tensor
    errors: torch.Tensor
    scales: torch.Tensor
    n_used: torch.Tensor

    @property
    def dimension(self) -> float:
        """The estimate at the smallest scale."""
        return float(self.dimensions[0])


def gride(
    X: ArrayLike,
    *,
    max_rank: int = 64,
    metric: str = "euclidean",
    chunk_size: int = 4096,
    device: torch.device | str | None = None,
) -> GrideResult:
    """Gride estimates of the intrinsic dimension at growing neighbourhood scales.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D), or (N, N) with ``metric="precomputed"``
    max_rank : int, default 64
        The largest neighbour rank ``n2``; ranks ``(1, 2), (2, 4), ...`` up to it are used.
        Must be below ``N``.
    metric, chunk_size, device
        As in :func:`interp_lib.id.nearest_neighbors`.

    Returns
    -------
    GrideResult
    """
    X = as_points(X, device=device)
    n = X.shape[0]
    max_rank = check_int(max_rank, "max_rank", minimum=2)
    max_rank = min(max_rank, n - 1)
    dist = knn(X, max_rank, metric=metric, chunk_size=chunk_size).distances
    dist = dist.cpu()
    rows = []
    n1 = 1
    while 2 * n1 <= max_rank:
        n2 = 2 * n1
        r1, r2 = dist[:, n1 - 1], dist[:, n2 - 1]
        keep = (r1 > 0) & (r2 > r1)
        if int(keep.sum()) >= 3:
            d, err = gride_mle(r2[keep] / r1[keep], n1, n2)
            rows.append((n1, n2, d, err, float(r2[keep].mean()), int(keep.sum())))
        n1 = n2
    if not rows:
        raise ValueError("gride: too few distinct points; every ratio was degenerate.")
    cols = list(zip(*rows, strict=True))
    return GrideResult(
        n1=torch.tensor(cols[0]),
        n2=torch.tensor(cols[1]),
        dimensions=torch.tensor(cols[2], dtype=torch.float64),
        errors=torch.tensor(cols[3], dtype=torch.float64),
        scales=torch.tensor(cols[4], dtype=torch.float64),
        n_used=torch.tensor(cols[5]),
    )
