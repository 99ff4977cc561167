"""Clear errors for bad options and bad precomputed matrices (issue 10, items 3 and 5).

Every error is a ValueError/TypeError raised from interp_lib's own frames, also when the
option reaches the search through an estimator (``twonn``, ``gride``).
"""

import pytest
import torch

from interp_lib.id import gride, nearest_neighbors, twonn
from interp_lib.id.neighbors import knn


def raised_in_interp_lib(excinfo) -> bool:
    tb = excinfo.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    return "interp_lib" in tb.tb_frame.f_code.co_filename


def distances(n: int = 12, seed: int = 0) -> torch.Tensor:
    X = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return torch.cdist(X, X)


ESTIMATORS = [
    pytest.param(lambda X, **kw: nearest_neighbors(X, k=2, **kw), id="nearest_neighbors"),
    pytest.param(lambda X, **kw: twonn(X, **kw), id="twonn"),
    pytest.param(lambda X, **kw: gride(X, max_rank=4, **kw), id="gride"),
]


@pytest.mark.parametrize("fn", ESTIMATORS)
@pytest.mark.parametrize(
    ("chunk_size", "exc", "match"),
    [
        (0, ValueError, "chunk_size"),
        (-5, ValueError, "chunk_size"),
        (1.5, TypeError, "chunk_size"),
        ("64", TypeError, "chunk_size"),
        (True, TypeError, "chunk_size"),
    ],
)
def test_bad_chunk_size(fn, chunk_size, exc, match):
    X = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(exc, match=match) as info:
        fn(X, chunk_size=chunk_size)
    assert raised_in_interp_lib(info)


@pytest.mark.parametrize("fn", ESTIMATORS)
@pytest.mark.parametrize("metric", ["cosine", "manhattan", "Euclidean", None, 3])
def test_unsupported_metric_is_refused(fn, metric):
    X = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="metric must be 'euclidean' or 'precomputed'") as info:
        fn(X, metric=metric)
    assert raised_in_interp_lib(info)


def test_knn_checks_its_options_too():
    X = torch.randn(10, 2)
    with pytest.raises(ValueError, match="chunk_size"):
        knn(X, 2, chunk_size=0)
    with pytest.raises(ValueError, match="metric"):
        knn(X, 2, metric="cosine")


def _nonsymmetric():
    D = distances()
    D[0, 5] += 0.5
    return D


def _diagonal():
    return distances() + 177.0 * torch.eye(12, dtype=torch.float64)


def _negative():
    D = distances()
    D[1, 2] = D[2, 1] = -0.1
    return D


def _nan():
    D = distances()
    D[3, 4] = D[4, 3] = float("nan")
    return D


def _inf():
    D = distances()
    D[3, 4] = D[4, 3] = float("inf")
    return D


@pytest.mark.parametrize("fn", ESTIMATORS)
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: distances()[:, :10], "must be square"),
        (_nonsymmetric, "must be symmetric"),
        (_diagonal, "zero diagonal"),
        (_negative, "negative"),
        (_nan, "NaN or infinity"),
        (_inf, "NaN or infinity"),
    ],
)
def test_bad_precomputed_matrix(fn, make, match):
    with pytest.raises(ValueError, match=match) as info:
        fn(make(), metric="precomputed")
    assert raised_in_interp_lib(info)


def test_precomputed_rounding_noise_is_accepted():
    # torch.cdist's expansion leaves ~sqrt(eps) on the diagonal and tiny asymmetries
    X = torch.randn(200, 30, generator=torch.Generator().manual_seed(0))
    D = torch.cdist(X, X)
    assert float(D.diagonal().abs().max()) > 0
    d, i = nearest_neighbors(D, k=2, metric="precomputed")
    d0, i0 = nearest_neighbors(X, k=2)
    assert torch.equal(i, i0)
    torch.testing.assert_close(d, d0, rtol=1e-4, atol=0)
