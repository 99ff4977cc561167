"""The neighbour search's thread scope: single-threaded small steps, the caller's threads
for the large products only, the caller's setting restored, results independent of it."""

import contextlib
import threading
from collections.abc import Callable

import pytest
import torch
from _helpers import run_in_threads

from interp_lib.id import neighbors
from interp_lib.id.neighbors import knn


def _rank12(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """A 12-dimensional Gaussian rotated into ``d`` dimensions (the benchmark's data)."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, 12, dtype=torch.float64, generator=g))
    return (torch.randn(n, 12, dtype=torch.float64, generator=g) @ Q.T).float()


def _brute(X: torch.Tensor, k: int):
    X = X.to(torch.float64)
    D = torch.cdist(X, X, compute_mode="donot_use_mm_for_euclid_dist")
    D.fill_diagonal_(float("inf"))
    d, i = torch.sort(D, dim=1, stable=True)
    return d[:, :k], i[:, :k]


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _spy_threads(monkeypatch) -> list[tuple[str, int]]:
    """Record the torch thread count inside the exact-distance step and inside every
    product's thread scope."""
    seen: list[tuple[str, int]] = []
    product_threads = neighbors._product_threads
    candidate_distances = neighbors._candidate_distances

    @contextlib.contextmanager
    def spy_product(na, nb, q):
        with product_threads(na, nb, q):
            seen.append(("product", torch.get_num_threads()))
            yield

    def spy_candidates(*args):
        seen.append(("exact", torch.get_num_threads()))
        return candidate_distances(*args)

    monkeypatch.setattr(neighbors, "_product_threads", spy_product)
    monkeypatch.setattr(neighbors, "_candidate_distances", spy_candidates)
    return seen


def test_small_steps_run_on_one_thread_large_products_on_the_callers(two_threads, monkeypatch):
    seen = _spy_threads(monkeypatch)
    X = torch.randn(300, 40, generator=torch.Generator().manual_seed(0))
    knn(X, 2)  # every product is small: one thread throughout
    assert seen and all(t == 1 for _, t in seen), seen
    assert torch.get_num_threads() == 2
    seen.clear()
    monkeypatch.setattr(neighbors, "_MIN_PARALLEL_FLOPS", 1)  # every product is large
    knn(X, 2)
    assert {t for what, t in seen if what == "product"} == {2}
    assert {t for what, t in seen if what == "exact"} == {1}
    assert torch.get_num_threads() == 2


def test_one_thread_caller_never_gets_more(monkeypatch):
    seen = _spy_threads(monkeypatch)
    monkeypatch.setattr(neighbors, "_MIN_PARALLEL_FLOPS", 1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        knn(torch.randn(200, 8, generator=torch.Generator().manual_seed(1)), 3)
        assert seen and all(t == 1 for _, t in seen), seen
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_callers_threads_restored_after_an_error(two_threads, monkeypatch):
    def boom(*args):
        assert torch.get_num_threads() == 1  # inside the scope
        raise RuntimeError("boom")

    monkeypatch.setattr(neighbors, "_candidate_distances", boom)
    with pytest.raises(RuntimeError, match="boom"):
        knn(torch.randn(50, 3, generator=torch.Generator().manual_seed(2)), 2)
    assert torch.get_num_threads() == 2
    assert neighbors._CALLER_THREADS.get() == 0


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _rank12(4200, 40), id="projected-rank12"),
        pytest.param(
            lambda: torch.randn(700, 96, generator=torch.Generator().manual_seed(3)), id="full"
        ),
        pytest.param(  # 6 tiles of 128 rows: the pairs of tiles on two worker threads
            lambda: (torch.randn(700, 96, generator=torch.Generator().manual_seed(3)), 128),
            id="full-tiles",
        ),
        pytest.param(
            lambda: torch.randn(300, 4100, generator=torch.Generator().manual_seed(4)),
            id="wide-split",
            marks=pytest.mark.slow,  # two searches and the brute force over 4,100 columns
        ),
    ],
)
def test_results_identical_at_one_and_two_threads(make, monkeypatch):
    X, chunk = (make(), 4096) if not isinstance(make(), tuple) else make()
    monkeypatch.setattr(neighbors, "_MIN_PARALLEL_FLOPS", 1)  # the products multi-threaded
    before = torch.get_num_threads()
    out = {}
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            out[t] = knn(X, 3, chunk_size=chunk)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out[1].distances, out[2].distances)
    assert torch.equal(out[1].indices, out[2].indices)
    if X.shape[0] <= 1000:  # (the brute force is slow at 4200 rows on a loaded machine)
        bd, bi = _brute(X, 3)
        torch.testing.assert_close(out[2].distances, bd, rtol=1e-14, atol=0)
        assert torch.equal(out[2].indices, bi)


