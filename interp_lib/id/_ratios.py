r"""Neighbour-distance ratios: the one home of what TwoNN, Gride and the scaling analyses share.

- :func:`as_ratios`: ratios given by the user, checked;
- :func:`check_prior`: a Gamma prior of the Bayesian TwoNN;
- :func:`keep_mask`: which points enter a ratio estimator (the degenerate-point rule);
- :func:`ratio_table`: the kept ratios :math:`r_{n_2} / r_{n_1}` from a table of sorted
  neighbour distances, with the counts of what was dropped;
- :func:`length_scale`: the length scale an estimate probes (two definitions, see
  :data:`SCALES`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from .._validation import ArrayLike, as_real_tensor, check_choice

METRICS = ("euclidean", "precomputed")

#: Definitions of the length scale of an estimate at neighbour ranks ``(n1, n2)``:
#: ``"mean"``: the mean over points of ``(r_n1 + r_n2) / 2`` (DADApy's, the default);
#: ``"outer"``: the mean over points of ``r_n2`` (interp_lib before 0.2).
SCALES = ("mean", "outer")


def keep_mask(r_near: torch.Tensor, r_far: torch.Tensor) -> torch.Tensor:
    """Points a ratio estimator keeps: no duplicate (``r_near > 0``), no tie (``r_far > r_near``).

    Parameters
    ----------
    r_near, r_far : torch.Tensor, shape (N,)
        Distances to the ``n1``-th and ``n2``-th neighbours (``n1 < n2``).

    Returns
    -------
    torch.Tensor, shape (N,), bool
    """
    return (r_near > 0) & (r_far > r_near)


@dataclass(frozen=True)
class RatioTable:
    """Ratios of the kept points at one pair of ranks, and what was dropped.

    Attributes
    ----------
    mu : torch.Tensor, shape (n_used,), float64
        ``r_far / r_near`` of the kept points, in input order.
    r_near, r_far : torch.Tensor, shape (n_used,), float64
        Their neighbour distances.
    n_duplicates : int
        Points with ``r_near == 0``.
    n_ties : int
        Points with ``0 < r_near == r_far``.
    """

    mu: torch.Tensor
    r_near: torch.Tensor
    r_far: torch.Tensor
    n_duplicates: int
    n_ties: int


def ratio_table(distances: torch.Tensor, n1: int = 1, n2: int = 2) -> RatioTable:
    """The kept ratios ``r_n2 / r_n1`` from sorted neighbour distances.

    Parameters
    ----------
    distances : torch.Tensor, shape (N, k), ``k >= n2``
        Distances to the 1st..k-th neighbours, ascending (from the neighbour search).
    n1, n2 : int
        1-based neighbour ranks, ``n1 < n2``.
    """
    dist = distances.cpu()
    r1, r2 = dist[:, n1 - 1], dist[:, n2 - 1]
    keep = keep_mask(r1, r2)
    n_dup = int((r1 == 0).sum())
    n_tie = int(((r1 > 0) & (r1 == r2)).sum())
    r1, r2 = r1[keep], r2[keep]
    return RatioTable(r2 / r1, r1, r2, n_dup, n_tie)


def check_scale(scale: str) -> str:
    """Check a length-scale definition (one of :data:`SCALES`)."""
    return check_choice(scale, "scale", SCALES)


def length_scale(table: RatioTable, scale: str = "mean") -> float:
    """The length scale probed by the ratios of ``table``.

    ``"mean"``: mean of ``(r_n1 + r_n2) / 2`` over the kept points (DADApy's definition,
    ``rs_scaling`` of ``return_id_scaling_gride`` and the scale of ``compute_id_2NN``);
    ``"outer"``: mean of ``r_n2`` over the kept points.
    """
    if scale == "outer":
        return float(table.r_far.mean())
    return float(((table.r_near + table.r_far) / 2).mean())


def as_ratios(mu: ArrayLike) -> torch.Tensor:
    """Ratios as a 1-D float64 CPU tensor of finite numbers ``>= 1``."""
    t = as_real_tensor(
        mu, "mu", must="must hold real ratios r2 / r1", ragged="a 1-D array of ratios r2 / r1"
    )
    t = t.to(device="cpu", dtype=torch.float64)
    if t.ndim != 1:
        raise ValueError(f"mu must be 1-D with shape (N,), got shape {tuple(t.shape)}.")
    if t.numel() < 2:
        raise ValueError(f"need at least 2 ratios mu, got {t.numel()}.")
    if not bool(torch.isfinite(t).all()) or not bool((t >= 1).all()):
        raise ValueError("ratios mu = r2 / r1 must be finite and >= 1.")
    return t


def check_prior(prior: tuple[float, float]) -> tuple[float, float]:
    """A Gamma (shape, rate) prior: two positive, finite real numbers."""
    try:
        a, b = prior
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"prior must be a pair (shape, rate) of positive numbers, got {prior!r}."
        ) from exc
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"prior must hold two real numbers (shape, rate), got {prior!r}.")
    if not (0 < a < math.inf and 0 < b < math.inf):
        raise ValueError(f"prior (shape, rate) must be positive and finite, got {prior!r}.")
    return float(a), float(b)
