"""The exact k-NN search of one very large point set, split over ``torch.distributed`` ranks.

Every rank holds all ``N`` points and searches the neighbours of **its block of query
rows** (positions ``r N / W`` to ``(r + 1) N / W`` of the search order, for rank ``r`` of
``W``) against all of them; only the ``(N, k)`` neighbour distances and indices are
gathered (an ``all_gather`` of each rank's ``(N / W, k)`` block), never a distance
matrix. The search of a block is that of :func:`interp_lib.id.nearest_neighbors` (see the
module documentation of ``interp_lib.id.neighbors``): the data at unit scale, the same
search space, the same rounded products, ``k + margin`` candidates per row measured
exactly in float64 by direct differences, the same rounding-error certificate, and the
same exhaustive recheck of the rows it cannot certify. For low-rank data (the projected
space) the rows are sorted by their first principal coordinate, as ``nearest_neighbors``
sorts them, each rank takes a contiguous block of that order, and each block of 512 rows
is compared only with the rows within reach along that coordinate (the windowed search);
in the full space each block of rows is compared with all rows. So the result is exact,
and its distances are bit for bit those of :func:`~interp_lib.id.nearest_neighbors`.

**Ties.** Among exactly tied distances (duplicate points, lattices) any choice is exact.
:func:`~interp_lib.id.nearest_neighbors` orders tied candidates by index too, but of a
tied group larger than its candidates it reports those its blocked search kept, which
depends on the blocking; this search keeps, for every row, the ``k``
smallest ``(distance, index)`` pairs: the lowest-indexed of a tied group, in ascending
index order (:func:`order_ties`). The certificate is strict (a row whose ``k``-th distance
could tie with a point left out of its candidates is rechecked against all points), so
the result is the same for any number of ranks and any ``chunk_size``: the brute-force
answer with a stable sort. Against :func:`~interp_lib.id.nearest_neighbors` the
distances are equal bit for bit, and the indices wherever a row's distances are not
exactly tied; a tied group can be represented by other members.

**Memory per rank** for ``N`` points of ``D`` dimensions stored in ``b`` bytes (4 for
float32, 8 for float64), ``k`` neighbours, ``m = k + margin`` candidates, blocks of
``c = chunk_size`` rows and ``W`` ranks:

- the points, ``N D b``, and a second ``N D b``: their centred copy (the full space) or
  the points in search order (the projected space, plus ``N (p + 1) b`` coordinates,
  ``p <= 32``); plus about ``5 N`` float64 values (norms, rounding bounds: ``40 N``
  bytes);
- one block of rounded squared distances, at most ``c^2 b`` (64 MiB for ``c = 4096`` in
  float32; ``512 x 2048`` values in the windowed search), with the ``c m`` best values
  and indices of its rows and their exact distances, ``c m (b + 24)`` bytes, and two
  8 MiB float64 work buffers;
- the rank's result, ``16 N k / W`` bytes, and the gathered one, ``16 N k`` (float64
  distances and int64 indices), with as much again for the gather's receive buffers.

About ``2 N D b + c^2 b + 32 N k + 40 N`` bytes plus 16 MiB, whatever ``W``: the points
are on every rank and dominate (``N = 10^6``, ``D = 1024``, float32: 8 GiB per rank); a
search whose points do not fit one rank would have to pass blocks of columns around the
ranks, which this one does not. What ``W`` divides is the work: ``N^2 q / W``
multiply-adds per rank in the full space (``q = D``), where one process searching all
rows uses the symmetry of the distances and does about ``N^2 q / 2`` (so ``W`` ranks take
about ``2 / W`` of its time); the windowed search of low-rank data has no such symmetry
and its work is divided by about ``W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from .._validation import ArrayLike, as_points, check_int
from .neighbors import (
    _WINDOW_ROWS,
    Neighbors,
    _block,
    _exponent,
    _in_order,
    _ldexp,
    _pair_distances,
    _search_space,
    _Space,
    _top_m_windowed,
    _unit_centred,
    by_distance_then_index,
    check_options,
)

__all__ = ["block_nearest_neighbors", "distributed_nearest_neighbors", "order_ties",
           "row_block"]  # fmt: skip


def order_ties(neighbors: Neighbors) -> Neighbors:
    """The same neighbours with exactly tied distances ordered by index.

    Each row is sorted by ``(distance, index)``: a row of :func:`~interp_lib.id.nearest_neighbors`
    (ascending distances) without ties is unchanged.

    Parameters
    ----------
    neighbors : Neighbors
        ``distances`` (N, k) and ``indices`` (N, k).

    Returns
    -------
    Neighbors
    """
    return Neighbors(*by_distance_then_index(neighbors.distances, neighbors.indices))


def row_block(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, stop)``: the positions of the search order that rank ``rank`` of
    ``world_size`` searches, a contiguous block of ``n // world_size`` or one more
    (``n * rank // world_size`` on)."""
    world_size = check_int(world_size, "world_size")
    rank = check_int(rank, "rank", minimum=0, maximum=world_size - 1)
    return n * rank // world_size, n * (rank + 1) // world_size