def test_concurrent_searches_keep_each_threads_setting(monkeypatch):
    # torch's thread count is per OS thread (OpenMP's ICV, MKL's local setting): two
    # searches at once, each restores its own thread's count
    monkeypatch.setattr(neighbors, "_MIN_PARALLEL_FLOPS", 1)
    X = torch.randn(400, 20, generator=torch.Generator().manual_seed(5))
    want = knn(X, 2)
    counts = [0, 0]

    def work(i: int) -> None:
        torch.set_num_threads(i + 1)
        got = knn(X, 2)
        counts[i] = torch.get_num_threads()
        assert torch.equal(got.indices, want.indices)
        assert torch.equal(got.distances, want.distances)

    run_in_threads(work, 2)
    assert counts == [1, 2]


def test_twonn_runs_its_passes_single_threaded(two_threads, monkeypatch):
    import importlib

    twonn_module = importlib.import_module("interp_lib.id.twonn")  # the module, not the function
    seen = []
    ratio_table = twonn_module.ratio_table

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return ratio_table(*args, **kwargs)

    monkeypatch.setattr(twonn_module, "ratio_table", spy)
    X = torch.randn(300, 5, generator=torch.Generator().manual_seed(6))
    got = twonn_module.twonn(X).dimension
    assert seen == [1] and torch.get_num_threads() == 2
    torch.set_num_threads(1)
    assert twonn_module.twonn(X).dimension == got  # the same at one thread


