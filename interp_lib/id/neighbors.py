"""Exact k-nearest-neighbour search, blocked, on any device, at any finite scale.

The search never trusts a fast, rounded distance without proof. It works in four steps:

1. **Unit scale.** The data are multiplied by an exact power of two so that the largest
   entry lies in ``[0.5, 1)``, then centred. Nothing in the fast search can overflow or
   underflow for any finite input, and the search at ``2**j * X`` is bit for bit the
   search at ``X``.
2. **Fast candidate search** for the ``k + margin`` best candidates of every row, in
   the input's float type (float32 or float64) with matrix products,
   ``|x|^2 + |y|^2 - 2 x.y``, in a *search space* whose squared distances are lower
   bounds of the true ones.

   - *Projected* (low-rank data, ``N >= 4096``; chosen on a probe of rows): the
     projection onto the leading principal directions plus the norm of the residual,
     ``||Px - Py||^2 + (|Rx| - |Ry|)^2 <= ||x - y||^2``, with ``p + 1 << D``
     coordinates. Rows are sorted by their first principal coordinate; a small block of
     rows is compared with the rows around it first, which gives every row a threshold
     (its current ``m``-th best value), then only with the columns whose first
     coordinate is within ``sqrt(threshold)`` of the block: the others cannot be closer.
   - *Full space* (otherwise): the data themselves, in tiles of at most ``_TILE`` rows.
     The diagonal blocks give every row a threshold; then the blocks of pairs of tiles
     ``i < j`` only, each read for its rows and its columns. Where a principal direction
     was estimated (``N >= 4096``) and the data take at most ``_MAX_SORTED_BYTES`` (128
     MB; sorting costs copies of them), the rows are sorted along it, the pairs come
     nearest first, a pair farther apart along it than every threshold of its rows is
     skipped, and of the others only the rows and columns within reach are computed
     (:func:`_top_m_symmetric`). For wide float32 rows (``D >= 4096``) the
     products are float32 products of 512-column slices summed in float64: their
     rounding bound then grows with 512, not with ``D``, and the certificate (step 4)
     rarely fails.

   Past the first top-m of a row, an entry is kept only if it is below its row's (or
   column's) current threshold; the few survivors are merged.

   Memory is ``O(chunk_size^2 + N (k + margin))``.
3. **Exact distances** of the first ``k`` candidates of every row (of all ``k + margin``
   for the few rows whose next candidate's value does not prove it farther), in float64
   by direct differences of the original rows, gathered through small reused buffers (with a
   power-of-two rescaling of each difference for float64 input, so that the squares
   cannot under- or overflow).
4. **Certificate.** A row is done when its ``k``-th exact distance is provably no larger
   than any distance the search rejected. The rounding error of a value of step 2 is
   at most ``c u (|x|^2 + |y|^2)`` (``u`` the unit roundoff, ``c`` from the length of
   the products); every squared norm enters the products lowered by its own share
   ``c u |x|^2``, so that every computed value is a lower bound of the true one up to
   the rounding of that shift, and one large norm does not loosen the other rows'
   certificates. The other rows, typically near-ties within the float32 error or rows
   whose neighbours the projection could not separate, are searched again, with the
   threshold their exact ``k``-th distance gives, against every row within reach along
   the first principal coordinate (every row without one); all points that might be
   closer get their exact distance.

The point itself is excluded **by index**, never by value, so exact duplicates are
reported as neighbours at distance 0. Among exactly tied distances the lower index
comes first, for any blocking and thread count; of a tied group larger than the
candidates, which members are reported depends on the blocking
(:func:`interp_lib.id.distributed.distributed_nearest_neighbors` reports the lowest-indexed
ones).

**Threads.** On the CPU the search runs single-threaded (a scoped
``torch.set_num_threads(1)``, the caller's setting restored on exit and on errors), and
spreads its work over as many worker threads as the caller's torch thread count, each
single-threaded, started once per process (:func:`_pool`): the diagonal blocks and the
pairs of tiles of the full-space search (:func:`_run_in_order`: a pair starts once the
earlier pairs of its two tiles are done), the blocks of rows of the projected search,
and the passes over rows (centring, norms and scores, the gathers into search order,
exact candidate distances), the last three through :func:`_run_blocks` in fixed
blocks.
The other large products (at least :data:`_MIN_PARALLEL_FLOPS` floating-point
operations each) get the caller's thread count. Every other step is a pass over at
most a few megabytes: split over torch's threads it is too short to pay for the fork
and join, and torch's OpenMP workers spin while they wait for work, so on a machine
whose cores are busy the extra threads only burn CPU and delay the main thread (our
workers wait asleep). The thread count changes no result, bit for bit (the blocks, the
order of each tile's work and the products are the same). :func:`interp_lib.id.twonn` runs its
own passes over the data (checks, ratios, fit) in the same scope. ``torch``'s thread
setting belongs to the calling OS thread, so concurrent searches in other threads keep
theirs.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import heapq
import math
import numbers
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .._validation import ArrayLike, as_points, check_int

__all__ = ["Neighbors", "nearest_neighbors"]

METRICS = ("euclidean", "precomputed")
_PROJECTION_RANKS = (8, 16, 32)  # tried in order; the smallest one that separates wins
_PROBE_ROWS = 64
_BASIS_ROWS = 512
_SUBSAMPLE = 4096  # rows on which the search space is chosen
_WINDOW_ROWS = 512  # rows per block of the windowed search
_MIN_ROWS_PROJECTED = 4096  # below, one or a few products in the full space are cheaper
_SPLIT = 512  # float32 products of wide rows: columns per partial product (float64 sum)
_MIN_COLS_SPLIT = 8 * _SPLIT
_TILE = 1024  # rows per tile of the full-space search: a (tile, tile) block stays in cache
#: Entries per group whose minimum is compared first (see :func:`_below_grouped`), along
#: a row and along a column: the sizes at which torch's CPU reductions are fastest.
_GROUP = {1: 64, 0: 16}
#: The full-space search sorts the rows (for the pruning along ``z1``) only for data of at
#: most this many bytes: sorting keeps the rows in search order, one more copy of the data,
#: and a second while the search-space copy is permuted.
_MAX_SORTED_BYTES = 1 << 27
#: Products of at least this many floating-point operations (``2 na nb q``) run with the
#: caller's threads; everything else single-threaded (see "Threads" in the module doc).
_MIN_PARALLEL_FLOPS = 1 << 28
#: The caller's torch thread count inside :func:`_single_threaded` (0: outside it).
_CALLER_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar(
    "interp_lib_knn_threads", default=0
)


@dataclass(frozen=True)
class Neighbors:
    """The k nearest other rows of every row.

    Attributes
    ----------
    distances : torch.Tensor, shape (N, k), float64
        Euclidean distances, ascending along each row.
    indices : torch.Tensor, shape (N, k), int64
        Row indices of the neighbours; never the row itself.
    """

    distances: torch.Tensor
    indices: torch.Tensor

    def __iter__(self):  # allows ``d, i = nearest_neighbors(X)``
        return iter((self.distances, self.indices))


# ----------------------------------------------------------------------------- checks


def check_options(metric: str, chunk_size: int, margin: int = 2) -> tuple[str, int, int]:
    """Validate the options shared by every neighbour-based estimator.

    Returns
    -------
    tuple
        ``(metric, chunk_size, margin)``, the latter two as Python ints.

    Raises
    ------
    ValueError
        For an unknown ``metric`` or ``chunk_size < 1`` / ``margin < 0``.
    TypeError
        For a non-integer ``chunk_size`` or ``margin``.
    """
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(
            f"metric must be 'euclidean' or 'precomputed', got {metric!r}. For another "
            "metric compute the (N, N) distances yourself, e.g. "
            "D = scipy.spatial.distance.cdist(X, X, metric='cosine'), and pass D with "
            "metric='precomputed'."
        )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(
            f"chunk_size must be a positive integer (rows per block), got "
            f"{type(chunk_size).__name__} {chunk_size!r}."
        )
    if chunk_size < 1:
        raise ValueError(
            f"chunk_size must be a positive integer (rows per block), got {chunk_size}. "
            "Leave the default (4096) or pass e.g. 1024 to use less memory."
        )
    return metric, int(chunk_size), check_int(margin, "margin", minimum=0)


def check_precomputed(D: torch.Tensor, chunk_size: int = 4096) -> None:
    """Check that ``D`` is a matrix of Euclidean-like distances.

    It must be square, non-negative, with a zero diagonal (up to ``10 sqrt(eps) max(D)``,
    the noise ``torch.cdist`` leaves there) and symmetric up to rounding
    (``|D - D.T| <= 1000 eps max(D)``). Finiteness is checked by
    :func:`interp_lib._validation.as_points`.

    Raises
    ------
    ValueError
        Naming the first problem found and what to do about it.
    """
    n = D.shape[0]
    if D.ndim != 2 or D.shape[1] != n:
        raise ValueError(
            f"a precomputed distance matrix must be square (N, N), got shape "
            f"{tuple(D.shape)}. Pass the features with metric='euclidean', or the full "
            "matrix of pairwise distances."
        )
    if not bool(torch.isfinite(D).all()):
        raise ValueError(
            "a precomputed distance matrix must be finite; it contains NaN or infinity."
        )
    if bool((D < 0).any()):
        raise ValueError(
            f"a precomputed distance matrix must not contain negative distances; its "
            f"smallest entry is {float(D.min()):.6g}. Distances are >= 0: check how it was "
            "computed (e.g. clamp rounding errors with D.clamp_min(0))."
        )
    scale = float(D.max()) if n else 0.0
    eps = torch.finfo(D.dtype).eps
    tol = 1000 * eps * scale
    diag = D.diagonal().abs()
    # the expansion used by e.g. torch.cdist leaves ~sqrt(eps) * scale on the diagonal
    if bool((diag > 10 * math.sqrt(eps) * scale).any()):
        raise ValueError(
            f"a precomputed distance matrix must have a zero diagonal (the distance of a "
            f"point to itself), got {int((diag > 10 * math.sqrt(eps) * scale).sum())} "
            "non-zero diagonal entries "
            f"(largest {float(diag.max()):.6g}). Is this a distance matrix? If the "
            "diagonal only holds rounding noise, set it with D.fill_diagonal_(0)."
        )
    for a in range(0, n, chunk_size):
        gap = (D[a : a + chunk_size] - D[:, a : a + chunk_size].T).abs()
        if bool((gap > tol).any()):
            raise ValueError(
                f"a precomputed distance matrix must be symmetric, but |D - D.T| reaches "
                f"{float(gap.max()):.6g} (tolerance {tol:.3g}). Pass a symmetric matrix, "
                "e.g. (D + D.T) / 2 if the asymmetry is rounding noise."
            )


# ---------------------------------------------------------------------- exact scaling


def _ldexp(t: torch.Tensor, e: int) -> torch.Tensor:
    """``t * 2**e`` exactly (in two steps, so that the factor itself is representable)."""
    h = e // 2
    return t * (2.0**h) * (2.0 ** (e - h))


def _exponent(X: torch.Tensor) -> int:
    """``e`` such that ``max|X| * 2**-e`` lies in ``[0.5, 1)`` (0 for an all-zero X)."""
    if X.numel() == 0:
        return 0
    lo, hi = torch.aminmax(X)  # one pass, no copy of X
    top = max(-float(lo), float(hi))
    if top == 0.0:
        return 0
    return math.frexp(top)[1]


def _unit_centred(X: torch.Tensor, e: int | None = None) -> torch.Tensor:
    """``2**-e X - c``: scaled to unit size (``e``: :func:`_exponent`, computed when not
    given) and centred, in X's dtype.

    ``c`` is the column mean of the scaled data, summed by one matrix-vector product
    with weights ``2**-e / N`` (nothing can overflow); ``Y`` is then written in one pass.
    Any centre keeps the search exact (a translation changes no distance); this one is
    the same, bit for bit, for ``2**j X``.
    """
    n = X.shape[0]
    e = _exponent(X) if e is None else e
    if abs(e) > 100:  # the factor is not a float32 number: the exact two-step scaling
        Y = _ldexp(X, -e)
        return Y - Y.mean(dim=0, dtype=torch.float64, keepdim=True).to(Y.dtype)
    w = torch.full((n,), 2.0**-e / n, dtype=X.dtype, device=X.device)
    centre = torch.mv(X.T, w).neg_()
    Y = torch.empty_like(X, memory_format=torch.contiguous_format)

    def block(a: int, b: int) -> None:
        torch.add(centre, X[a:b], alpha=2.0**-e, out=Y[a:b])

    _run_blocks(n, max(1, _BUFFER // max(1, X.shape[1])), block, _workers(X.device))
    return Y


# ------------------------------------------------------------------------ threads


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block; the previous count restored on exit
    and on errors (nothing is changed when it is already ``n``)."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _target_device(X: object, device: torch.device | str | None) -> torch.device:
    """The device a computation on ``X`` runs on: ``device``, else a tensor's own, else
    the CPU (also for an invalid ``device``: ``as_points`` then reports it)."""
    if device is None:
        return X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
    try:
        return torch.device(device)
    except (TypeError, ValueError, RuntimeError):
        return torch.device("cpu")


@contextlib.contextmanager
def _single_threaded(device: torch.device) -> Iterator[None]:
    """Run a CPU search with one torch thread, remembering the caller's count for the
    large products (:func:`_product_threads`); on other devices nothing changes."""
    if device.type != "cpu" or _CALLER_THREADS.get():
        yield
        return
    token = _CALLER_THREADS.set(torch.get_num_threads())
    try:
        with _torch_threads(1):
            yield
    finally:
        _CALLER_THREADS.reset(token)


def _workers(device: torch.device) -> int:
    """Worker threads a CPU search spreads its work over: the caller's torch thread count
    inside :func:`_single_threaded`, else 1 (and 1 on other devices)."""
    return max(1, _CALLER_THREADS.get()) if device.type == "cpu" else 1


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's ``workers`` worker threads, each at one torch thread, started once
    (a search pays no thread start per call); a forked child starts its own."""
    key = (os.getpid(), workers)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(
                workers,
                thread_name_prefix="interp_lib-knn",
                initializer=torch.set_num_threads,  # per OS thread
                initargs=(1,),
            )
        return _POOLS[key]


