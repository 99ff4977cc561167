"""Near-duplicates: FAISS exact search (``IndexFlatL2``) against ours, with a known answer.

FAISS computes squared distances two ways: for fewer query rows than
``faiss.cvar.distance_compute_blas_threshold`` by direct float32 differences (accurate to
float32 rounding of the distance itself), for more by a BLAS product and the expansion
``|x|^2 + |y|^2 - 2 x.y`` in float32, clamped at 0. The threshold is 20 in older FAISS
releases and 128,000 in recent ones (an activation matrix of that many rows takes the
BLAS path). The expansion's rounding error is about ``eps |x|^2``: points far from the
origin (FAISS does not centre) and closer than ``sqrt(eps) |x|`` to each other all get
distance 0, and the point itself no longer comes first. Our search proves its order with
a rounding bound and measures every reported distance by direct float64 differences.
"""

import contextlib

import numpy as np
import torch
from _helpers import require_module

from interp_lib.id.neighbors import knn

faiss = require_module("faiss")


@contextlib.contextmanager
def blas_threshold(n: int):
    before = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = n
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = before


def _near_duplicates() -> np.ndarray:
    """100 points near (1000, ..., 1000) in 32 dimensions; rows 1 and 2 are row 0 moved by
    exactly 2**-10 and 1/16 along one axis (every coordinate exactly representable)."""
    rng = np.random.default_rng(0)
    X = (1000 + rng.normal(size=(100, 32))).astype(np.float32)
    X[1] = X[0]
    X[1, 0] += np.float32(2**-10)
    X[2] = X[0]
    X[2, 1] += np.float32(1 / 16)
    return X


def _exact(X: np.ndarray, k: int):
    X64 = torch.from_numpy(X).to(torch.float64)
    D = torch.cdist(X64, X64, compute_mode="donot_use_mm_for_euclid_dist")
    D.fill_diagonal_(float("inf"))
    d, i = torch.sort(D, dim=1, stable=True)
    return d[:, :k].numpy(), i[:, :k].numpy()


def _faiss(X: np.ndarray, k: int):
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    d2, idx = index.search(X, k + 1)  # the point itself is expected first
    return np.sqrt(np.maximum(d2, 0)), idx


def test_ours_is_exact_on_near_duplicates():
    X = _near_duplicates()
    d, i = knn(torch.from_numpy(X), 2)
    bd, bi = _exact(X, 2)
    np.testing.assert_array_equal(d.numpy(), bd)
    np.testing.assert_array_equal(i.numpy(), bi)
    assert d[0, 0] == 2**-10 and d[0, 1] == 1 / 16  # the known answer
    assert i[0].tolist() == [1, 2] and i[1].tolist() == [0, 2] and i[2].tolist() == [0, 1]


def test_faiss_expansion_path_zeroes_and_misorders_near_duplicates():
    X = _near_duplicates()
    with blas_threshold(20):  # 100 queries: the BLAS expansion path
        d, idx = _faiss(X, 2)
    # row 0's nearest other point is at 2**-10 (and row 2 at 1/16): FAISS says 0 for both
    assert idx[0, 0] == 0  # itself first here ...
    assert d[0, 1] == 0.0 and d[0, 2] == 0.0
    # ... but not for rows 1 and 2: row 0 comes before the point itself, so dropping the
    # first column (the usual way to exclude the point) keeps the point as its neighbour
    assert idx[1, 0] != 1 or idx[2, 0] != 2
    # TwoNN's ratio r2 / r1 of row 0 is 0 / 0 instead of 64
    with np.errstate(invalid="ignore", divide="ignore"):
        assert not np.isfinite(d[0, 2] / d[0, 1])


def test_faiss_direct_path_is_accurate_to_float32():
    X = _near_duplicates()
    with blas_threshold(10**9):  # every query by direct differences
        d, idx = _faiss(X, 2)
    bd, bi = _exact(X, 2)
    assert (idx[:, 0] == np.arange(len(X))).all()
    np.testing.assert_array_equal(idx[:3, 1:], bi[:3])
    np.testing.assert_allclose(d[:, 1:], bd, rtol=1e-6)