def test_pca_svd_runs_on_one_thread_and_restores_the_callers(monkeypatch):
    """PC-ID's SVD is slower with a second thread on a small CPU: it runs on one, and the
    caller's count is back afterwards (also after an error)."""
    from interp_lib.id import pca_dim

    seen = []
    real = torch.linalg.svdvals

    def spy(X, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(X, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svdvals", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        X = torch.randn(50, 20, generator=torch.Generator().manual_seed(0))
        pca_dim(X)
        assert seen == [1]
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            pca_dim(torch.ones(10, 3))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("t", range(1, 10))
def test_rounds_pair_every_two_tiles_once_nearest_first_and_no_tile_twice_in_a_round(t):
    rounds = neighbors._rounds(t)
    pairs = [p for r in rounds for p in r]
    assert sorted(pairs) == [(i, j) for i in range(t) for j in range(i + 1, t)]
    for r in rounds:
        tiles = [i for p in r for i in p]
        assert len(tiles) == len(set(tiles)), r
    offsets = [j - i for r in rounds for i, j in r]
    assert offsets == sorted(offsets)  # nearest tiles first
    assert len(rounds) <= 2 * max(t - 1, 0)


def test_pairs_of_tiles_run_on_the_callers_threads_each_single_threaded(two_threads, monkeypatch):
    """With 2 caller threads the full-space search spreads the pairs of tiles over 2
    worker threads (each at one torch thread); with 1 it runs them itself."""
    seen: dict[int, set] = {}
    below = neighbors._below_grouped

    def spy(blk, limit, dim):
        seen.setdefault(threading.get_ident(), set()).add(torch.get_num_threads())
        return below(blk, limit, dim)

    monkeypatch.setattr(neighbors, "_below_grouped", spy)
    X = torch.randn(700, 16, generator=torch.Generator().manual_seed(6))
    knn(X, 2, chunk_size=64)  # 11 tiles
    assert len(seen) == 2 and threading.get_ident() not in seen, seen
    assert all(counts == {1} for counts in seen.values()), seen
    assert torch.get_num_threads() == 2
    seen.clear()
    torch.set_num_threads(1)
    knn(X, 2, chunk_size=64)
    assert list(seen) == [threading.get_ident()], seen


def test_run_in_order_keeps_each_keys_order_and_never_runs_a_key_twice_at_once():
    """Jobs sharing a key run in list order, one at a time; others run beside them."""
    import random
    import time

    rng = random.Random(0)
    keys = [(i % 5,) if i % 3 else (i % 5, (i + 2) % 5) for i in range(60)]
    log: list[tuple[str, int]] = []
    busy: set[int] = set()
    lock = threading.Lock()
    overlaps = []

    def job(p: int, buf) -> None:
        with lock:
            clash = busy & set(keys[p])
            overlaps.append(bool(clash))
            busy.update(keys[p])
            log.append(("start", p))
        time.sleep(rng.random() * 0.002)
        with lock:
            busy.difference_update(keys[p])
            log.append(("end", p))

    jobs = [(job, (p,), keys[p]) for p in range(60)]
    neighbors._run_in_order(jobs, 3, [None] * 3)
    assert not any(overlaps)
    ends = [p for what, p in log if what == "end"]
    assert sorted(ends) == list(range(60))
    for key in range(5):  # each key's jobs in list order
        mine = [p for p in ends if key in keys[p]]
        assert mine == sorted(mine)


def test_run_in_order_starts_ready_work_without_waiting_for_a_slow_job():
    """No barrier: while one job of key 0 is slow, the jobs of key 1 all run."""
    import time

    done = []

    def slow(buf) -> None:
        time.sleep(0.3)
        done.append("slow")

    def fast(i: int, buf) -> None:
        done.append(i)

    jobs = [(slow, (), (0,))] + [(fast, (i,), (1,)) for i in range(5)]
    jobs.append((fast, (99,), (0,)))  # after the slow one: same key
    neighbors._run_in_order(jobs, 2, [None, None])
    assert done == [0, 1, 2, 3, 4, "slow", 99]


def test_run_in_order_raises_a_jobs_error_and_stops():
    def job(p: int, buf) -> None:
        if p == 3:
            raise RuntimeError("job 3 failed")

    jobs = [(job, (p,), (p % 2,)) for p in range(20)]
    with pytest.raises(RuntimeError, match="job 3 failed"):
        neighbors._run_in_order(jobs, 2, [None, None])


def test_the_worker_threads_are_started_once_per_process(two_threads):
    X = torch.randn(700, 16, generator=torch.Generator().manual_seed(6))
    knn(X, 2, chunk_size=64)
    pool = neighbors._pool(2)
    threads = set(pool._threads)
    knn(X, 2, chunk_size=64)
    assert neighbors._pool(2) is pool and set(pool._threads) == threads


def _search_in_child(queue) -> None:
    torch.set_num_threads(2)
    X = torch.randn(700, 16, generator=torch.Generator().manual_seed(6))
    queue.put(knn(X, 2, chunk_size=64).indices.tolist())


def test_a_forked_child_starts_its_own_worker_threads(two_threads):
    """The parent's pool threads do not exist in a forked child (a DataLoader worker):
    the child's search must start its own instead of waiting for them forever."""
    import multiprocessing as mp

    X = torch.randn(700, 16, generator=torch.Generator().manual_seed(6))
    want = knn(X, 2, chunk_size=64).indices.tolist()  # the parent's pool exists now
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_search_in_child, args=(queue,))
    child.start()
    try:
        got = queue.get(timeout=120)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert got == want


def _meet_another_thread(seen: dict[int, set]) -> Callable[[], None]:
    """A hook for a spied call: it records the calling thread and its torch thread count
    in ``seen``, and a thread's first call waits (a barrier of 2, 30 s) for another
    thread's first call. It times out, failing the test, unless two threads work at
    once: a small block cannot run ahead and leave the other worker nothing to do."""
    both = threading.Barrier(2, timeout=30)

    def hook() -> None:
        tid = threading.get_ident()
        if tid not in seen:
            seen[tid] = set()
            both.wait()
        seen[tid].add(torch.get_num_threads())

    return hook


def test_windowed_blocks_run_on_the_callers_threads(two_threads, monkeypatch):
    """The projected search's blocks of rows are independent: with 2 caller threads they
    run on the 2 worker threads at once (each at one torch thread), with the same result."""
    seen: dict[int, set] = {}
    meet = _meet_another_thread(seen)
    inside = threading.Event()  # only the windowed search's top-m calls are watched
    topk = torch.topk

    def spy(*args, **kwargs):
        if inside.is_set():
            meet()
        return topk(*args, **kwargs)

    X = _rank12(4200, 40)
    want = knn(X, 2)
    monkeypatch.setattr(neighbors.torch, "topk", spy)
    windowed = neighbors._top_m_windowed

    def spy_windowed(*args, **kwargs):
        inside.set()
        try:
            return windowed(*args, **kwargs)
        finally:
            inside.clear()

    monkeypatch.setattr(neighbors, "_top_m_windowed", spy_windowed)
    got = knn(X, 2)
    assert torch.equal(got.indices, want.indices) and torch.equal(got.distances, want.distances)
    assert len(seen) == 2 and threading.get_ident() not in seen, seen
    assert all(counts == {1} for counts in seen.values()), seen


def test_rows_are_put_in_search_order_on_the_callers_threads(two_threads, monkeypatch):
    """The two large gathers into search order (the search space's rows and the data's)
    run on the 2 worker threads in blocks, two blocks at once, and are the plain
    gathers, bit for bit."""
    X = _rank12(3000, 40)
    space = neighbors._search_space(neighbors._unit_centred(X), 2, 4, 4096)
    perm = torch.argsort(space.z1, stable=True)
    monkeypatch.setattr(neighbors, "_BUFFER", 64 * (40 + space.S.shape[1]))  # 64-row blocks
    seen: dict[int, set] = {}
    meet = _meet_another_thread(seen)
    index_select = torch.index_select

    def spy(*args, **kwargs):
        meet()
        return index_select(*args, **kwargs)

    monkeypatch.setattr(neighbors.torch, "index_select", spy)
    with neighbors._single_threaded(torch.device("cpu")):
        got, Xp = neighbors._in_order(space, X, perm)
    assert len(seen) == 2 and threading.get_ident() not in seen, seen
    assert all(counts == {1} for counts in seen.values()), seen
    assert torch.equal(Xp, X[perm]) and torch.equal(got.S, space.S[perm])
    for name in ("sq", "slack", "z1", "z1_err"):
        assert torch.equal(getattr(got, name), getattr(space, name)[perm]), name
    assert (got.rank, got.split) == (space.rank, space.split)
