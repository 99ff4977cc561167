r"""Gride: maximum likelihood on the ratio of farther neighbours (Denti et al., 2022).

For neighbour ranks :math:`n_1 < n_2`, the ratio :math:`\mu = r_{n_2} / r_{n_1}` on a
locally uniform :math:`d`-manifold has the density

.. math::

   f(\mu) = \frac{d\,(\mu^d - 1)^{n_2 - n_1 - 1}}{B(n_2 - n_1, n_1)\,\mu^{(n_2 - 1) d + 1}},

whose log-likelihood is concave in :math:`d`. With :math:`(n_1, n_2) = (1, 2)` it is
TwoNN's likelihood, and :func:`gride_mle` equals :func:`interp_lib.id.twonn_mle`
exactly: both use DADApy's convention, :math:`N - 1` in place of :math:`N` in the score. Doubling the ranks (1, 2), (2, 4), (4, 8), ... probes the data at
growing scales without throwing points away, which makes Gride robust to noise.

DADApy's ``_argmax_loglik`` first drops the ratios at or above
:math:`q_{50} + 20\,(q_{95} - q_{50})` (``_filter_mus``; ``numpy.percentile``, linear)
as "very likely related to overlapping datapoints", then fits; its error (Fisher
information) is computed on all the ratios. ``outlier_filter=True`` does the same
(:func:`~interp_lib.id.outlier_ratio_threshold`). Off by default: on data without near-duplicates the
threshold, 20 times the distance from the median to the 95th percentile above the median,
removes nothing and both agree exactly; they differ when a few points have a neighbour
much closer than the rest (near-duplicates, quantised data), whose huge ratios pull the
unfiltered estimate down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validation import ArrayLike, as_points, check_bool, check_int, check_neighbors
from ._ratios import (
    as_ratios,
    check_scale,
    length_scale,
    ratio_table,
)
from .neighbors import Neighbors, check_options, knn

__all__ = ["GrideResult", "gride", "gride_mle", "outlier_ratio_threshold"]


def _score(d: float, log_mu: torch.Tensor, n1: int, n2: int) -> float:
    """Derivative of the log-likelihood in ``d``, with ``N - 1`` for ``N`` (decreasing in ``d``)."""
    n = log_mu.numel()
    s = float(log_mu.sum())
    extra = n2 - n1 - 1
    grad = (n - 1) / d - (n2 - 1) * s
    if extra:
        grad += extra * float((log_mu / -torch.expm1(-d * log_mu)).sum())
    return grad


def _check_ranks(n1: int, n2: int) -> tuple[int, int]:
    n1 = check_int(n1, "n1")
    n2 = check_int(n2, "n2", minimum=2)
    if n2 <= n1:
        raise ValueError(f"the neighbour ranks must satisfy n1 < n2, got n1={n1}, n2={n2}.")
    return n1, n2


def outlier_ratio_threshold(mu: torch.Tensor) -> float:
    """DADApy's cut for outlying ratios: ``q50 + 20 (q95 - q50)`` of ``mu``.

    Ratios at or above it are dropped by ``gride_mle(..., outlier_filter=True)``
    (DADApy's ``_filter_mus`` keeps ``mu < threshold``). Percentiles by linear
    interpolation, as ``numpy.percentile``.
    """
    q = torch.quantile(mu.double(), torch.tensor([0.95, 0.5], dtype=torch.float64))
    return float(20 * (q[0] - q[1]) + q[1])


def gride_mle(
    mu: ArrayLike, n1: int = 1, n2: int = 2, *, outlier_filter: bool = False
) -> tuple[float, float]:
    r"""Maximum-likelihood ``d`` from ratios ``mu = r_{n2} / r_{n1}``, and its standard error.

    The estimate is the root of the score with :math:`N - 1` in place of :math:`N`
    (DADApy's convention, ``_neg_dloglik_did``), so that at ranks (1, 2) it is
    :math:`(N - 1) / \sum \log \mu`, the unbiased TwoNN MLE of
    :func:`interp_lib.id.twonn_mle`.

    Parameters
    ----------
    mu : array-like or torch.Tensor, shape (N,)
        Ratios, all ``> 1``.
    n1, n2 : int
        Neighbour ranks, ``1 <= n1 < n2``.
    outlier_filter : bool
        Fit on the ratios below :func:`~interp_lib.id.outlier_ratio_threshold` only (DADApy); the error
        still uses all the ratios, as DADApy's.

    Returns
    -------
    dimension, standard_error : float, float
        The error is :math:`1/\sqrt{I(\hat d)}` with the Fisher information
        :math:`I(d) = N / d^2 + (n_2 - n_1 - 1) \sum_i \log^2\mu_i\, \mu_i^{-d} /
        (1 - \mu_i^{-d})^2` (DADApy's ``_fisher_info_scaling``; :math:`\hat d / \sqrt{N}`
        at ranks (1, 2), where :func:`interp_lib.id.twonn_mle` gives the exact
        :math:`\hat d / \sqrt{N - 2}`).
    """
    from scipy.optimize import brentq

    n1, n2 = _check_ranks(n1, n2)
    mu = as_ratios(mu)
    log_mu = torch.log(mu)
    if not bool((log_mu > 0).all()):
        raise ValueError("gride needs ratios strictly greater than 1; drop the ties first.")
    fit = log_mu
    if check_bool(outlier_filter, "outlier_filter"):
        fit = log_mu[mu < outlier_ratio_threshold(mu)]
        if fit.numel() < 3:
            raise ValueError("gride: fewer than 3 ratios are left after the outlier filter.")
    lo, hi = 1e-6, 1.0
    while _score(hi, fit, n1, n2) > 0:  # bracket the root of the decreasing score
        hi *= 2.0
        if hi > 1e6:
            raise ValueError("gride: the likelihood has no maximum below d = 1e6.")
    d = brentq(_score, lo, hi, args=(fit, n1, n2), xtol=1e-12, rtol=1e-12)
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
        The length scale probed, as defined by ``gride(scale=...)``: by default the mean
        of the distances to the ``n1``-th and ``n2``-th neighbours (DADApy's).
    n_used : torch.Tensor, shape (S,), int64
        Points with ``r_{n1} > 0`` and ``r_{n2} > r_{n1}`` at each scale (before the
        outlier filter).
    n_fitted : torch.Tensor, shape (S,), int64, or None
        With ``outlier_filter=True``: the ratios left after the filter, which the
        dimension is fitted on.
    """

    n1: torch.Tensor
    n2: torch.Tensor
    dimensions: torch.Tensor
    errors: torch.Tensor
    scales: torch.Tensor
    n_used: torch.Tensor
    n_fitted: torch.Tensor | None = None

    @property
    def dimension(self) -> float:
        """The estimate at the smallest scale."""
        return float(self.dimensions[0])


def gride(
    X: ArrayLike,
    *,
    max_rank: int = 64,
    scale: str = "mean",
    metric: str = "euclidean",
    chunk_size: int = 4096,
    device: torch.device | str | None = None,
    neighbors: Neighbors | None = None,
    outlier_filter: bool = False,
) -> GrideResult:
    """Gride estimates of the intrinsic dimension at growing neighbourhood scales.

    On DADApy's own test data this reproduces ``return_id_scaling_gride`` (IDs, errors and
    scales, to 1e-6; see ``tests/test_id_dadapy.py``).

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D), or (N, N) with ``metric="precomputed"``
    max_rank : int, default 64
        The largest neighbour rank ``n2``; ranks ``(1, 2), (2, 4), ...`` up to it are used.
        Capped at ``N - 1``.
    scale : {"mean", "outer"}, default "mean"
        The length scale reported for ranks ``(n1, n2)``: ``"mean"``, the mean over the
        kept points of ``(r_n1 + r_n2) / 2`` (DADApy's ``rs_scaling``); ``"outer"``, the
        mean of ``r_n2`` (interp_lib's definition before this option existed).
    metric : {"euclidean", "precomputed"}
        For any other metric pass a precomputed distance matrix, e.g. from
        ``scipy.spatial.distance.cdist(X, X, metric="cosine")``.
    chunk_size, device
        As in :func:`interp_lib.id.nearest_neighbors`.
    neighbors : Neighbors, optional
        The neighbours of ``X`` computed once by :func:`interp_lib.id.nearest_neighbors`
        with ``k >= min(max_rank, N - 1)``: the search is skipped, with the same result.
    outlier_filter : bool, default False
        Drop the ratios at or above ``q50 + 20 (q95 - q50)`` at each scale before the fit,
        as DADApy's ``return_id_scaling_gride`` does (see the module docstring).

    Returns
    -------
    GrideResult

    Raises
    ------
    ValueError
        ``neighbors`` of other points, or with fewer than ``min(max_rank, N - 1)``
        neighbours per point.
    """
    metric, chunk_size, _ = check_options(metric, chunk_size)
    check_scale(scale)
    max_rank = check_int(max_rank, "max_rank", minimum=2)
    X = as_points(X, device=device)
    n = X.shape[0]
    max_rank = min(max_rank, n - 1)
    if neighbors is None:
        dist = knn(X, max_rank, metric=metric, chunk_size=chunk_size).distances.cpu()
    else:
        dist = check_neighbors(neighbors, n, max_rank, "gride").cpu()
    rows = []
    n1 = 1
    while 2 * n1 <= max_rank:
        n2 = 2 * n1
        table = ratio_table(dist, n1, n2, points=None if metric == "precomputed" else X)
        if table.mu.numel() >= 3:
            d, err = gride_mle(table.mu, n1, n2, outlier_filter=outlier_filter)
            kept = int((table.mu < outlier_ratio_threshold(table.mu)).sum())
            rows.append((n1, n2, d, err, length_scale(table, scale), table.mu.numel(), kept))
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
        n_fitted=torch.tensor(cols[6]) if outlier_filter else None,
    )
