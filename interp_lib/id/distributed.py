"""The exact k-NN search of one very large point set, split over ``torch.distributed`` ranks.

Every rank holds all ``N`` points and searches the neighbours of **its block of query
rows** (rows ``r N / W`` to ``(r + 1) N / W`` of ``W`` ranks) against all of them; only
the ``(N, k)`` neighbour distances and indices are gathered (an ``all_gather`` of each
rank's ``(N / W, k)`` block), never a distance matrix. The search of a block is that of
:func:`interp_lib.id.nearest_neighbors` (see the module documentation of ``interp_lib.id.neighbors``): the data at
unit scale, the same search space (a projection for low-rank data, else the data), the
same rounded products, ``k + margin`` candidates per row measured exactly in float64 by
direct differences, the same rounding-error certificate, and the same exhaustive recheck
of the rows it cannot certify. So the result is exact, and its distances are bit for bit
those of :func:`~interp_lib.id.nearest_neighbors`.

**Ties.** Among exactly tied distances (duplicate points, lattices) any choice is exact.
:func:`~interp_lib.id.nearest_neighbors` keeps the candidates its blocked search met
first, which depends on the blocking; this search keeps, for every row, the ``k``
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

- the points, ``N D b``, and the search space: a centred copy, ``N D b`` more, in the
  full space, or ``N (p + 1) b`` with ``p <= 32`` for low-rank data; plus ``5 N`` float64
  bookkeeping values (norms, rounding bounds, ``40 N`` bytes);
- one block of rounded squared distances, ``c^2 b`` (64 MiB for ``c = 4096``, float32),
  and its ``c m`` best values and indices;
- the rank's candidates and their exact distances, ``(N / W) m (b + 16)``, and two
  8 MiB float64 work buffers;
- the gathered result, ``N k 16`` bytes (float64 distances, int64 indices) on every rank.

About ``2 N D b + c^2 b + (N / W) m (b + 16) + 16 N k`` bytes: only the candidates shrink
with ``W``; the points themselves are on every rank (at ``N = 10^6``, ``D = 1024``,
float32: 8 GiB per rank). The products, ``N^2 q / W`` multiply-adds per rank (``q = D``
or ``p + 1``), shrink with ``W``; one process searching all rows uses the symmetry of the
distances and does about ``N^2 q / 2``, so ``W`` ranks divide the time by about ``W / 2``
in the full space.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .._validation import ArrayLike, as_points, check_int
from .neighbors import (
    Neighbors,
    _block,
    _exponent,
    _ldexp,
    _pair_distances,
    _recheck,
    _search_space,
    _unit_centred,
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
    d, i = neighbors.distances, neighbors.indices
    by_index = torch.argsort(i, dim=1, stable=True)
    d, i = torch.gather(d, 1, by_index), torch.gather(i, 1, by_index)
    by_distance = torch.argsort(d, dim=1, stable=True)
    return Neighbors(torch.gather(d, 1, by_distance), torch.gather(i, 1, by_distance))


def row_block(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, stop)``: the rows rank ``rank`` of ``world_size`` searches, a contiguous
    block of ``n // world_size`` or one more rows (``n * rank // world_size`` on)."""
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


def _search_rows(
    X: torch.Tensor, k: int, start: int, stop: int, chunk_size: int, margin: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest of rows ``start:stop`` of ``X`` among all rows, ties by index."""
    n = X.shape[0]
    m = min(n - 1, k + margin)
    e = _exponent(X)
    space = _search_space(_unit_centred(X), k, m, chunk_size)
    S, sq, split = space.S, space.sq, space.split
    dev = X.device
    rows = stop - start
    out_d = torch.empty((rows, k), dtype=torch.float64, device=dev)
    out_i = torch.empty((rows, k), dtype=torch.long, device=dev)
    for a in range(start, stop, chunk_size):
        ra = slice(a, min(stop, a + chunk_size))
        t = ra.stop - a
        best_d = best_i = None
        for b in range(0, n, chunk_size):  # the m smallest rounded values of every row
            rb = slice(b, min(n, b + chunk_size))
            blk = _block(S[ra], sq[ra], S[rb], sq[rb], split)
            lo, hi = max(a, b), min(ra.stop, rb.stop)
            if lo < hi:  # the point itself, excluded by index
                own = torch.arange(lo, hi, device=dev)
                blk[own - a, own - b] = float("inf")
            d, j = torch.topk(blk, min(m, blk.shape[1]), dim=1, largest=False, sorted=True)
            j += b
            if best_d is not None:
                d, j = torch.cat([best_d, d], 1), torch.cat([best_i, j], 1)
                d, pos = torch.topk(d, m, dim=1, largest=False, sorted=True)
                j = torch.gather(j, 1, pos)
            best_d, best_i = d, j
        assert best_d is not None and best_i is not None
        query = torch.arange(a, ra.stop, device=dev).repeat_interleave(m)
        exact = _pair_distances(X, query, best_i.reshape(-1)).view(t, m)
        found = order_ties(Neighbors(exact, best_i))
        d, idx = found.distances[:, :k].contiguous(), found.indices[:, :k].contiguous()
        if m < n - 1:  # the certificate of nearest_neighbors, strict: ties at the k-th
            dk2 = _ldexp(d[:, k - 1], -e).square()  # distance are all among the candidates
            floor = best_d[:, -1].to(torch.float64) - space.slack[ra]
            bad = (dk2 >= floor).nonzero().squeeze(1)
            if bad.numel():
                bound = dk2[bad] + space.slack[ra][bad]
                rd, ri = _recheck(space, X, bad + a, bound, k, chunk_size)
                again = order_ties(Neighbors(rd, ri))
                d[bad], idx[bad] = again.distances, again.indices
        out_d[a - start : ra.stop - start], out_i[a - start : ra.stop - start] = d, idx
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

    The search of :func:`interp_lib.id.nearest_neighbors` for a block of query rows
    (see the module documentation); among exactly tied distances the lowest indices, in
    ascending order. Its rows are those of :func:`distributed_nearest_neighbors`.

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
        return Neighbors(*_search_rows(X, k, start, stop, chunk_size, margin))


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
    points) and gets the whole result. Rank ``r`` of ``W`` searches the rows
    :func:`row_block` gives it against all points; the ``(N, k)`` distances and indices
    are all-gathered. Without an initialised process group (or with one rank) it runs
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
        d, i = _search_rows(X, k, start, stop, chunk_size, margin)
    if world == 1:
        return Neighbors(d, i)
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
    blocks = [t.to(X.device) for t in blocks]
    return Neighbors(blocks[0], blocks[1])