def _run_blocks(n: int, step: int, fn: Callable[[int, int], None], workers: int) -> None:
    """``fn(a, b)`` for the blocks ``[a, b)`` of ``step`` rows of ``range(n)``, spread over
    ``workers`` threads. The blocks are the same for any thread count, so is every
    block's result: a pass over rows gives the same bits at any thread count."""
    blocks = [(a, min(n, a + step)) for a in range(0, n, step)]
    if workers <= 1 or len(blocks) == 1:
        for a, b in blocks:
            fn(a, b)
        return
    for f in [_pool(workers).submit(fn, a, b) for a, b in blocks]:
        f.result()


def _run_in_order(
    jobs: list[tuple[Callable[..., None], tuple, tuple[int, ...]]],
    workers: int,
    bufs: list[torch.Tensor],
) -> None:
    """Run ``fn(*args, buf)`` for each job ``(fn, args, keys)`` as if one after another in
    list order, on ``workers`` threads (``bufs[w]``: worker ``w``'s own buffer).

    A job starts once every earlier job that shares a key with it has finished; so the
    jobs of one key (a tile of rows: the jobs that read and write its rows) run in list
    order and never two at once, and the result is the sequential one, bit for bit. A
    free worker takes the earliest such job: no barrier holds it idle while other work
    is ready. The first error stops the workers and is raised here.
    """
    if workers <= 1:
        for fn, args, _ in jobs:
            fn(*args, bufs[0])
        return
    queue: dict[int, collections.deque[int]] = collections.defaultdict(collections.deque)
    for p, (_, _, keys) in enumerate(jobs):
        for key in keys:
            queue[key].append(p)
    ready = [p for p, (_, _, keys) in enumerate(jobs) if all(queue[c][0] == p for c in keys)]
    heapq.heapify(ready)
    queued = set(ready)
    cond = threading.Condition()
    state = {"done": 0, "error": None}

    def work(w: int) -> None:
        while True:
            with cond:
                while not ready and state["done"] < len(jobs) and state["error"] is None:
                    cond.wait()
                if not ready or state["error"] is not None:
                    return
                p = heapq.heappop(ready)
            fn, args, keys = jobs[p]
            try:
                fn(*args, bufs[w])
            except BaseException as exc:  # raised again by the caller
                with cond:
                    state["error"] = exc
                    cond.notify_all()
                return
            with cond:
                state["done"] += 1
                for key in keys:
                    queue[key].popleft()
                    if queue[key]:
                        q = queue[key][0]
                        if q not in queued and all(queue[c][0] == q for c in jobs[q][2]):
                            queued.add(q)
                            heapq.heappush(ready, q)
                cond.notify_all()

    for f in [_pool(workers).submit(work, w) for w in range(workers)]:
        f.result()
    if state["error"] is not None:
        raise state["error"]