def _checked(X: ArrayLike, k: int, chunk_size: int, margin: int, device) -> tuple:
    _, chunk_size, margin = check_options("euclidean", chunk_size, margin)
    X = as_points(X, min_samples=2, device=device)
    k = check_int(k, "k")
    if k >= X.shape[0]:
        raise ValueError(f"k must be smaller than the number of points ({X.shape[0]}), got k={k}.")
    return X, k, chunk_size, margin


@dataclass
class _Prepared:
    """The search space of all rows (in search order), the rows in that order and the
    original index of each (``order``; ``None``: the input order)."""

    space: _Space
    Xp: torch.Tensor
    order: torch.Tensor | None
    e: int
    m: int


def _prepare(X: torch.Tensor, k: int, chunk_size: int, margin: int, *, sort: bool) -> _Prepared:
    """The search space of :func:`interp_lib.id.nearest_neighbors`; with ``sort`` and a
    projected space, rows sorted by their first principal coordinate (the windowed
    search), as ``nearest_neighbors`` does."""
    m = min(X.shape[0] - 1, k + margin)
    e = _exponent(X)
    space = _search_space(_unit_centred(X, e), k, m, chunk_size)
    if not (sort and space.rank):
        return _Prepared(space, X, None, e, m)
    order = torch.argsort(space.z1, stable=True)
    return _Prepared(*_in_order(space, X, order), order, e, m)


def _candidates_all(prep: _Prepared, a: int, b: int, chunk_size: int):
    """The ``m`` smallest rounded values of rows ``a:b`` against every row, (b - a, m)."""
    S, sq, split, m = prep.space.S, prep.space.sq, prep.space.split, prep.m
    n, dev = S.shape[0], S.device
    best_d = best_i = None
    for c in range(0, n, chunk_size):
        rc = slice(c, min(n, c + chunk_size))
        blk = _block(S[a:b], sq[a:b], S[rc], sq[rc], split)
        lo, hi = max(a, c), min(b, rc.stop)
        if lo < hi:  # the point itself, excluded by index
            own = torch.arange(lo, hi, device=dev)
            blk[own - a, own - c] = float("inf")
        d, j = torch.topk(blk, min(m, blk.shape[1]), dim=1, largest=False, sorted=True)
        j += c
        if best_d is not None:
            d, j = torch.cat([best_d, d], 1), torch.cat([best_i, j], 1)
            d, pos = torch.topk(d, m, dim=1, largest=False, sorted=True)
            j = torch.gather(j, 1, pos)
        best_d, best_i = d, j
    return best_d, best_i


def _candidates_windowed(prep: _Prepared, a0: int, b0: int, chunk_size: int):
    """``_top_m_windowed`` of :mod:`interp_lib.id.neighbors` for the rows ``a0:b0`` of
    the sorted order only: each block of rows compared with the rows around it, then
    only with the columns within reach along the first principal coordinate."""
    return _top_m_windowed(prep.space, prep.m, chunk_size, a0, b0)


