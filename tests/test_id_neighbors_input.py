"""Neighbours first: one ``nearest_neighbors`` search serves ``twonn``, ``gride``, the scale
analyses and ``ratio_table``, with the numbers of the estimators' own searches (issue 20)."""

from __future__ import annotations

import pytest
import torch

from interp_lib.id import (
    Neighbors,
    RatioTable,
    block_analysis,
    decimation,
    gride,
    nearest_neighbors,
    ratio_table,
    twonn,
)
from interp_lib.id import neighbors as neighbors_module


def _points(n: int = 300, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 9, generator=g).double()
    return torch.cat([X, X[:12]])  # duplicates: dropped the same way with or without


@pytest.fixture
def searches(monkeypatch):
    """Counts the neighbour searches (every estimator's search goes through ``_search``)."""
    calls = []
    real = neighbors_module._search
    monkeypatch.setattr(
        neighbors_module, "_search", lambda X, *a, **k: calls.append(len(X)) or real(X, *a, **k)
    )
    return calls


def _same(a, b) -> None:
    for field in a.__dataclass_fields__:
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x.nan_to_num(-1), y.nan_to_num(-1)), field
        else:
            assert x == y, field


@pytest.mark.filterwarnings("ignore:TwoNN dropped")
def test_estimators_give_identical_results_from_one_search(searches):
    X = _points()
    nb = nearest_neighbors(X, 32)
    assert searches == [len(X)]
    for method in ("ls", "mle", "bayes"):
        _same(twonn(X, method=method, neighbors=nb), twonn(X, method=method))
    _same(twonn(X, n_resamples=3, neighbors=nb), twonn(X, n_resamples=3))
    _same(gride(X, max_rank=32, neighbors=nb), gride(X, max_rank=32))
    _same(gride(X, max_rank=8, neighbors=nb), gride(X, max_rank=8))
    _same(block_analysis(X, neighbors=nb, seed=1), block_analysis(X, seed=1))
    _same(decimation(X, neighbors=nb, seed=2), decimation(X, seed=2))
    table = ratio_table(nb, 2, 4, points=X)
    assert isinstance(table, RatioTable)
    _same(table, ratio_table(nb.distances, 2, 4, points=X))


@pytest.mark.filterwarnings("ignore:TwoNN dropped")
def test_with_neighbors_the_full_set_is_not_searched_again(searches):
    X = _points()
    nb = nearest_neighbors(X, 64)
    searches.clear()
    twonn(X, neighbors=nb)
    gride(X, max_rank=64, neighbors=nb)
    assert searches == []
    twonn(X, n_resamples=2, neighbors=nb)  # the subsamples search inside themselves
    assert searches == [int(0.9 * len(X))] * 2
    searches.clear()
    res = block_analysis(X, neighbors=nb)
    assert len(X) not in searches and len(searches) == int(res.n_subsets.sum()) - 1
    searches.clear()
    block_analysis(X)
    assert searches[0] == len(X)  # the test can fail: without neighbours the set is searched


def test_precomputed_distances_and_neighbors_agree():
    X = _points(80, seed=3)[:80]
    D = torch.cdist(X, X)
    nb = nearest_neighbors(D, 4, metric="precomputed")
    _same(twonn(D, metric="precomputed", neighbors=nb), twonn(D, metric="precomputed"))
    _same(gride(D, metric="precomputed", max_rank=4, neighbors=nb),
          gride(D, metric="precomputed", max_rank=4))  # fmt: skip


def test_too_few_or_foreign_neighbors_are_refused_clearly():
    X = _points(100, seed=1)[:100]
    with pytest.raises(ValueError, match=r"twonn needs 2 neighbours per point.*holds 1"):
        twonn(X, neighbors=nearest_neighbors(X, 1))
    with pytest.raises(ValueError, match=r"gride needs 64 neighbours per point.*k=64"):
        gride(X, neighbors=nearest_neighbors(X, 8))
    gride(X, max_rank=8, neighbors=nearest_neighbors(X, 8))  # enough for max_rank=8
    with pytest.raises(ValueError, match="block_analysis needs 2 neighbours"):
        block_analysis(X, neighbors=nearest_neighbors(X, 1))
    with pytest.raises(ValueError, match="lists of 50 points, but twonn was given 100"):
        twonn(X, neighbors=nearest_neighbors(X[:50], 2))
    with pytest.raises(ValueError, match="decimation was given 100"):
        decimation(X, neighbors=nearest_neighbors(X[:50], 2))
    with pytest.raises(TypeError, match="Neighbors of nearest_neighbors"):
        twonn(X, neighbors=torch.zeros(100, 2))
    with pytest.raises(ValueError, match="k >= n2"):
        ratio_table(nearest_neighbors(X, 2), 2, 4)
    with pytest.raises(ValueError, match="n1 < n2"):
        ratio_table(nearest_neighbors(X, 4), 3, 2)
    assert isinstance(nearest_neighbors(X, 2), Neighbors)


@pytest.mark.filterwarnings("ignore:TwoNN dropped")
def test_class_profiles_searches_once_per_class_and_layer(searches):
    from torch import nn

    from interp_lib.studies import class_profiles

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 1, 3, 4, generator=g)
    y = torch.tensor([0, 1] * 60)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 3))
    prof = class_profiles(net, x, y, n_resamples=3, max_rank=16)
    assert searches == [60] * (2 * len(prof.layers))
