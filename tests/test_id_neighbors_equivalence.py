"""The certified search returns what the previous implementation returned (issue 14).

``previous_knn`` is a verbatim copy of the search before the rewrite (float32/64 blocked
top-k plus a float64 re-rank of ``k + margin`` candidates, commit 2683d6c); on data at
ordinary scales the new search must give the same indices and distances equal to 1e-12,
in both of its modes (full space, and the projection for low-rank data).
"""

import pytest
import torch

from interp_lib.id import nearest_neighbors, neighbors
from interp_lib.id.neighbors import _search_space


def _merge_topk(best_d, best_i, cand_d, cand_i, k):
    d = torch.cat([best_d, cand_d], dim=1)
    i = torch.cat([best_i, cand_i], dim=1)
    d, pos = torch.topk(d, k, dim=1, largest=False, sorted=True)
    return d, torch.gather(i, 1, pos)


def _search_features(X, k, chunk_size):
    n = X.shape[0]
    X = X - X.mean(dim=0, keepdim=True)
    sq = (X * X).sum(dim=1)
    inf = torch.finfo(X.dtype).max
    best_d = torch.full((n, k), inf, dtype=X.dtype)
    best_i = torch.full((n, k), -1, dtype=torch.long)
    starts = range(0, n, chunk_size)
    for a in starts:
        xa, sqa = X[a : a + chunk_size], sq[a : a + chunk_size]
        na = xa.shape[0]
        for b in starts:
            if b < a:
                continue
            xb, sqb = X[b : b + chunk_size], sq[b : b + chunk_size]
            nb = xb.shape[0]
            block = torch.addmm(sqb.unsqueeze(0), xa, xb.T, alpha=-2.0)
            block.add_(sqa.unsqueeze(1))
            if a == b:
                block.fill_diagonal_(inf)
            d, j = torch.topk(block, min(k, nb), dim=1, largest=False, sorted=False)
            best_d[a : a + na], best_i[a : a + na] = _merge_topk(
                best_d[a : a + na], best_i[a : a + na], d, j + b, k
            )
            if b != a:
                d, j = torch.topk(block.T.contiguous(), min(k, na), 1, largest=False, sorted=False)
                best_d[b : b + nb], best_i[b : b + nb] = _merge_topk(
                    best_d[b : b + nb], best_i[b : b + nb], d, j + a, k
                )
    return best_i


def _refine(X, cand, k, chunk_size):
    n, m = cand.shape
    d = torch.empty((n, m), dtype=torch.float64)
    rows = max(1, (chunk_size * chunk_size) // X.shape[1])
    for a in range(0, n, rows):
        x = X[a : a + rows].to(torch.float64)
        for j in range(m):
            diff = X[cand[a : a + rows, j]].to(torch.float64).sub_(x)
            d[a : a + rows, j] = torch.linalg.vector_norm(diff, dim=1)
    d, pos = torch.sort(d, dim=1, stable=True)
    return d[:, :k].contiguous(), torch.gather(cand, 1, pos[:, :k])


def previous_knn(X, k, chunk_size=4096, margin=2):
    m = min(X.shape[0] - 1, k + margin)
    with torch.no_grad():
        return _refine(X, _search_features(X, m, chunk_size), k, chunk_size)


def low_rank(n, d, r, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    X = (
        torch.randn(n, r, generator=g, dtype=torch.float64)
        @ torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))[0].T
    )
    return (X + 1e-3 * torch.randn(n, d, generator=g, dtype=torch.float64)).to(dtype)


CASES = [
    # (data, k, chunk_size, expected search mode: projected rank > 0 or full space 0)
    pytest.param(
        lambda: low_rank(1500, 100, 6, torch.float32, 0),
        2,
        4096,
        True,
        id="low-f32",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        lambda: low_rank(1500, 60, 6, torch.float64, 1),
        3,
        256,
        True,
        id="low-f64",
        marks=pytest.mark.slow,
    ),
    pytest.param(lambda: low_rank(900, 50, 10, torch.float32, 2), 1, 100, True, id="low-k1"),
    pytest.param(
        lambda: torch.randn(800, 40, generator=torch.Generator().manual_seed(3)),
        2,
        300,
        False,
        id="full-f32",
    ),
    pytest.param(
        lambda: torch.rand(700, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4)),
        5,
        64,
        False,
        id="full-f64",
    ),
]


@pytest.fixture(autouse=True)
def project_small_data(monkeypatch):
    """Let small test data take the projected search (by default only N >= 4096 does)."""
    monkeypatch.setattr(neighbors, "_MIN_ROWS_PROJECTED", 0)


@pytest.mark.parametrize(("make", "k", "chunk_size", "projected"), CASES)
def test_same_result_as_previous_implementation(make, k, chunk_size, projected):
    X = make()
    Y = X - X.mean(0)
    assert bool(_search_space(Y, k, k + 2, chunk_size).rank) == projected  # both modes run
    d, i = nearest_neighbors(X, k=k, chunk_size=chunk_size)
    pd, pi = previous_knn(X, k, chunk_size)
    torch.testing.assert_close(d, pd, rtol=0, atol=1e-12)
    assert torch.equal(i, pi)


def test_duplicates_and_clusters_as_before():
    # clusters of exact duplicates and near-duplicates in a low-rank cloud
    X = low_rank(1200, 64, 5, torch.float32, 5)
    X[600:700] = X[:100]  # exact duplicates
    X[700:800] = X[100:200] + 1e-6  # near-duplicates (float32 expansion cannot see them)
    d, i = nearest_neighbors(X, k=2, chunk_size=500)
    pd, _ = previous_knn(X, 2, 500)
    torch.testing.assert_close(d, pd, rtol=0, atol=1e-12)
    D = torch.cdist(X.double(), X.double(), compute_mode="donot_use_mm_for_euclid_dist")
    torch.testing.assert_close(D.gather(1, i), d, rtol=1e-12, atol=1e-12)
    assert not bool((i == torch.arange(len(X))[:, None]).any())
    assert int((d[:, 0] == 0).sum()) == 200