def _product_threads(na: int, nb: int, q: int):
    """The thread scope of an (na, q) x (q, nb) product: the caller's threads for a large
    one inside :func:`_single_threaded`, else the current setting."""
    caller = _CALLER_THREADS.get()
    if caller > 1 and 2 * na * nb * q >= _MIN_PARALLEL_FLOPS:
        return _torch_threads(caller)
    return contextlib.nullcontext()


# ------------------------------------------------------------------ exact distances


def _norms64(diff: torch.Tensor, rescale: bool) -> torch.Tensor:
    """Row norms of a float64 (P, D) tensor; ``rescale`` guards the squares against
    under- and overflow by an exact power-of-two scaling of each row (``diff`` is
    modified)."""
    if not rescale:
        return torch.linalg.vector_norm(diff, dim=1)
    top = diff.abs().amax(dim=1)
    e = torch.frexp(top).exponent.to(torch.float64)
    e = torch.where(top > 0, e, torch.zeros_like(e))
    h = torch.floor(e / 2)
    diff *= torch.exp2(-h).unsqueeze(1)
    diff *= torch.exp2(h - e).unsqueeze(1)
    return torch.linalg.vector_norm(diff, dim=1) * torch.exp2(h) * torch.exp2(e - h)


_BUFFER = 1 << 20  # elements per float64 work buffer (8 MB), allocated once per call
#: Rows per block of the exact candidate distances at most: for narrow rows the blocks'
#: work buffers then stay in the core's cache and take few fresh pages.
_CANDIDATE_ROWS = 1024