def _lowest(
    rows: torch.Tensor, d: torch.Tensor, idx: torch.Tensor, n_rows: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row ``0 <= r < n_rows``, the ``k`` smallest ``(distance, index)`` pairs of the
    entries ``(rows, d, idx)`` (each row has at least ``k``)."""
    order = torch.argsort(idx, stable=True)
    order = order[torch.argsort(d[order], stable=True)]
    order = order[torch.argsort(rows[order], stable=True)]
    r = rows[order]
    counts = torch.bincount(r, minlength=n_rows)
    rank = torch.arange(r.numel(), device=r.device) - (torch.cumsum(counts, 0) - counts)[r]
    keep = rank < k
    out_d = torch.empty((n_rows, k), dtype=torch.float64, device=d.device)
    out_i = torch.empty((n_rows, k), dtype=torch.long, device=d.device)
    out_d[r[keep], rank[keep]] = d[order][keep]
    out_i[r[keep], rank[keep]] = idx[order][keep]
    return out_d, out_i


def _search_rows(
    prep: _Prepared, k: int, start: int, stop: int, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest of the rows ``start:stop`` of the search order among all rows:
    distances and original indices, ties by original index."""
    space, Xp, m = prep.space, prep.Xp, prep.m
    n, dev = Xp.shape[0], Xp.device
    orig = (lambda i: i) if prep.order is None else (lambda i: prep.order[i])
    out_d = torch.empty((stop - start, k), dtype=torch.float64, device=dev)
    out_i = torch.empty((stop - start, k), dtype=torch.long, device=dev)
    step = chunk_size if prep.order is None else max(chunk_size, _WINDOW_ROWS)
    for a in range(start, stop, step):
        b = min(stop, a + step)
        if prep.order is None:
            best_d, best_i = _candidates_all(prep, a, b, chunk_size)
        else:
            best_d, best_i = _candidates_windowed(prep, a, b, chunk_size)
        query = torch.arange(a, b, device=dev).repeat_interleave(m)
        exact = _pair_distances(Xp, query, best_i.reshape(-1)).view(b - a, m)
        found = order_ties(Neighbors(exact, orig(best_i)))
        d, idx = found.distances[:, :k].contiguous(), found.indices[:, :k].contiguous()
        if m < n - 1:  # the certificate of nearest_neighbors, strict: ties at the k-th
            dk2 = _ldexp(d[:, k - 1], -prep.e).square()  # distance are all candidates
            floor = best_d[:, -1].to(torch.float64) - space.slack[a:b]
            bad = (dk2 >= floor).nonzero().squeeze(1)
            if bad.numel():  # every row within reach: the recheck of nearest_neighbors
                bound = dk2[bad] + space.slack[a:b][bad]
                rows = bad + a
                per = max(1, (chunk_size * chunk_size) // n)
                for s in range(0, rows.numel(), per):
                    r = rows[s : s + per]
                    blk = _block(space.S[r], space.sq[r], space.S, space.sq, space.split)
                    blk = blk.to(torch.float64)
                    blk[torch.arange(r.numel(), device=dev), r] = float("inf")
                    ri, cj = (blk <= bound[s : s + per].unsqueeze(1)).nonzero().unbind(1)
                    dd = _pair_distances(Xp, r[ri], cj)
                    rd, rx = _lowest(ri, dd, orig(cj), r.numel(), k)
                    d[bad[s : s + per]], idx[bad[s : s + per]] = rd, rx
        out_d[a - start : b - start], out_i[a - start : b - start] = d, idx
    return out_d, out_i


def block_nearest_neighbors(
    X: ArrayLike,
    k: int = 2,
    start: int = 0,
    stop: int | None = None,
    *,
    chunk_size: int = 4096,
    margin: int = 2,
    device: torch.device | str | None = None,
) -> Neighbors:
    """Exact ``k`` nearest other rows of rows ``start:stop`` of ``X``, among all rows.

    The search of :func:`interp_lib.id.nearest_neighbors` for any block of query rows in
    the input order, each compared with all rows in the search space (no windows: see
    the module documentation); among exactly tied distances the lowest indices, in
    ascending order. Its rows are those of :func:`distributed_nearest_neighbors`, which
    splits the search order instead.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D)
        All the points, finite.
    k : int, default 2
        ``1 <= k < N``.
    start, stop : int
        The query rows, ``0 <= start <= stop <= N`` (``stop`` default ``N``).
    chunk_size, margin, device
        As in :func:`~interp_lib.id.nearest_neighbors`.

    Returns
    -------
    Neighbors
        ``distances`` (stop - start, k) float64 and ``indices`` (stop - start, k) int64:
        row ``i`` holds the neighbours of row ``start + i`` of ``X``.

    Raises
    ------
    ValueError
        As :func:`~interp_lib.id.nearest_neighbors`, and for rows out of range.
    TypeError
        As :func:`~interp_lib.id.nearest_neighbors`.
    """
    X, k, chunk_size, margin = _checked(X, k, chunk_size, margin, device)
    n = X.shape[0]
    stop = n if stop is None else check_int(stop, "stop", minimum=0, maximum=n)
    start = check_int(start, "start", minimum=0, maximum=stop)
    with torch.no_grad():
        prep = _prepare(X, k, chunk_size, margin, sort=False)
        return Neighbors(*_search_rows(prep, k, start, stop, chunk_size))


def distributed_nearest_neighbors(
    X: ArrayLike,
    k: int = 2,
    *,
    chunk_size: int = 4096,
    margin: int = 2,
    device: torch.device | str | None = None,
    group: dist.ProcessGroup | None = None,
) -> Neighbors:
    """:func:`interp_lib.id.nearest_neighbors` of one point set, the rows split over ranks.

    A collective: every rank of ``group`` calls it with the same ``X`` (all ``N``
    points) and gets the whole result. Rank ``r`` of ``W`` searches the positions
    :func:`row_block` gives it in the search order (the input order, or the rows sorted
    by their first principal coordinate for low-rank data) against all points; the
    ``(N, k)`` distances and indices are all-gathered and put back in the input order. Without an initialised process group (or with one rank) it runs
    alone. See the module documentation for exactness, ties and the memory per rank.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D)
        The points, the same on every rank (on the rank's GPU for ``nccl``).
    k : int, default 2
    chunk_size, margin, device
        As in :func:`~interp_lib.id.nearest_neighbors`.
    group : torch.distributed.ProcessGroup, optional
        Default: the default process group.

    Returns
    -------
    Neighbors
        ``distances`` (N, k) float64, ascending, and ``indices`` (N, k) int64, on every
        rank: the same for any number of ranks; the distances of
        :func:`~interp_lib.id.nearest_neighbors` bit for bit, and its indices except among
        exactly tied distances (here the lowest indices, ascending).

    Raises
    ------
    ValueError, TypeError
        As :func:`~interp_lib.id.nearest_neighbors` (on every rank: the checks come
        before any communication).
    """
    X, k, chunk_size, margin = _checked(X, k, chunk_size, margin, device)
    n = X.shape[0]
    alone = not (dist.is_available() and dist.is_initialized())
    rank, world = (0, 1) if alone else (dist.get_rank(group), dist.get_world_size(group))
    start, stop = row_block(n, rank, world)
    with torch.no_grad():
        prep = _prepare(X, k, chunk_size, margin, sort=True)
        d, i = _search_rows(prep, k, start, stop, chunk_size)
    if world == 1:
        return _unsorted(prep, d, i)
    # all_gather needs equal shapes: pad every block to the largest, then trim
    size = -(-n // world)
    on = X.device if dist.get_backend(group) == "nccl" else torch.device("cpu")
    blocks = []
    for t in (d, i):
        padded = torch.zeros((size, k), dtype=t.dtype, device=on)
        padded[: t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded, group=group)
        spans = [row_block(n, r, world) for r in range(world)]
        blocks.append(torch.cat([p[: b - a] for p, (a, b) in zip(parts, spans, strict=True)]))
    return _unsorted(prep, blocks[0].to(X.device), blocks[1].to(X.device))


def _unsorted(prep: _Prepared, d: torch.Tensor, i: torch.Tensor) -> Neighbors:
    """The rows of the search order back in the input order."""
    if prep.order is None:
        return Neighbors(d, i)
    out_d, out_i = torch.empty_like(d), torch.empty_like(i)
    out_d[prep.order], out_i[prep.order] = d, i
    return Neighbors(out_d, out_i)
