"""Exact nearest neighbours: brute-force references, ties, duplicates, float32 traps."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from interp_lib.id import nearest_neighbors, neighbors


def brute(X: torch.Tensor, k: int):
    X = X.to(torch.float64)
    D = torch.cdist(X, X, compute_mode="donot_use_mm_for_euclid_dist")
    D.fill_diagonal_(float("inf"))
    d, i = torch.sort(D, dim=1, stable=True)
    return d[:, :k], i[:, :k], D


@pytest.mark.parametrize("chunk", [7, 16, 1024])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_matches_brute_force(chunk, k):
    X = torch.randn(53, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    d, i = nearest_neighbors(X, k=k, chunk_size=chunk)
    bd, bi, _ = brute(X, k)
    torch.testing.assert_close(d, bd, rtol=0, atol=1e-12)
    assert torch.equal(i, bi)  # no ties in continuous data
    assert not bool((i == torch.arange(53)[:, None]).any())


def test_ties_and_duplicates_on_a_lattice():
    # integer lattice with every point repeated: exact ties and duplicates everywhere
    g = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1)
    X = torch.cat([g.reshape(-1, 2), g.reshape(-1, 2)[:5]])
    d, i = nearest_neighbors(X, k=3, chunk_size=5)
    bd, _, D = brute(X, 3)
    torch.testing.assert_close(d, bd, rtol=0, atol=0)
    # whichever tied neighbour was picked, it is at the reported distance and not self
    torch.testing.assert_close(D.gather(1, i), d, rtol=0, atol=0)
    assert not bool((i == torch.arange(len(X))[:, None]).any())
    assert int((d[:, 0] == 0).sum()) == 10  # five duplicated pairs


def test_float32_near_duplicates_get_exact_positive_distances():
    gen = torch.Generator().manual_seed(0)
    base = 1e3 + torch.randn(200, 64, generator=gen, dtype=torch.float64)
    X64 = torch.cat([base, base + 1e-4 * torch.randn(200, 64, generator=gen, dtype=torch.float64)])
    X32 = X64.to(torch.float32)
    d, _ = nearest_neighbors(X32, k=2)
    bd, _, _ = brute(X32, 2)  # exact distances between the float32 rows
    assert bool((d[:, 0] > 0).all()) and bool(torch.isfinite(d).all())
    torch.testing.assert_close(d, bd, rtol=1e-9, atol=0)
    # the naive float32 expansion is what breaks here
    sq = (X32 * X32).sum(1)
    naive = (sq[:, None] + sq[None, :] - 2 * X32 @ X32.T).clamp_min(0).sqrt()
    naive.fill_diagonal_(float("inf"))
    assert bool((naive.min(1).values == 0).any()) or not torch.allclose(
        naive.min(1).values.double(), bd[:, 0], rtol=1e-3
    )


def test_precomputed_matches_features():
    X = torch.randn(40, 3, dtype=torch.float64)
    d1, i1 = nearest_neighbors(X, k=4)
    d2, i2 = nearest_neighbors(torch.cdist(X, X), k=4, metric="precomputed", chunk_size=9)
    torch.testing.assert_close(d1, d2)
    assert torch.equal(i1, i2)


def test_numpy_and_integer_input():
    X = np.arange(30).reshape(10, 3)
    d, i = nearest_neighbors(X, k=1)
    assert d.dtype == torch.float64 and i.dtype == torch.int64
    torch.testing.assert_close(d[:, 0], torch.full((10,), np.sqrt(27.0), dtype=torch.float64))


@pytest.mark.fuzz
@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(3, 30), st.integers(1, 5)),
        elements=st.floats(-100, 100, allow_nan=False, width=32),
    )
)
def test_property_distances_equal_brute_force(X):
    t = torch.from_numpy(X)
    d, i = nearest_neighbors(t, k=2, chunk_size=4)
    bd, _, D = brute(t, 2)
    torch.testing.assert_close(d, bd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(D.gather(1, i), d, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"k": 10}, ValueError, "smaller than the number of points"),
        ({"k": 0}, ValueError, "at least 1"),
        ({"k": 1.5}, TypeError, "integer"),
        ({"metric": "cosine"}, ValueError, "euclidean"),
    ],
)
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nearest_neighbors(torch.randn(10, 2), **kwargs)


def test_bad_precomputed():
    with pytest.raises(ValueError, match="square"):
        nearest_neighbors(torch.rand(5, 4), metric="precomputed")
    with pytest.raises(ValueError, match="negative"):
        nearest_neighbors(-torch.rand(5, 5), metric="precomputed")


@pytest.mark.parametrize(("buffer", "rows"), [(64, 1024), (1 << 16, 1024), (1 << 16, 7)])
def test_exact_distances_are_float64_differences_bit_for_bit(monkeypatch, buffer, rows):
    # mixed magnitudes: float32 differences would be rounded, float64 ones are exact;
    # a tiny buffer makes one row per step, the default several rows and all candidates,
    # a cap of 7 rows uneven blocks
    monkeypatch.setattr(neighbors, "_BUFFER", buffer)
    monkeypatch.setattr(neighbors, "_CANDIDATE_ROWS", rows)
    g = torch.Generator().manual_seed(0)
    scale = 10.0 ** torch.randint(-4, 5, (120, 300), generator=g)  # mixed magnitudes
    X = (torch.randn(120, 300, generator=g) * scale).float()
    cand = torch.randint(0, 120, (120, 4), generator=g)
    want = torch.stack(
        [torch.linalg.vector_norm(X[cand[:, j]].double() - X.double(), dim=1) for j in range(4)],
        1,
    )
    assert torch.equal(neighbors._candidate_distances(X, cand), want)
    rows, cols = cand[:, 0], cand[:, 1]
    want = torch.linalg.vector_norm(X[cols].double() - X[rows].double(), dim=1)
    assert torch.equal(neighbors._pair_distances(X, rows, cols), want)


def _wide_activations(n: int, d: int, seed: int, rank: int = 20) -> torch.Tensor:
    """Non-negative low-rank float32 rows, like ReLU activations (N << D)."""
    g = torch.Generator().manual_seed(seed)
    X = (torch.randn(n, rank, generator=g) @ torch.randn(rank, d, generator=g)).relu()
    return X + 0.01 * torch.rand(n, d, generator=g)


@pytest.mark.parametrize("chunk", [7, 4096])
def test_split_products_of_wide_rows_match_brute_force(monkeypatch, chunk):
    # the float64 sum of float32 slice products, forced on small rows (slices of 8)
    monkeypatch.setattr(neighbors, "_SPLIT", 8)
    monkeypatch.setattr(neighbors, "_MIN_COLS_SPLIT", 16)
    X = _wide_activations(60, 50, seed=chunk)
    X[5], X[40] = X[7], X[7]  # exact duplicates
    d, i = nearest_neighbors(X, k=3, chunk_size=chunk)
    bd, _, D = brute(X, 3)
    torch.testing.assert_close(d, bd, rtol=0, atol=1e-12)
    torch.testing.assert_close(D.gather(1, i), d, rtol=0, atol=1e-12)
    assert not bool((i == torch.arange(60)[:, None]).any())
    monkeypatch.setattr(neighbors, "_MIN_COLS_SPLIT", 10**9)  # the plain float32 search
    d0, i0 = nearest_neighbors(X, k=3, chunk_size=chunk)
    assert torch.equal(d, d0) and torch.equal(i, i0)


def test_wide_float32_rows_are_certified_without_recheck(monkeypatch):
    # N << D: the float32 rounding bound grows with D, and failed on a quarter of the
    # rows; with products summed over slices it grows with the slice width only
    # (here 5 of the 120 rows needed the re-check before)
    X = _wide_activations(120, 4 * neighbors._MIN_COLS_SPLIT, seed=1, rank=100)
    rechecked = _count_rechecks(monkeypatch)
    d, i = nearest_neighbors(X, k=2)
    bd, bi, _ = brute(X, 2)
    torch.testing.assert_close(d, bd, rtol=1e-13, atol=0)
    assert torch.equal(i, bi)
    assert sum(rechecked) == 0


def _count_rechecks(monkeypatch) -> list[int]:
    rechecked: list[int] = []
    recheck = neighbors._recheck

    def counting(space, X_, rows, *args):
        rechecked.append(rows.numel())
        return recheck(space, X_, rows, *args)

    monkeypatch.setattr(neighbors, "_recheck", counting)
    return rechecked


def test_far_outliers_do_not_loosen_the_other_rows_certificates(monkeypatch):
    """Each norm carries its own rounding bound: five rows 1,000 times farther out than
    the rest do not make the bulk's certificates fail (with one slack from the largest
    norm for all rows, every bulk row was re-checked)."""
    gen = torch.Generator().manual_seed(21)
    X = torch.randn(1500, 200, generator=gen)
    X[:5] *= 1000.0
    rechecked = _count_rechecks(monkeypatch)
    d, i = nearest_neighbors(X, k=2)
    bd, bi, _ = brute(X, 2)
    torch.testing.assert_close(d, bd, rtol=1e-13, atol=0)
    assert torch.equal(i, bi)
    assert sum(rechecked) <= 10, rechecked


@pytest.mark.parametrize("shape", [(1024, 1024), (300, 77), (70, 1000), (16, 64), (5, 3)])
@pytest.mark.parametrize("dim", [0, 1])
def test_grouped_search_of_a_block_finds_every_entry_below_its_limit_in_order(shape, dim):
    """``_below_grouped`` (group minima first) returns exactly what one comparison pass
    over the whole block returns, in the same order (by target, then the other index),
    for group-sized and ragged blocks, limits by row and by column, and tied values."""
    gen = torch.Generator().manual_seed(shape[0] + dim)
    blk = torch.randint(0, 50, shape, generator=gen).float()  # many exact ties
    n = shape[1 - dim]
    limit = torch.randint(0, 25, (n,), generator=gen).float()
    limit = limit.unsqueeze(1) if dim == 1 else limit.unsqueeze(0)
    target, other, value = neighbors._below_grouped(blk, limit, dim)
    mask = blk < limit
    expected = mask.nonzero() if dim == 1 else mask.T.nonzero()
    assert expected.shape[0] > 0
    assert torch.equal(torch.stack([target, other], 1), expected)
    rows, cols = (target, other) if dim == 1 else (other, target)
    assert torch.equal(value, blk[rows, cols])


def _merge_reference(best_d, best_i, rows, vals, cols):
    """Per row: its sorted best k, then its new entries in their given order; the k
    smallest by a stable sort (earlier entries win ties)."""
    best_d, best_i = best_d.clone(), best_i.clone()
    k = best_d.shape[1]
    for r in rows.unique().tolist():
        sel = rows == r
        d = torch.cat([best_d[r], vals[sel]])
        i = torch.cat([best_i[r], cols[sel]])
        order = torch.sort(d, stable=True).indices[:k]
        best_d[r], best_i[r] = d[order], i[order]
    return best_d, best_i


@pytest.mark.parametrize("crowd", [1, 500])  # 500 entries for one row: the flat path
def test_merging_candidates_keeps_the_k_smallest_and_the_earlier_of_ties(crowd):
    gen = torch.Generator().manual_seed(crowd)
    n, k, h = 60, 4, 300
    best_d = torch.sort(torch.randint(0, 20, (n, k), generator=gen).float(), 1).values
    best_i = torch.randint(0, 1000, (n, k), generator=gen)
    rows = torch.randint(0, n, (h,), generator=gen)  # unsorted, with repeats
    rows = torch.cat([rows, torch.full((crowd,), 7)])
    vals = torch.randint(0, 20, (rows.numel(),), generator=gen).float()  # ties everywhere
    cols = torch.arange(1000, 1000 + rows.numel())
    want_d, want_i = _merge_reference(best_d, best_i, rows, vals, cols)
    neighbors._merge_sparse(best_d, best_i, rows, vals, cols)
    assert torch.equal(best_d, want_d) and torch.equal(best_i, want_i)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_space_search_across_several_tiles_matches_brute_force(dtype):
    """At the default chunk size the full-space search cuts the rows into tiles of
    ``_TILE``: three tiles here (the last one ragged), with duplicated rows."""
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(2 * neighbors._TILE + 300, 24, generator=gen, dtype=torch.float64)
    X[-40:] = X[:40]  # exact duplicates in the first and the last tile
    X = X.to(dtype)
    d, i = nearest_neighbors(X, k=3)
    bd, bi, D = brute(X, 3)
    torch.testing.assert_close(d, bd, rtol=1e-13, atol=0)  # two float64 norms of the differences
    torch.testing.assert_close(D.gather(1, i), d, rtol=1e-13, atol=0)
    d4 = brute(X, 4)[0]  # a tie may also be with the first neighbour left out
    ties = (d4[:, 1:] == d4[:, :-1]).any(1)
    assert torch.equal(i[~ties], bi[~ties])
    assert int((d[:, 0] == 0).sum()) == 80


@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_exactly_tied_neighbours_come_by_index_whatever_the_blocking(chunk):
    """Three copies of every point: each row's two neighbours are its copies at distance
    0, reported lower index first (brute force with a stable sort) for every blocking."""
    base = torch.randn(40, 5, generator=torch.Generator().manual_seed(8))
    X = base[torch.randperm(120, generator=torch.Generator().manual_seed(9)) % 40]
    d, i = nearest_neighbors(X, k=2, chunk_size=chunk)
    _, bi, _ = brute(X, 2)
    assert bool((d == 0).all())
    assert torch.equal(i, bi)


def test_full_space_sorted_along_z1_skips_far_tiles_and_stays_exact(monkeypatch):
    """Full-rank noise around a long axis: the projection does not pay (full space), the
    rows are sorted along the first principal coordinate and pairs of tiles far apart
    along it are skipped, without changing the answer."""
    monkeypatch.setattr(neighbors, "_MIN_ROWS_PROJECTED", 0)  # 3,000 rows take the sorting path
    X = _long_axis()
    space = neighbors._search_space(neighbors._unit_centred(X), 2, 4, 128)
    assert space.rank == 0 and bool(space.z1.any())
    pairs = []
    block = neighbors._block
    monkeypatch.setattr(neighbors, "_block", lambda *a, **kw: pairs.append(1) or block(*a, **kw))
    d, i = nearest_neighbors(X, k=2, chunk_size=128)
    tiles = -(-3000 // 128)
    assert len(pairs) < tiles * (tiles + 1) // 2 // 2  # most pairs of tiles skipped
    bd, bi, _ = brute(X, 2)
    torch.testing.assert_close(d, bd, rtol=1e-13, atol=0)
    assert torch.equal(i, bi)


@settings(max_examples=300, deadline=None)
@given(
    ta=st.integers(1, 70),
    tb=st.integers(1, 150),
    spread=st.floats(0.01, 10.0),
    scale=st.floats(0.0, 4.0),
    err=st.sampled_from([0.0, 1e-9, 0.05]),
    short=st.booleans(),
    whole_groups=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_reaching_rectangle_holds_every_entry_within_reach(
    ta, tb, spread, scale, err, short, whole_groups, seed
):
    """Brute force over every entry of a pair of tiles: an entry within reach along z1 of
    its row's or its column's threshold (``z_c - z_r - err <= sqrt(thr)``) lies in the
    rectangle. Its bounds are whole groups (or the tile's end); with groups of one entry
    it is the smallest such rectangle (up to rounding)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.sort(torch.rand(ta + tb, generator=gen, dtype=torch.float64) * spread).values
    za, zb = z[:ta], z[ta:]
    thr_a = (torch.rand(ta, generator=gen) * scale) ** 2
    thr_b = (torch.rand(tb, generator=gen) * scale) ** 2
    thr_a[torch.rand(ta, generator=gen) < 0.1] = -1e-6  # lowered norms: a value may be < 0
    if short:  # a tile short of m rows: infinite thresholds
        thr_b[torch.rand(tb, generator=gen) < 0.05] = float("inf")
    groups = neighbors._GROUP if whole_groups else {0: 1, 1: 1}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(neighbors, "_GROUP", groups)
        r0, c1 = neighbors._reaching(za, zb, thr_a, thr_b, err)
    gap = zb.unsqueeze(0) - za.unsqueeze(1) - err  # (ta, tb), >= -err
    reach_a = thr_a.double().clamp_min(0).sqrt().unsqueeze(1)
    reach_b = thr_b.double().clamp_min(0).sqrt().unsqueeze(0)
    r, c = ((gap <= reach_a) | (gap <= reach_b)).nonzero().unbind(1)
    assert bool((r >= r0).all()) and bool((c < c1).all())
    assert 0 <= r0 <= ta and 0 <= c1 <= tb
    assert r0 % groups[0] == 0 and (c1 == tb or c1 % groups[1] == 0)
    if not whole_groups:  # tight: no row or column beyond reach (with a rounding margin)
        loose = (gap <= reach_a * (1 + 1e-9) + 1e-12) | (gap <= reach_b * (1 + 1e-9) + 1e-12)
        rl, cl = loose.nonzero().unbind(1)
        if rl.numel():
            assert r0 >= int(rl.min()) and c1 <= int(cl.max()) + 1
        else:
            assert r0 == ta or c1 == 0


def test_pairs_of_tiles_are_trimmed_to_the_entries_within_reach(monkeypatch):
    """Rows sorted along a long axis: the blocks of pairs of tiles shrink to the rows and
    columns within reach along z1, and the answer stays that of brute force."""
    monkeypatch.setattr(neighbors, "_MIN_ROWS_PROJECTED", 0)
    X = _long_axis(n=4000, d=24, seed=13)
    shapes = []
    grouped = neighbors._below_grouped
    monkeypatch.setattr(
        neighbors,
        "_below_grouped",
        lambda blk, lim, dim: shapes.append(tuple(blk.shape)) or grouped(blk, lim, dim),
    )
    d, i = nearest_neighbors(X, k=2, chunk_size=256)
    assert shapes and any(a < 256 or b < 256 for a, b in shapes)
    assert sum(a * b for a, b in shapes) < 0.9 * 256 * 256 * len(shapes)
    bd, bi, _ = brute(X, 2)
    torch.testing.assert_close(d, bd, rtol=1e-13, atol=0)
    assert torch.equal(i, bi)


@pytest.mark.parametrize("shape", [(300, 1024), (5, 2048), (40, 1000), (64, 512)])
@pytest.mark.parametrize("ties", [False, True])
def test_smallest_per_row_through_groups_equals_topk(shape, ties):
    """The m smallest entries of each row through the minima of groups of columns: the
    values of ``torch.topk``, ascending, at distinct columns that hold them (rows with
    many ties, infinite entries and clusters inside one group included)."""
    gen = torch.Generator().manual_seed(shape[1] + ties)
    block = torch.randn(shape, generator=gen)
    if ties:
        block = block.mul(2).round()
    block[:, ::7] = float("inf")
    block[0, 64:72] = -50.0  # one row's smallest entries all in one group
    for m in (1, 4, 6):
        want = torch.topk(block, m, dim=1, largest=False, sorted=True).values
        d, j = neighbors._smallest_per_row(block, m)
        assert torch.equal(d, want)
        assert torch.equal(block.gather(1, j), d)
        assert bool((j.sort(1).values.diff(1) > 0).all())


def _long_axis(n: int = 3000, d: int = 30, seed: int = 11) -> torch.Tensor:
    """Full-rank noise around a long axis: the full space, rows sorted along it."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    X[:, 0] += torch.linspace(0, 60, n, dtype=torch.float64)[torch.randperm(n, generator=gen)]
    return X.float()


def test_recheck_compares_only_columns_within_reach_along_z1(monkeypatch):
    """Every row's certificate made to fail: the re-check alone must find the answer, and
    it compares each group of rows only with the columns near it along ``z1``."""
    monkeypatch.setattr(neighbors, "_MIN_ROWS_PROJECTED", 0)
    X = _long_axis()
    top_m = neighbors._top_m_symmetric

    def failing(*args):
        best_d, best_i = top_m(*args)
        best_d[:, -1] = -float("inf")  # no rejected value is provably far enough
        return best_d, best_i

    monkeypatch.setattr(neighbors, "_top_m_symmetric", failing)
    rechecked, widths = [], []
    recheck, block = neighbors._recheck, neighbors._block

    def spy_recheck(space, X_, rows, *args):
        rechecked.append(rows.numel())
        monkeypatch.setattr(
            neighbors, "_block", lambda *a, **kw: widths.append(a[2].shape[0]) or block(*a, **kw)
        )
        try:
            return recheck(space, X_, rows, *args)
        finally:
            monkeypatch.setattr(neighbors, "_block", block)

    monkeypatch.setattr(neighbors, "_recheck", spy_recheck)
    d, i = nearest_neighbors(X, k=2, chunk_size=128)
    assert rechecked == [3000]
    assert widths and max(widths) < 3000 // 2, widths  # a window of the columns, not all
    bd, bi, _ = brute(X, 2)
    torch.testing.assert_close(d, bd, rtol=1e-13, atol=0)
    assert torch.equal(i, bi)


def test_data_over_the_sorting_limit_are_searched_unsorted(monkeypatch):
    """Sorting costs copies of the data: above ``_MAX_SORTED_BYTES`` the full space keeps
    the input order (no ``z1``), with the same answer."""
    monkeypatch.setattr(neighbors, "_MIN_ROWS_PROJECTED", 0)
    X = torch.randn(1500, 30, generator=torch.Generator().manual_seed(12))
    Y = neighbors._unit_centred(X)
    assert bool(neighbors._search_space(Y, 2, 4, 128).z1.any())
    monkeypatch.setattr(neighbors, "_MAX_SORTED_BYTES", X.numel() * 4 - 1)
    space = neighbors._search_space(Y, 2, 4, 128)
    assert space.rank == 0 and not bool(space.z1.any())
    d, i = nearest_neighbors(X, k=2, chunk_size=128)
    bd, bi, _ = brute(X, 2)
    torch.testing.assert_close(d, bd, rtol=1e-13, atol=0)
    assert torch.equal(i, bi)


def test_probe_counts_are_those_of_the_exact_lower_bounds():
    """The rank choice counts, per probe row, the rows whose projected lower bound
    ``|z_i - z_j|^2 + (r_i - r_j)^2`` (r: norm of the rest) is at most the probe's k-th
    squared distance: the same counts as a float64 reference by direct differences."""
    g = torch.Generator().manual_seed(3)
    Y = torch.randn(600, 24, dtype=torch.float64, generator=g) * torch.linspace(3, 0.1, 24)
    Q = neighbors._principal_basis(Y, 8)
    sq, Z, _ = neighbors._project(Y, Q)
    k, ranks = 3, (2, 4, 8)
    got = neighbors._probe_counts(Y, sq, Z, k, ranks)
    probe = torch.linspace(0, 599, neighbors._PROBE_ROWS).round().long()
    d2 = torch.cdist(Y[probe], Y, compute_mode="donot_use_mm_for_euclid_dist").square()
    d2[torch.arange(len(probe)), probe] = float("inf")
    dk = d2.sort(dim=1).values[:, k - 1 : k]
    want = []
    for p in ranks:
        z = Y @ Q[:, :p]
        r = (Y - z @ Q[:, :p].T).norm(dim=1)
        lb = torch.cdist(z[probe], z, compute_mode="donot_use_mm_for_euclid_dist").square()
        lb += (r[probe, None] - r[None, :]).square()
        lb[torch.arange(len(probe)), probe] = float("inf")
        want.append(float((lb <= dk).sum(1, dtype=torch.float64).mean()))
    assert got == pytest.approx(want, abs=0.05)  # a tie at the boundary moves one count
    assert want[0] > want[-1] >= k  # more directions, tighter bounds