def _buffers(X: torch.Tensor, rows: int):
    """Reusable work buffers of ``step`` rows: (step, gather buffer, float64 buffer)."""
    step = max(1, min(rows, _BUFFER // max(1, X.shape[1])))
    g = torch.empty((step, X.shape[1]), dtype=X.dtype, device=X.device)
    return step, g, torch.empty((step, X.shape[1]), dtype=torch.float64, device=X.device)


def _pair_distances(X: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Exact float64 distances ``||X[rows] - X[cols]||`` by direct differences.

    Float64 input gets a power-of-two rescaling of every difference so that the squares
    neither underflow nor overflow; for float32 input the squares always fit float64.
    The rows are gathered into small reused buffers (no large temporary tensors).

    Returns
    -------
    torch.Tensor, shape (P,), float64
    """
    p = rows.numel()
    out = torch.empty(p, dtype=torch.float64, device=X.device)
    step, g, diff = _buffers(X, p)
    x64 = torch.empty_like(diff)
    for a in range(0, p, step):
        t = min(step, p - a)
        torch.index_select(X, 0, cols[a : a + t], out=g[:t])
        diff[:t].copy_(g[:t])
        torch.index_select(X, 0, rows[a : a + t], out=g[:t])
        x64[:t].copy_(g[:t])
        diff[:t].sub_(x64[:t])
        out[a : a + t] = _norms64(diff[:t], X.dtype == torch.float64)
    return out


def _candidate_distances(X: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Exact float64 distances ``||X[i] - X[cand[i, j]]||``, shape (N, m).

    Like :func:`_pair_distances`; the ``m`` candidates of a few rows at a time are
    gathered at once into a small buffer, the blocks of rows spread over the worker
    threads (:func:`_run_blocks`).
    """
    n, m = cand.shape
    d = X.shape[1]
    out = torch.empty((n, m), dtype=torch.float64, device=X.device)
    step = max(1, min(n, _BUFFER // max(1, m * d), _CANDIDATE_ROWS))
    buffers: dict[int, tuple[torch.Tensor, ...]] = {}  # per thread, reused block to block

    def block(a: int, b: int) -> None:
        t = b - a
        g, diff, x = buffers.get(threading.get_ident()) or buffers.setdefault(
            threading.get_ident(),
            (
                torch.empty((step * m, d), dtype=X.dtype, device=X.device),
                torch.empty((step, m, d), dtype=torch.float64, device=X.device),
                torch.empty((step, 1, d), dtype=torch.float64, device=X.device),
            ),
        )
        torch.index_select(X, 0, cand[a:b].reshape(-1), out=g[: t * m])
        x[:t, 0].copy_(X[a:b])  # float64 first: the differences are then exact
        diff[:t].view(t * m, d).copy_(g[: t * m])  # conversions, then float64 arithmetic:
        diff[:t].sub_(x[:t])  # faster than one mixed-dtype subtraction
        out[a:b] = _norms64(diff[:t].view(t * m, d), X.dtype == torch.float64).view(t, m)

    _run_blocks(n, step, block, _workers(X.device))
    return out


def _project(Y: torch.Tensor, Q: torch.Tensor | None = None, residual: bool = False):
    """Float64 squared row norms of ``Y`` (N,), its scores ``Y Q`` (N, r) on orthonormal
    float64 directions ``Q`` (D, r) (``None`` without ``Q``) and the norms of the residuals
    ``Y - Y Q Q^T`` (N,) (``None`` unless ``residual``).

    One pass over ``Y`` by blocks of about 8 MB of float64, spread over the worker
    threads (:func:`_run_blocks`).
    """
    n = Y.shape[0]
    sq = torch.empty(n, dtype=torch.float64, device=Y.device)
    Z = None if Q is None else torch.empty((n, Q.shape[1]), dtype=torch.float64, device=Y.device)
    res = torch.empty(n, dtype=torch.float64, device=Y.device) if residual else None

    def block(a: int, b: int) -> None:
        y = Y[a:b].to(torch.float64, copy=True)  # (squared in place below)
        if Q is not None:
            z = Z[a:b] = y @ Q
            if res is not None:
                res[a:b] = torch.linalg.vector_norm(y - z @ Q.T, dim=1)
        sq[a:b] = y.square_().sum(1)

    _run_blocks(n, max(1, _BUFFER // max(1, Y.shape[1])), block, _workers(Y.device))
    return sq, Z, res


# ------------------------------------------------------------------- search space


@dataclass
class _Space:
    """Coordinates whose squared distances are (up to ``slack``) lower bounds.

    ``S`` (N, q) in the working dtype; ``sq`` (N,) their squared norms; ``slack`` (N,)
    a bound on the rounding error of any computed squared distance of the row;
    ``z1`` (N,) float64 first principal coordinate (zeros: none computed, for small N)
    and ``z1_err`` (N,) its error bound.
    ``split`` > 0: products are summed in float64 over slices of ``split`` columns
    (``sq`` is then float64), so that their rounding bound grows with ``split``, not D.
    """

    S: torch.Tensor
    sq: torch.Tensor
    slack: torch.Tensor
    z1: torch.Tensor
    z1_err: torch.Tensor
    rank: int  # p, or 0 for the full space
    split: int = 0


def _orthonormal(V: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the well-conditioned part of span(V), by two eigen-steps on
    the small Gram matrix (no QR: LAPACK's QR is slow on a loaded machine)."""
    for _ in range(2):
        lam, U = torch.linalg.eigh(V.T @ V)
        keep = lam > 1e-10 * float(lam.max().clamp_min(1e-300))
        V = (V @ U[:, keep]) / lam[keep].sqrt()
    return V


def _principal_basis(Y: torch.Tensor, n_dirs: int) -> torch.Tensor:
    """Orthonormal (D, r) float64 basis of leading principal directions, ``r <= n_dirs``.

    Estimated from at most ``_BASIS_ROWS`` evenly spaced rows by two steps of subspace
    iteration started from some of those rows (deterministic, matrix products and small
    eigen-decompositions only), ordered by the variance they carry. Any orthonormal
    basis keeps the search exact; a good one prunes more.
    """
    n = Y.shape[0]
    rows = torch.linspace(0, n - 1, min(n, _BASIS_ROWS), device=Y.device).round().long()
    sub = Y[rows].to(torch.float64)
    pick = torch.linspace(0, len(rows) - 1, min(n_dirs, len(rows)), device=Y.device)
    V = _orthonormal(sub[pick.round().long()].T)
    for _ in range(2):
        V = _orthonormal(sub.T @ (sub @ V))
    # order the directions by the variance they carry (Rayleigh-Ritz in the subspace)
    B = sub @ V
    _, vecs = torch.linalg.eigh(B.T @ B)
    return V @ vecs.flip(1)


def _probe_counts(
    Y: torch.Tensor,
    sq: torch.Tensor,
    Z: torch.Tensor,
    k: int,
    ranks: tuple[int, ...],
) -> list[float]:
    """For each rank p, the mean number of rows whose projected lower bound is below a
    probe row's k-th distance (how many candidates a row would need to measure).

    The lower bound of rank p is the squared distance of the rows' ``[z_p, r_p]``
    (scores on the first p directions, norm of the rest): one small product per rank, in
    the working dtype. Rounding here can only change which rank is chosen, never a
    result.
    """
    n = Y.shape[0]
    probe = torch.linspace(0, n - 1, min(n, _PROBE_ROWS), device=Y.device).round().long()
    own = (torch.arange(len(probe), device=Y.device), probe)
    sqw = sq.to(Y.dtype)
    d2 = _block(Y[probe], sqw[probe], Y, sqw)
    d2[own] = float("inf")
    dk = torch.topk(d2, k, dim=1, largest=False).values[:, -1:]
    counts = []
    for p in ranks:
        zp = Z[:, :p]
        sz = zp.square().sum(1)
        W = torch.cat([zp, (sq - sz).clamp_min(0).sqrt().unsqueeze(1)], 1).to(Y.dtype)
        sw = sz.clamp_min(sq).to(Y.dtype)  # |z_p|^2 + r_p^2
        lb = _block(W[probe], sw[probe], W, sw)
        lb[own] = float("inf")
        counts.append(int((lb <= dk).sum()) / len(probe))
    return counts


def _search_space(Y: torch.Tensor, k: int, m: int, chunk_size: int) -> _Space:
    """Choose the search space (projection or full) and compute its coordinates."""
    n, d = Y.shape
    u = torch.finfo(Y.dtype).eps / 2
    tiny = torch.finfo(Y.dtype).tiny
    big = n >= max(_MIN_ROWS_PROJECTED, 4 * m + 8)
    ranks = tuple(p for p in _PROJECTION_RANKS if 2 * p < d) if big else ()
    rank = 0
    if ranks:  # decide on a subsample of rows: cheap when the projection does not pay
        sub = Y[torch.linspace(0, n - 1, min(n, _SUBSAMPLE), device=Y.device).round().long()]
        Q = _principal_basis(sub, ranks[-1])
        ranks = tuple(sorted({min(p, Q.shape[1]) for p in ranks}))
        sqs, Zs, _ = _project(sub, Q)
        counts = _probe_counts(sub, sqs, Zs, k, ranks)
        for p, c in zip(ranks, counts, strict=True):
            if c <= k + 0.5 * (m - k) + 0.5:
                rank = p
                break
    if rank:
        sq64, Z, res = _project(Y, Q[:, :rank], residual=True)
    else:  # the full space, ordered by the first principal coordinate where one is known
        # sorting the rows costs two copies of the data (rows in search order): small data only
        if ranks and n * d * Y.element_size() <= _MAX_SORTED_BYTES:
            sq64, Z, _ = _project(Y, Q[:, :1])
        else:
            sq64, _, _ = _project(Y)
            Z = torch.zeros((n, 1), dtype=torch.float64, device=Y.device)
    norm = sq64.sqrt()
    z1_err = (4 * u + d * 2.0**-52) * norm + 4 * math.sqrt(d) * tiny
    if rank:
        S64 = torch.cat([Z, res.unsqueeze(1)], 1)
        c = 2 * (2 * (rank + 1) + 24) + d * 2.0**-50 / u
        S = S64.to(Y.dtype)
        sq = S.to(torch.float64).square().sum(1)
    else:
        S, sq = Y, sq64
        c = 2 * (2 * d + 16)
    split = _SPLIT if not rank and Y.dtype == torch.float32 and d >= _MIN_COLS_SPLIT else 0
    if split:  # wide rows: float32 partial products of `split` columns, summed in float64
        c = 2 * (2 * split + 16) + 4 * (math.ceil(d / split) + 16) * 2.0**-53 / u
    # A computed value is within c u (|x|^2 + |y|^2) of its exact one (c u < 1/4 at any D).
    # Every norm is lowered by its own share, c u |x|^2: a computed value is then a lower
    # bound of the true squared distance up to the rounding of this shift (at most
    # 2**-52 (|x|^2 + |y|^2)), so the certificate's slack no longer scales with c nor
    # with the largest norm's c u |y|^2.
    sq = sq - c * u * sq64
    if not split:
        sq = sq.to(Y.dtype)
    slack = 2.0**-50 * (sq64 + sq64.max()) + 64 * d * tiny
    return _Space(S, sq, slack, Z[:, 0].contiguous(), z1_err, rank, split)


# ------------------------------------------------------------------- blocked search


def _block(
    Sa: torch.Tensor,
    sqa: torch.Tensor,
    Sb: torch.Tensor,
    sqb: torch.Tensor,
    split: int = 0,
    out: torch.Tensor | None = None,
):
    """Squared distances of two blocks of rows by the expansion (rounded), (na, nb).

    With ``split > 0`` the product is summed in float64 over slices of ``split`` columns
    (each slice a product in the working dtype); the result is then float64. ``out``, a
    contiguous (na, nb) tensor of the result's dtype, receives it (a reused buffer: a
    fresh large tensor costs a page fault per 4 KB, as much as the product at small D).
    """
    if not split:
        with _product_threads(Sa.shape[0], Sb.shape[0], Sa.shape[1]):
            out = torch.addmm(sqb.unsqueeze(0), Sa, Sb.T, alpha=-2.0, out=out)
        return out.add_(sqa.unsqueeze(1))
    if out is None:
        out = torch.empty((Sa.shape[0], Sb.shape[0]), dtype=torch.float64, device=Sa.device)
    g = out.zero_()
    part = torch.empty((Sa.shape[0], Sb.shape[0]), dtype=Sa.dtype, device=Sa.device)
    for c in range(0, Sa.shape[1], split):
        with _product_threads(Sa.shape[0], Sb.shape[0], min(split, Sa.shape[1] - c)):
            torch.mm(Sa[:, c : c + split], Sb[:, c : c + split].T, out=part)
        g.add_(part)
    return g.mul_(-2.0).add_(sqb.unsqueeze(0)).add_(sqa.unsqueeze(1))


def _below_grouped(
    blk: torch.Tensor, limit: torch.Tensor, dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The entries of ``blk`` (na, nb) below the limit of their row (``dim=1``, ``limit``
    (na, 1)) or of their column (``dim=0``, ``limit`` (1, nb)).

    The entries of each row (column) are read in groups of :data:`_GROUP` along
    ``dim``: the minimum of every group first (a float reduction, a cheap pass that
    keeps the block's memory order), then entry by entry only the few groups whose
    minimum is below the limit. A comparison pass over the whole block would cost
    several times more (comparisons into a boolean mask are slow on the CPU), and nearly
    every entry of an off-diagonal block is rejected.

    Returns
    -------
    target, other, value : torch.Tensor, shape (H,)
        The row (``dim=1``) or column (``dim=0``) whose limit the entry is below, the
        entry's other index and its value; ordered by ``target``, then ``other``.
    """
    g = _GROUP[dim]
    size = blk.shape[dim]
    cut = size - size % g
    if dim == 1:
        groups = blk[:, :cut].unflatten(1, (cut // g, g))  # (na, nb / g, g)
        t, q = (groups.amin(2) < limit).nonzero().unbind(1)
        h, o = (groups[t, q] < limit[t]).nonzero().unbind(1)
    else:
        groups = blk[:cut].unflatten(0, (cut // g, g))  # (na / g, g, nb)
        # the transposed mask: its positions come by column, then row
        t, q = (groups.amin(1) < limit).T.nonzero().unbind(1)
        h, o = (groups[q, :, t] < limit[0, t].unsqueeze(1)).nonzero().unbind(1)
    target, other = t[h], q[h] * g + o
    if cut < size:  # the last entries, fewer than a group: compared directly
        rest = blk.narrow(dim, cut, size - cut)
        tt, to = (rest < limit if dim == 1 else (rest < limit).T).nonzero().unbind(1)
        if tt.numel():
            order = torch.argsort(torch.cat([target, tt]), stable=True)
            target, other = torch.cat([target, tt])[order], torch.cat([other, to + cut])[order]
    value = blk[target, other] if dim == 1 else blk[other, target]
    return target, other, value


def _smallest_per_row(block: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``m`` smallest entries of each row of ``block`` (na, nb) and their columns,
    ascending: ``torch.topk``, through groups of :data:`_GROUP` columns where a row holds
    at least ``4 m`` of them.

    A row's ``m`` smallest entries lie in its ``m`` groups with the smallest minima (an
    entry's group has a minimum no larger than it; fewer than ``m`` groups have a smaller
    one), so a pass of group minima and a top-m of ``m`` groups per row replace the top-m
    of the whole row (the same values; among exact ties, possibly other columns).
    """
    na, nb = block.shape
    g = _GROUP[1]
    if nb % g or nb < 4 * m * g:
        return torch.topk(block, m, dim=1, largest=False, sorted=True)
    groups = block.view(na, nb // g, g)
    q = torch.topk(groups.amin(2), m, dim=1, largest=False, sorted=False).indices  # (na, m)
    rows = torch.arange(na, device=block.device).unsqueeze(1) * (nb // g)
    cand = groups.reshape(-1, g).index_select(0, (rows + q).view(-1)).view(na, m * g)
    d, j = torch.topk(cand, m, dim=1, largest=False, sorted=True)
    return d, q.gather(1, torch.div(j, g, rounding_mode="floor")) * g + j % g


def _reaching(
    za: torch.Tensor, zb: torch.Tensor, thr_a: torch.Tensor, thr_b: torch.Tensor, err: float
) -> tuple[int, int]:
    """The rows ``r0:`` of one tile and the columns ``:c1`` of a later one (rows sorted
    along ``z1``) outside which every entry is above its row's and its column's threshold.

    Row ``r`` can have an entry below its threshold only at a column within
    ``sqrt(thr_a[r])`` of it along ``z1`` (``|z1_x - z1_y| <= ||x - y||``), widened by
    ``err``, the two tiles' ``z1`` rounding bounds; so can column ``c`` with
    ``thr_b[c]``. The rectangle holds every such entry; ``r0`` is rounded down and ``c1``
    up to whole groups (:data:`_GROUP`), so that the block's group passes need no tail.

    Parameters
    ----------
    za, zb : torch.Tensor, shape (ta,) and (tb,), float64
        ``z1`` of the two tiles' rows, ascending, ``za[-1] <= zb[0]``.
    thr_a, thr_b : torch.Tensor, shape (ta,) and (tb,)
        The rows' and the columns' current thresholds (squared values).
    err : float
        The sum of the two tiles' largest ``z1`` rounding bounds.

    Returns
    -------
    r0, c1 : int
        ``r0 == ta`` or ``c1 == 0``: nothing to compute.
    """
    up = za + (thr_a.to(torch.float64).clamp_min(0).sqrt() + err)  # a row reaches z1 up to
    down = zb - (thr_b.to(torch.float64).clamp_min(0).sqrt() + err)  # a column, down to
    ends = torch.stack([up.max(), down.min()])
    # rows: the first reaching the lowest column, or reached by some column
    r0 = int(torch.searchsorted(up.cummax(0).values, zb[:1]))
    r0 = min(r0, int(torch.searchsorted(za, ends[1:])))
    # columns: the last reaching the highest row, or reached by some row
    c1 = int(torch.searchsorted(down.flip(0).cummin(0).values.flip(0), za[-1:], right=True))
    c1 = max(c1, int(torch.searchsorted(zb, ends[:1], right=True)))
    g0, g1 = _GROUP[0], _GROUP[1]
    return r0 - r0 % g0, min(len(zb), -(-c1 // g1) * g1)


def _rounds(t: int) -> list[list[tuple[int, int]]]:
    """Every pair of tiles ``(i, j)``, ``i < j < t``, once, nearest tiles first, in
    rounds in which no tile appears twice.

    Round by round the offset ``j - i`` grows (rows sorted along ``z1``: the nearest
    tiles first, so that the thresholds tighten early and far pairs can be skipped);
    each offset ``d`` takes two rounds, the pairs whose ``i // d`` is even, then odd.
    The pairs of a round are independent (disjoint tiles): worker threads can run them
    at once (:func:`_run_in_order`).
    """
    out = []
    for d in range(1, t):
        for parity in (0, 1):
            pairs = [(i, i + d) for i in range(t - d) if (i // d) % 2 == parity]
            if pairs:
                out.append(pairs)
    return out


def _top_m_symmetric(space: _Space, m: int, chunk_size: int):
    """Per row, the ``m`` smallest values over every other row (full space).

    The rows are cut into tiles of ``min(chunk_size, _TILE)`` rows (a tile's block of
    values stays in the cache). First every diagonal block gives each row its ``m`` best
    values inside its own tile, hence a threshold (its ``m``-th best). Then the blocks
    of the pairs of tiles ``i < j`` only, each one read both ways (for its rows and for
    its columns, halving the products): an entry is kept only when it is below the
    current threshold of its row (or of its column), found through the minima of groups
    of entries (:func:`_below_grouped`), so that the few survivors are merged instead of
    selecting a top-m of every block. A rejected entry is at least its row's final
    ``m``-th best value.

    Where the rows are sorted along their first principal coordinate ``z1`` (the
    caller sorts them when ``space.z1`` is not all zero), the pairs come nearest tiles
    first, and a pair whose gap along ``z1`` (less its rounding bound) exceeds the square
    root of every threshold of its rows is skipped: ``|z1_x - z1_y| <= ||x - y||``, so
    each of its entries is above its row's and its column's threshold. Of the other
    pairs, only the rows and the columns within reach of the other tile are computed
    (:func:`_reaching`).

    The pairs come in the order of :func:`_rounds`. On the CPU, with more than one
    caller thread (:func:`_single_threaded`), the diagonal blocks and the pairs run on
    that many worker threads (:func:`_run_in_order`), each single-threaded with its own
    reused block buffer: a pair starts once the earlier pairs of both its tiles are
    done, so every tile sees its merges (and skip tests) in the same order at any
    thread count, and the result is the same, bit for bit; a worker waits asleep, never
    spinning.

    Returns
    -------
    best_d : torch.Tensor, shape (N, m), ``space.sq``'s dtype, ascending
    best_i : torch.Tensor, shape (N, m), int64
    """
    S, sq, split = space.S, space.sq, space.split
    n = S.shape[0]
    inf = float("inf")
    tile = min(chunk_size, _TILE)
    best_d = torch.full((n, m), inf, dtype=sq.dtype, device=S.device)
    best_i = torch.full((n, m), -1, dtype=torch.long, device=S.device)
    tiles = [slice(a, min(n, a + tile)) for a in range(0, n, tile)]
    # per tile: first and last z1 (rows sorted), the largest z1 rounding bound
    z_lo = [float(space.z1[r.start]) for r in tiles]
    z_hi = [float(space.z1[r.stop - 1]) for r in tiles]
    z_err = [float(space.z1_err[r].max()) for r in tiles]
    sorted_rows = bool(space.z1.any())

    # per tile, [S, sq, 1] and [-2 S, 1, sq]: built by the tile's diagonal job (the first
    # of its jobs) and kept for its pairs when they take little memory, else per product
    keep = not split and 2 * n * (S.shape[1] + 2) * S.element_size() <= _MAX_SORTED_BYTES
    augmented: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(tiles)

    def factors(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if augmented[i] is not None:
            return augmented[i]
        r = tiles[i]
        one = torch.ones_like(sq[r, None])
        ab = torch.cat([S[r], sq[r, None], one], 1), torch.cat([S[r] * -2.0, one, sq[r, None]], 1)
        if keep:
            augmented[i] = ab
        return ab

    def product(i: int, j: int, buf: torch.Tensor, r0: int = 0, c1: int | None = None):
        """The block of values of rows ``r0:`` of tile ``i`` and columns ``:c1`` of tile
        ``j``, into ``buf``: without ``split``, one product of ``[S_i, sq_i, 1]`` and
        ``[-2 S_j, 1, sq_j]`` (``-2 x`` is exact), so that no pass over the block adds
        the norms (its rounding bound is that of the expansion)."""
        ra = slice(tiles[i].start + r0, tiles[i].stop)
        rb = slice(tiles[j].start, tiles[j].stop if c1 is None else tiles[j].start + c1)
        ta, tb = ra.stop - ra.start, rb.stop - rb.start
        out = buf[: ta * tb].view(ta, tb)
        if split:
            return _block(S[ra], sq[ra], S[rb], sq[rb], split, out=out)
        A, B = factors(i)[0][r0:], factors(j)[1][:tb]
        with _product_threads(ta, tb, A.shape[1]):
            return torch.mm(A, B.T, out=out)

    def diagonal(i: int, buf: torch.Tensor) -> None:
        r = tiles[i]
        t = r.stop - r.start
        block = product(i, i, buf)
        block.fill_diagonal_(inf)  # exclude each point itself, by index
        kr = min(m, t)
        d, j = _smallest_per_row(block, kr)
        best_d[r, :kr], best_i[r, :kr] = d, j + r.start

    def pair(i: int, j: int, buf: torch.Tensor) -> None:
        ra, rb = tiles[i], tiles[j]
        gap = z_lo[j] - z_hi[i] - z_err[i] - z_err[j]
        if gap > 0 and gap * gap > float(torch.maximum(best_d[ra, -1].max(), best_d[rb, -1].max())):
            return
        r0, c1 = 0, rb.stop - rb.start
        if sorted_rows:  # only the rows and columns within reach along z1
            e = z_err[i] + z_err[j]
            r0, c1 = _reaching(space.z1[ra], space.z1[rb], best_d[ra, -1], best_d[rb, -1], e)
        if r0 >= ra.stop - ra.start or c1 == 0:
            return
        block = product(i, j, buf, r0, c1)
        a, b = ra.start + r0, rb.start
        r1, k1, v1 = _below_grouped(block, best_d[a : ra.stop, -1:], 1)
        k2, r2, v2 = _below_grouped(block, best_d[b : b + c1, -1].unsqueeze(0), 0)
        if r1.numel() + k2.numel():
            rows = torch.cat([r1 + a, k2 + b])
            cols = torch.cat([k1 + b, r2 + a])
            _merge_sparse(best_d, best_i, rows, torch.cat([v1, v2]), cols)

    jobs = [(diagonal, (i,), (i,)) for i in range(len(tiles))]
    jobs += [(pair, p, p) for r in _rounds(len(tiles)) for p in r]
    workers = min(_workers(S.device), len(tiles) // 2)
    size = min(n, tile) ** 2
    bufs = [torch.empty(size, dtype=sq.dtype, device=S.device) for _ in range(max(1, workers))]
    _run_in_order(jobs, workers, bufs)
    return best_d, best_i


def _below(blk: torch.Tensor, limit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(r, c)`` of the entries of ``blk`` (na, nb) below ``limit`` (na, 1).

    Only the rows whose minimum is below their limit are searched (a row-wise minimum is
    a much cheaper pass than the positions of a sparse mask).
    """
    rows = (blk.amin(1, keepdim=True) < limit).squeeze(1).nonzero().squeeze(1)
    if rows.numel() == 0:
        return rows, rows
    if 4 * rows.numel() > blk.shape[0]:  # most rows: one mask of the whole block
        return (blk < limit).nonzero().unbind(1)
    r, c = (blk[rows] < limit[rows]).nonzero().unbind(1)
    return rows[r], c


def _top_m_windowed(
    space: _Space, m: int, chunk_size: int, start: int = 0, stop: int | None = None
):
    """Per row, the ``m`` smallest values, skipping rows too far along ``z1``.

    Rows are sorted by ``z1``. Each block of rows is first compared with the
    ``chunk_size`` rows around it, which gives every row a threshold (its ``m``-th best
    value); then only the columns whose ``z1`` lies within ``sqrt(threshold)`` (plus the
    rounding bound) of some row of the block are compared, nearest first, the window
    shrinking as the thresholds do. Of those products only the entries below their
    row's threshold are kept (one comparison, the threshold rounded up) and merged. A
    skipped column ``j`` of row ``i`` has a true squared distance above the row's final
    threshold. ``start``/``stop`` restrict the search to those rows of the sorted order
    (one rank's share in :mod:`interp_lib.id.distributed`); the columns stay all rows.

    Returns
    -------
    best_d : torch.Tensor, shape (stop - start, m), working dtype, ascending
    best_i : torch.Tensor, shape (stop - start, m), int64
    """
    S, sq, z1, err = space.S, space.sq, space.z1, space.z1_err
    n = S.shape[0]
    stop = n if stop is None else stop
    dev = S.device
    # few rows per block: their z1 range, hence the columns they need, stays narrow
    rows = max(1, min(chunk_size, _WINDOW_ROWS))
    width = min(n, max(min(chunk_size, _WINDOW_ROWS * 4), m + 1))
    err_max = float(err.max())
    inf = torch.tensor(float("inf"), dtype=S.dtype, device=dev)
    best_d = torch.empty((stop - start, m), dtype=S.dtype, device=dev)
    best_i = torch.empty((stop - start, m), dtype=torch.long, device=dev)

    def block(a: int, b: int) -> None:  # rows a:b, independent of every other block
        ta = b - a
        ra = slice(a, a + ta)
        c0 = max(0, min(a - (width - ta) // 2, n - width))
        c1 = c0 + width
        # the row's own |s_i|^2 does not change its order: added to the kept values only
        sqa = sq[ra].unsqueeze(1)
        blk = torch.addmm(sq[c0:c1].unsqueeze(0), S[ra], S[c0:c1].T, alpha=-2.0)
        r = torch.arange(ta, device=dev)
        blk[r, r + a - c0] = float("inf")  # the point itself, by index
        d, j = _smallest_per_row(blk, m)
        d, j = d + sqa, j + c0
        lo, hi = c0, c1
        za, ea = z1[ra], err[ra] + err_max
        while True:
            reach = d[:, -1].to(torch.float64).clamp_min(0).sqrt() + ea
            j0 = int(torch.searchsorted(z1, (za - reach).min().unsqueeze(0)))
            j1 = int(torch.searchsorted(z1, (za + reach).max().unsqueeze(0), right=True))
            spans = []
            if lo > j0:
                spans.append((max(j0, lo - width), lo))
                lo = spans[-1][0]
            if hi < j1:
                spans.append((hi, min(j1, hi + width)))
                hi = spans[-1][1]
            if not spans:
                break
            for s0, s1 in spans:
                blk = torch.addmm(sq[s0:s1].unsqueeze(0), S[ra], S[s0:s1].T, alpha=-2.0)
                # a rejected entry: blk >= limit >= d_m - |s_i|^2, so blk + |s_i|^2 >= d_m
                limit = torch.nextafter(d[:, -1:] - sqa, inf)
                r, c = _below(blk, limit)
                if r.numel():
                    _merge_sparse(d, j, r, blk[r, c] + sqa[r, 0], c + s0)
        best_d[a - start : b - start], best_i[a - start : b - start] = d, j

    # the same blocks at any thread count, spread over the worker threads
    _run_blocks(stop - start, rows, lambda a, b: block(start + a, start + b), _workers(dev))
    return best_d, best_i


def _merge_sparse(
    best_d: torch.Tensor,
    best_i: torch.Tensor,
    rows: torch.Tensor,
    vals: torch.Tensor,
    cols: torch.Tensor,
) -> None:
    """Merge entries ``(rows, vals, cols)`` into each row's sorted best ``k``, in place.

    Among equal values the earlier entry (the existing one, then by position) is kept.
    Each row's existing ``k`` values and its new entries are laid out in one row of a
    padded matrix, which is sorted along its short rows (stable): much cheaper than a
    sort of all the entries at once. A row with very many new entries (a cluster of
    near-duplicates) makes the padding wasteful; then every entry is sorted at once.
    """
    if rows.numel() == 0:
        return
    if bool((rows[1:] < rows[:-1]).any()):  # group each row's entries, keeping their order
        order = torch.argsort(rows, stable=True)
        rows, vals, cols = rows[order], vals[order], cols[order]
    k = best_d.shape[1]
    u, inv, counts = torch.unique_consecutive(rows, return_inverse=True, return_counts=True)
    nu, width = u.numel(), k + int(counts.max())
    if nu * width > 4 * (nu * k + rows.numel()) + 4096:
        _merge_flat(best_d, best_i, u, inv, vals, cols)
        return
    pos = torch.arange(rows.numel(), device=rows.device) - (torch.cumsum(counts, 0) - counts)[inv]
    d = torch.full((nu, width), float("inf"), dtype=best_d.dtype, device=best_d.device)
    i = torch.full((nu, width), -1, dtype=torch.long, device=best_i.device)
    d[:, :k], i[:, :k] = best_d[u], best_i[u]
    d[inv, pos + k], i[inv, pos + k] = vals.to(d.dtype), cols
    d, order = torch.sort(d, dim=1, stable=True)
    best_d[u], best_i[u] = d[:, :k], torch.gather(i, 1, order[:, :k])


def _merge_flat(best_d, best_i, u, inv, vals, cols) -> None:
    """:func:`_merge_sparse` by one stable sort of all the entries (any number per row);
    ``u`` the rows with new entries, ``inv`` each entry's position in ``u``."""
    k = best_d.shape[1]
    nu = u.numel()
    grp = torch.cat([torch.arange(nu, device=u.device).repeat_interleave(k), inv])
    d = torch.cat([best_d[u].reshape(-1), vals.to(best_d.dtype)])
    i = torch.cat([best_i[u].reshape(-1), cols])
    order = torch.argsort(d, stable=True)
    order = order[torch.argsort(grp[order], stable=True)]
    g = grp[order]
    counts = torch.bincount(grp, minlength=nu)
    rank = torch.arange(g.numel(), device=g.device) - (torch.cumsum(counts, 0) - counts)[g]
    keep = rank < k
    best_d[u[g[keep]], rank[keep]] = d[order][keep]
    best_i[u[g[keep]], rank[keep]] = i[order][keep]


def _recheck(
    space: _Space,
    X: torch.Tensor,
    rows: torch.Tensor,
    bound: torch.Tensor,
    k: int,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest of ``rows`` (ascending) among every row whose search-space value is
    at most ``bound`` (per row; squared, scaled units, at least the row's current k-th
    exact distance squared): a superset of the answer.

    The rows are taken in groups that lie in one tile of the sorted order; a group is
    compared only with the columns whose ``z1`` lies within ``sqrt(bound)`` (plus the
    rounding bounds) of one of its rows: any other column is farther than the row's
    current k-th candidate (``|z1_x - z1_y| <= ||x - y||``). Without ``z1`` (all zero)
    that is every column.

    Returns
    -------
    distances : torch.Tensor, shape (len(rows), k), float64
    indices : torch.Tensor, shape (len(rows), k), int64
    """
    S, sq, z1, err = space.S, space.sq, space.z1, space.z1_err
    n = S.shape[0]
    out_d = torch.full((rows.numel(), k), float("inf"), dtype=torch.float64, device=S.device)
    out_i = torch.full((rows.numel(), k), -1, dtype=torch.long, device=S.device)
    step = max(1, min(_TILE, (chunk_size * chunk_size) // n))
    _, counts = torch.unique_consecutive(
        torch.div(rows, _TILE, rounding_mode="floor"), return_counts=True
    )
    ends = torch.cumsum(counts, 0).tolist()
    err_max = float(err.max())
    for g0, g1 in zip([0, *ends[:-1]], ends, strict=True):  # the rows of one tile
        for a in range(g0, g1, step):
            b = min(g1, a + step)
            r = rows[a:b]
            reach = bound[a:b].clamp_min(0).sqrt() + err[r] + err_max
            lo = (z1[r] - reach).min().unsqueeze(0)
            hi = (z1[r] + reach).max().unsqueeze(0)
            c0 = int(torch.searchsorted(z1, lo))
            c1 = int(torch.searchsorted(z1, hi, right=True))
            blk = _block(S[r], sq[r], S[c0:c1], sq[c0:c1], space.split).to(torch.float64)
            own = (r >= c0) & (r < c1)
            blk[own.nonzero().squeeze(1), r[own] - c0] = float("inf")
            ri, cj = (blk <= bound[a:b].unsqueeze(1)).nonzero().unbind(1)
            cj = cj + c0
            d = _pair_distances(X, r[ri], cj)
            _merge_sparse(out_d, out_i, ri + a, d, cj)
    return out_d, out_i


def _in_order(space: _Space, X: torch.Tensor, perm: torch.Tensor) -> tuple[_Space, torch.Tensor]:
    """The search space and the rows of ``X`` (N, D) taken in the order ``perm`` (N,).

    The two large gathers (``S`` and ``X``) run on the worker threads, in blocks of
    rows (:func:`_run_blocks`); the copies are exact, so is the result at any count.
    """
    S = torch.empty(space.S.shape, dtype=space.S.dtype, device=space.S.device)
    Xp = torch.empty(X.shape, dtype=X.dtype, device=X.device)

    def block(a: int, b: int) -> None:
        torch.index_select(space.S, 0, perm[a:b], out=S[a:b])
        torch.index_select(X, 0, perm[a:b], out=Xp[a:b])

    step = max(1, _BUFFER // max(1, X.shape[1] + S.shape[1]))
    _run_blocks(X.shape[0], step, block, _workers(X.device))
    sq, slack, z1, z1_err = (t[perm] for t in (space.sq, space.slack, space.z1, space.z1_err))
    return _Space(S, sq, slack, z1.contiguous(), z1_err, space.rank, space.split), Xp


def _search(X: torch.Tensor, k: int, m: int, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of the rows of a finite float tensor (see module doc).

    Returns
    -------
    distances : torch.Tensor, shape (N, k), float64
    indices : torch.Tensor, shape (N, k), int64
    """
    n = X.shape[0]
    e = _exponent(X)
    space = _search_space(_unit_centred(X, e), k, m, chunk_size)
    if space.rank or bool(space.z1.any()):  # sort by the first principal coordinate
        perm = torch.argsort(space.z1, stable=True)
        # rows in search order: contiguous blocks for the exact distances too
        space, Xp = _in_order(space, X, perm)
    else:
        perm, Xp = None, X
    if space.rank:  # through windows along z1
        best_d, best_i = _top_m_windowed(space, m, chunk_size)
    else:
        best_d, best_i = _top_m_symmetric(space, m, chunk_size)
    # exact distances of the first k candidates; a row whose k-th is not below its
    # (k+1)-th candidate's value less the slack gets them all (every other candidate of
    # a row that is, is farther: the same k neighbours, ties included)
    d = torch.full(best_i.shape, float("inf"), dtype=torch.float64, device=X.device)
    d[:, :k] = _candidate_distances(Xp, best_i[:, :k])
    if m > k:
        dk2 = _ldexp(d[:, :k].amax(1), -e).square()
        wide = (dk2 >= best_d[:, k].to(torch.float64) - space.slack).nonzero().squeeze(1)
        if wide.numel():
            rows = wide.repeat_interleave(m - k)
            d[wide, k:] = _pair_distances(Xp, rows, best_i[wide, k:].reshape(-1)).view(-1, m - k)
    # among exactly tied distances the lower (input) index first, whatever the blocking
    d, idx = by_distance_then_index(d, best_i if perm is None else perm[best_i])
    d, idx = d[:, :k].contiguous(), idx[:, :k].contiguous()
    # certificate, in scaled squared units: k-th exact <= every rejected value - slack
    dk2 = _ldexp(d[:, k - 1], -e).square()
    floor = best_d[:, -1].to(torch.float64) - space.slack
    if m < n - 1:
        bad = (dk2 > floor).nonzero().squeeze(1)
        if bad.numel():
            rd, ri = _recheck(space, Xp, bad, dk2[bad] + space.slack[bad], k, chunk_size)
            d[bad], idx[bad] = by_distance_then_index(rd, ri if perm is None else perm[ri])
    if perm is None:
        return d, idx
    out_d = torch.empty_like(d)
    out_i = torch.empty_like(idx)
    out_d[perm], out_i[perm] = d, idx
    return out_d, out_i


def by_distance_then_index(d: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of ``(d, i)`` (N, m) sorted by ``(distance, index)``: ascending distances,
    exactly tied ones by ascending index (a row without ties keeps its distance order)."""
    by_index = torch.argsort(i, dim=1, stable=True)
    d, i = torch.gather(d, 1, by_index), torch.gather(i, 1, by_index)
    by_distance = torch.argsort(d, dim=1, stable=True)
    return torch.gather(d, 1, by_distance), torch.gather(i, 1, by_distance)


def _from_precomputed(D: torch.Tensor, k: int, chunk_size: int) -> Neighbors:
    check_precomputed(D, chunk_size)
    n = D.shape[0]
    out_d = torch.empty((n, k), dtype=torch.float64, device=D.device)
    out_i = torch.empty((n, k), dtype=torch.long, device=D.device)
    for a in range(0, n, chunk_size):
        block = D[a : a + chunk_size].to(torch.float64).clone()
        rows = torch.arange(block.shape[0], device=D.device)
        block[rows, rows + a] = float("inf")  # the point itself, by index
        d, i = torch.sort(block, dim=1, stable=True)
        out_d[a : a + chunk_size], out_i[a : a + chunk_size] = d[:, :k], i[:, :k]
    return Neighbors(out_d, out_i)


def nearest_neighbors(
    X: ArrayLike,
    k: int = 2,
    *,
    metric: str = "euclidean",
    chunk_size: int = 4096,
    margin: int = 2,
    device: torch.device | str | None = None,
) -> Neighbors:
    """Exact distances and indices of the ``k`` nearest other rows of every row.

    Exact means: the distances are the float64 norms of the differences of the input
    rows, and no other row is closer than the ``k``-th one (proved by a rounding-error
    bound, at any finite scale of the data; see the module documentation).

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D), or (N, N) if ``metric="precomputed"``
        The points, finite. The search runs on ``X``'s device (or ``device``) and in its
        float type (float32 or float64; integers are promoted to float64).
    k : int, default 2
        Number of neighbours, ``1 <= k < N``.
    metric : {"euclidean", "precomputed"}
        ``"precomputed"`` reads ``X`` as a matrix of distances: square, non-negative,
        symmetric, zero on the diagonal (checked).
    chunk_size : int, default 4096
        Rows per block; peak extra memory is about ``chunk_size**2`` elements.
    margin : int, default 2
        Extra candidates kept from the fast search and measured exactly; more makes the
        certificate succeed more often on near-ties (never changes the result).
    device : torch.device or str, optional
        Move ``X`` there first (e.g. ``"cuda"``).

    Returns
    -------
    Neighbors
        ``distances`` (N, k) float64, ascending, and ``indices`` (N, k) int64.

    Raises
    ------
    ValueError
        For non-finite or too few points, ``k >= N``, an unknown ``metric``,
        ``chunk_size < 1`` or an invalid precomputed matrix.
    TypeError
        For non-numeric ``X`` or non-integer ``k``, ``chunk_size``, ``margin``.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[0.0], [1.0], [3.0]])
    >>> nearest_neighbors(X, k=1).distances.squeeze(1).tolist()
    [1.0, 1.0, 2.0]
    """
    metric, chunk_size, margin = check_options(metric, chunk_size, margin)
    X = as_points(X, min_samples=2, device=device)
    k = check_int(k, "k")
    if k >= X.shape[0]:
        raise ValueError(f"k must be smaller than the number of points ({X.shape[0]}), got k={k}.")
    return knn(X, k, metric=metric, chunk_size=chunk_size, margin=margin)


def knn(
    X: torch.Tensor, k: int, *, metric: str = "euclidean", chunk_size: int = 4096, margin: int = 2
) -> Neighbors:
    """:func:`nearest_neighbors` on a tensor already checked by ``as_points``.

    The options are checked here (cheaply), so every estimator built on it rejects an
    unknown ``metric`` or a bad ``chunk_size`` with a clear error.
    """
    metric, chunk_size, margin = check_options(metric, chunk_size, margin)
    if metric == "precomputed":
        return _from_precomputed(X, k, chunk_size)
    m = min(X.shape[0] - 1, k + margin)
    with torch.no_grad(), _single_threaded(X.device):
        d, i = _search(X, k, m, chunk_size)
    return Neighbors(d, i)
