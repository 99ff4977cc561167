"""Error bars by subsampling: one estimator, many random subsets of the points.

Ansuini et al. report the standard deviation of the TwoNN estimate over random 90 %
subsamples, with the neighbours recomputed inside each. :func:`subsample_estimates` is
that loop, written once for :func:`interp_lib.id.twonn` and
:func:`interp_lib.profile.layer_ids`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._validation import check_fraction, check_int, make_generator

__all__ = ["subsample_estimates"]


def subsample_estimates(
    X: torch.Tensor,
    estimator: Callable[[torch.Tensor], float | None],
    *,
    n_resamples: int,
    subsample: float = 0.9,
    seed: int | torch.Generator | None = 0,
) -> torch.Tensor:
    """The estimator on ``n_resamples`` random subsets of ``max(3, floor(subsample * N))`` rows.

    Each subset is the first rows of a fresh ``torch.randperm(N)`` drawn from ``seed``
    (on the CPU, then moved to ``X``'s device), so that the same seed picks the same
    subsets on any device and for any estimator.

    Parameters
    ----------
    X : torch.Tensor, shape (N, ...)
        The points (rows).
    estimator : callable
        ``estimator(X[idx]) -> float``, or ``None`` to skip a subset (e.g. too few
        usable points in it).
    n_resamples : int, >= 0
    subsample : float in (0, 1], default 0.9
    seed : int, torch.Generator or None, default 0

    Returns
    -------
    torch.Tensor, shape (n_kept,), float64
        The estimates of the subsets that were not skipped, in draw order.
    """
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    subsample = check_fraction(subsample, "subsample")
    if not isinstance(X, torch.Tensor) or X.ndim < 1:
        raise TypeError(f"X must be a torch.Tensor of shape (N, ...), got {type(X).__name__}.")
    if not callable(estimator):
        raise TypeError(f"estimator must be callable, got {type(estimator).__name__}.")
    gen = make_generator(seed)
    n = X.shape[0]
    m = max(3, math.floor(subsample * n))
    values = []
    for _ in range(n_resamples):
        idx = torch.randperm(n, generator=gen)[:m].to(X.device)
        value = estimator(X[idx])
        if value is not None:
            values.append(float(value))
    return torch.tensor(values, dtype=torch.float64)
