r"""Neighbour-distance ratios: the one home of what TwoNN, Gride and the scaling analyses share.

- :func:`as_ratios`: ratios given by the user, checked;
- :func:`check_prior`: a Gamma prior of the Bayesian TwoNN;
- :func:`keep_mask`: which points enter a ratio estimator (the degenerate-point rule,
  with ties and duplicates judged up to the float64 rounding of the distances, see
  :func:`rounding_bound`);
- :func:`point_norms`: the row norms that rounding bound needs;
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

from .._validation import ArrayLike, as_real_tensor, check_choice, check_int
from .neighbors import Neighbors

METRICS = ("euclidean", "precomputed")

#: Definitions of the length scale of an estimate at neighbour ranks ``(n1, n2)``:
#: ``"mean"``: the mean over points of ``(r_n1 + r_n2) / 2`` (DADApy's, the default);
#: ``"outer"``: the mean over points of ``r_n2`` (interp_lib before 0.2).
SCALES = ("mean", "outer")


#: Unit roundoff of float64, :math:`u = 2^{-53}`.
UNIT_ROUNDOFF = 2.0**-53


def point_norms(X: torch.Tensor | None, chunk_elements: int = 1 << 22) -> torch.Tensor | None:
    """Euclidean norms of the rows of ``X``, float64 on the CPU, without overflow at any
    finite scale (each row is divided by its largest entry first), in blocks of about
    ``chunk_elements`` entries (32 MB of float64); ``None`` stays ``None`` (a
    precomputed distance matrix: the points are unknown)."""
    if X is None:
        return None
    out = torch.empty(X.shape[0], dtype=torch.float64)
    chunk_rows = max(1, chunk_elements // max(1, X.shape[1]))
    for a in range(0, X.shape[0], chunk_rows):
        x = X[a : a + chunk_rows].to(torch.float64)
        top = x.abs().amax(dim=1, keepdim=True)
        safe = torch.where(top > 0, top, torch.ones_like(top))
        out[a : a + x.shape[0]] = (torch.linalg.vector_norm(x / safe, dim=1) * top[:, 0]).cpu()
    return out


def rounding_bound(
    r: torch.Tensor, norms: torch.Tensor | None = None, n_features: int = 1
) -> torch.Tensor:
    r"""A bound on the float64 rounding error of neighbour distances ``r``.

    A distance :math:`r = \lVert x - y \rVert` is computed in float64 from coordinates
    that are themselves float64 roundings of the intended values (``0.1 * k`` is not a
    multiple of 0.1), each with a relative error :math:`\le u = 2^{-53}`. Its error is
    then at most

    .. math:: u\,(\lVert x \rVert + \lVert y \rVert) + \tfrac{D + 3}{2}\,u\,r
              \le u\,(2 \lVert x \rVert + r) + \tfrac{D + 3}{2}\,u\,r,

    the first term from the coordinates (:math:`\lVert y \rVert \le \lVert x \rVert + r`),
    the second from the arithmetic (``D`` differences, squares and sums, one square root).
    Without the points (a precomputed matrix) only a few roundings of the distances
    themselves are allowed for: :math:`4 u r`.

    Parameters
    ----------
    r : torch.Tensor, shape (N,), float64
        Distances from each point to one of its neighbours.
    norms : torch.Tensor, shape (N,), float64, optional
        :math:`\lVert x \rVert` of each point (:func:`point_norms`).
    n_features : int
        ``D``.
    """
    if norms is None:
        return 4 * UNIT_ROUNDOFF * r
    return UNIT_ROUNDOFF * (2 * norms + r) + (n_features + 3) / 2 * UNIT_ROUNDOFF * r


def keep_mask(
    r_near: torch.Tensor,
    r_far: torch.Tensor,
    tol_near: torch.Tensor | None = None,
    tol_far: torch.Tensor | None = None,
) -> torch.Tensor:
    """Points a ratio estimator keeps: no duplicate (``r_near > 0``), no tie (``r_far > r_near``).

    With rounding bounds (:func:`rounding_bound`) both are judged up to the rounding of
    the distances: a duplicate is ``r_near <= tol_near``, a tie is
    ``r_far - r_near <= tol_near + tol_far`` (the two distances cannot be told apart).
    Points of a lattice at any spacing (0.1, 0.3, 0.7, not only powers of two) are then
    ties, as the exact lattice's are, instead of ratios :math:`1 + 10^{-15}` that would
    give a dimension of :math:`10^{15}`. Data without such near-ties keep exactly the
    points they kept without bounds.

    Parameters
    ----------
    r_near, r_far : torch.Tensor, shape (N,)
        Distances to the ``n1``-th and ``n2``-th neighbours (``n1 < n2``).
    tol_near, tol_far : torch.Tensor, shape (N,), optional
        Their rounding bounds; without them, exact comparisons.

    Returns
    -------
    torch.Tensor, shape (N,), bool
    """
    if tol_near is None or tol_far is None:
        return (r_near > 0) & (r_far > r_near)
    return (r_near > tol_near) & (r_far - r_near > tol_near + tol_far)


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
        Points with ``r_near == 0`` (up to rounding).
    n_ties : int
        Points with ``0 < r_near == r_far`` (up to rounding).
    """

    mu: torch.Tensor
    r_near: torch.Tensor
    r_far: torch.Tensor
    n_duplicates: int
    n_ties: int


def ratio_table(
    distances: torch.Tensor | Neighbors,
    n1: int = 1,
    n2: int = 2,
    *,
    points: torch.Tensor | None = None,
) -> RatioTable:
    """The kept ratios ``r_n2 / r_n1`` from sorted neighbour distances.

    Duplicates and ties are judged up to the float64 rounding of the distances (the
    private ``keep_mask`` and ``rounding_bound`` of this module): with ``points``, from
    their norms and dimension; without (a precomputed distance matrix), from the
    distances alone. This
    is the table behind :func:`interp_lib.id.twonn` (ranks 1, 2, with the points) and
    :func:`interp_lib.id.gride` (ranks ``n1, 2 n1``).

    Parameters
    ----------
    distances : torch.Tensor, shape (N, k), or Neighbors
        Distances to the 1st..k-th neighbours, ascending, ``k >= n2``: the
        :class:`interp_lib.id.Neighbors` of :func:`interp_lib.id.nearest_neighbors`, or
        their ``distances``.
    n1, n2 : int
        1-based neighbour ranks, ``n1 < n2``.
    points : torch.Tensor, shape (N, D), optional
        The points the distances were computed from.

    Raises
    ------
    ValueError
        Fewer than ``n2`` neighbours per point, or ranks not ``1 <= n1 < n2``.
    """
    if isinstance(distances, Neighbors):
        distances = distances.distances
    n1 = check_int(n1, "n1")
    n2 = check_int(n2, "n2", minimum=2)
    if n2 <= n1 or distances.ndim != 2 or distances.shape[1] < n2:
        raise ValueError(
            f"ratio_table needs ranks 1 <= n1 < n2 and distances (N, k) with k >= n2, got "
            f"n1={n1}, n2={n2} and shape {tuple(distances.shape)}; compute the neighbours "
            f"with nearest_neighbors(X, k={max(n2, 2)})."
        )
    dist = distances.cpu()
    r1, r2 = dist[:, n1 - 1], dist[:, n2 - 1]
    norms = point_norms(points)
    n_features = 1 if points is None else int(points.shape[1])
    t1, t2 = rounding_bound(r1, norms, n_features), rounding_bound(r2, norms, n_features)
    keep = keep_mask(r1, r2, t1, t2)
    dup = ~(r1 > t1)
    n_dup = int(dup.sum())
    n_tie = int((~dup & ~keep).sum())
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
