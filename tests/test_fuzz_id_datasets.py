"""Fuzzing every public function of ``interp_lib.id`` and of ``interp_lib.datasets``'
manifolds and splits (hypothesis): each call either returns the result an independent
numpy oracle computes, or raises our own ``ValueError``/``TypeError`` (see ``_fuzz.py``).

Valid point clouds are drawn on a binary grid (small integers times a power of two), so
that every distance is computed exactly in float64 by both the library and the oracle:
duplicates and exact ties (which TwoNN and Gride must drop) are frequent, and the oracle
can demand equality. The examples are derandomised; raise ``FUZZ_EXAMPLES`` to search
longer. The number of calls per function is printed at the end of the run
(``conftest.pytest_terminal_summary``).
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch
from _fuzz import FUZZ, outcome
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from interp_lib.datasets import (
    TensorImageDataset,
    curved_manifold,
    gaussian,
    hypercube,
    make_manifold,
    periodic_distances,
    sphere,
    stratified_split,
    swiss_roll,
    train_val_test_split,
)
from interp_lib.id import (
    PCADim,
    TwoNN,
    block_analysis,
    decimation,
    gaussian_surrogate,
    gride,
    gride_mle,
    nearest_neighbors,
    participation_ratio,
    pca_dim,
    pca_dim_from_spectrum,
    pca_spectrum,
    subsample_estimates,
    twonn,
    twonn_ls,
    twonn_mle,
    twonn_posterior,
)
from interp_lib.id._ratios import ratio_table

pytestmark = [
    pytest.mark.fuzz,  # about a thousand calls
    pytest.mark.filterwarnings("ignore::UserWarning"),  # dropped duplicates are expected
]

SKLEARN = (Path(sklearn.__file__).resolve().parent,)

# ---------------------------------------------------------------------------------------
# strategies

JUNK = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(0, 3), max_size=4),
    st.lists(st.lists(st.floats(-5, 5), max_size=3), max_size=4),  # ragged
    st.just(object()),
)

DTYPES = ["float64", "float32", "float16", "int64", "int8", "uint8", "bool", "complex128"]


@st.composite
def any_array(draw, max_side=8):
    """Arrays of any dtype and rank, with NaN/inf, as numpy or torch."""
    arr = draw(
        hnp.arrays(
            dtype=st.sampled_from(DTYPES),
            shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=max_side),
        )
    )
    if draw(st.booleans()):
        return torch.from_numpy(arr)
    return arr


@st.composite
def grid_points(draw, min_n=1, max_n=24, max_d=4):
    """(N, D) points on a binary grid: exact float64 distances, many duplicates and ties."""
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, max_d))
    r = draw(st.sampled_from([2, 6, 60]))
    ints = draw(hnp.arrays(np.int64, (n, d), elements=st.integers(-r, r)))
    shift = draw(st.sampled_from([-8, 0, 3]))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    X = np.ldexp(ints.astype(np.float64), shift).astype(dtype)
    return torch.from_numpy(X) if draw(st.booleans()) else X


BAD_POINTS = st.one_of(any_array(), JUNK, grid_points(max_n=2))
BAD_INTS = st.one_of(st.integers(-3, 0), st.sampled_from([2**70, 1.5, "3", True, None]))
VALID_FRACTION = st.floats(0.05, 1.0)
BAD_FRACTION = st.one_of(
    st.floats(-0.5, 0.0),
    st.floats(1.0, 2.0, exclude_min=True),
    st.sampled_from([float("nan"), float("inf"), "0.5", None, True]),
)
VALID_SEED = st.one_of(
    st.integers(-(2**63), 2**64 - 1), st.none(), st.just(torch.Generator().manual_seed(0))
)
BAD_SEED = st.sampled_from([2**64, -(2**63) - 1, 2**70, 1.5, "0", True, object()])


def draw_args(data, spec: dict) -> tuple[str | None, dict]:
    """Draw every argument valid but (half of the time) one, named ``bad``, invalid."""
    bad = data.draw(st.sampled_from([None] * len(spec) + list(spec)), label="bad")
    args = {
        k: data.draw(invalid if k == bad else valid, label=k)
        for k, (valid, invalid) in spec.items()
    }
    return bad, args


# ---------------------------------------------------------------------------------------
# oracles (numpy, independent of interp_lib)


def as64(X) -> np.ndarray:
    return np.asarray(X.numpy() if isinstance(X, torch.Tensor) else X, dtype=np.float64)


def ref_sorted_distances(X: np.ndarray) -> np.ndarray:
    """Distances to every other row, ascending, exact on the binary grid."""
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    return np.sort(D, axis=1)[:, :-1]


def ref_ratios(dist: np.ndarray, n1: int = 1, n2: int = 2) -> tuple[np.ndarray, np.ndarray]:
    r1, r2 = dist[:, n1 - 1], dist[:, n2 - 1]
    keep = (r1 > 0) & (r2 > r1)
    return r2[keep] / r1[keep], (r1[keep] + r2[keep]) / 2


def ref_twonn(mu: np.ndarray, method: str, fraction: float) -> float:
    n = mu.size
    if method == "mle":
        return (n - 1) / np.log(mu).sum()
    if method == "bayes":
        return (1e-3 + n) / (1e-3 + np.log(mu).sum())
    m = min(math.floor(fraction * n), n - 1)
    x = np.log(np.sort(mu)[:m])
    y = -np.log1p(-np.arange(1, m + 1) / n)
    return float((x * y).sum() / (x * x).sum())


def ref_gride_score(d: float, mu: np.ndarray, n1: int, n2: int) -> float:
    L = np.log(mu)
    return (mu.size - 1) / d - (n2 - 1) * L.sum() + (n2 - n1 - 1) * (L / -np.expm1(-d * L)).sum()


# ---------------------------------------------------------------------------------------
# interp_lib.id

METHOD = (st.sampled_from(["ls", "mle", "bayes"]), st.one_of(JUNK, st.just("gride")))


@FUZZ
@given(data=st.data())
def test_twonn(data):
    bad, a = draw_args(
        data,
        {
            "X": (grid_points(min_n=3), BAD_POINTS),
            "method": METHOD,
            "fraction": (VALID_FRACTION, BAD_FRACTION),
            "metric": (st.just("euclidean"), st.sampled_from(["cosine", "precomputed", None])),
            "chunk_size": (st.sampled_from([1, 3, 4096]), BAD_INTS),
        },
    )
    out = outcome(twonn, **a)
    if bad is not None:
        return
    X, method, fraction = a["X"], a["method"], a["fraction"]
    mu, _ = ref_ratios(ref_sorted_distances(as64(X)))
    if mu.size < 3 or (method == "ls" and min(math.floor(fraction * mu.size), mu.size - 1) < 1):
        assert isinstance(out, ValueError), "a result although fewer than 3 ratios are usable"
        return
    assert not isinstance(out, Exception), f"refused a valid input: {out}"
    assert out.n_used == mu.size and out.n_used + out.n_dropped == len(X)
    assert out.dimension == pytest.approx(ref_twonn(mu, method, fraction), rel=1e-9)
    # ...and with the distances precomputed (an exact distance matrix)
    D = np.sqrt(((as64(X)[:, None] - as64(X)[None]) ** 2).sum(-1))
    again = outcome(twonn, D, method=method, fraction=fraction, metric="precomputed")
    assert again.dimension == pytest.approx(out.dimension, rel=1e-12)


@FUZZ
@given(data=st.data())
def test_gride(data):
    bad, a = draw_args(
        data,
        {
            "X": (grid_points(min_n=3), BAD_POINTS),
            "max_rank": (st.integers(2, 40), st.one_of(st.integers(-2, 1), BAD_INTS)),
            "scale": (st.sampled_from(["mean", "outer"]), st.one_of(JUNK, st.just("inner"))),
        },
    )
    out = outcome(gride, **a)
    if bad is not None:
        return
    X, max_rank, scale = a["X"], a["max_rank"], a["scale"]
    dist = ref_sorted_distances(as64(X))
    top = min(max_rank, len(X) - 1)
    expected = []
    n1 = 1
    while 2 * n1 <= top:
        mu, mean_scale = ref_ratios(dist, n1, 2 * n1)
        r1, r2 = dist[:, n1 - 1], dist[:, 2 * n1 - 1]
        outer = r2[(r1 > 0) & (r2 > r1)]
        if mu.size >= 3:
            expected.append((n1, mu, mean_scale.mean() if scale == "mean" else outer.mean()))
        n1 *= 2
    if not expected:
        assert isinstance(out, ValueError)
        return
    assert not isinstance(out, Exception), f"refused a valid input: {out}"
    assert out.n1.tolist() == [e[0] for e in expected]
    assert out.n_used.tolist() == [e[1].size for e in expected]
    rows = zip(expected, out.dimensions.tolist(), out.scales.tolist(), strict=True)
    for (n1, mu, s), d, sc in rows:
        assert sc == pytest.approx(s, rel=1e-12)
        if n1 == 1:
            assert d == pytest.approx((mu.size - 1) / np.log(mu).sum(), rel=1e-9)
        assert abs(ref_gride_score(d, mu, n1, 2 * n1)) <= 1e-6 * mu.size / d


@FUZZ
@given(data=st.data(), all_blocks=st.booleans())
def test_block_analysis_and_decimation(data, all_blocks):
    bad, a = draw_args(
        data,
        {
            "X": (grid_points(min_n=3, max_n=40), BAD_POINTS),
            "min_size": (st.integers(3, 12), st.one_of(st.integers(-2, 2), BAD_INTS)),
            "method": METHOD,
            "seed": (VALID_SEED, BAD_SEED),
        },
    )
    fn = block_analysis if all_blocks else decimation
    out = outcome(fn, **a)
    if bad is not None or isinstance(out, Exception):
        if bad is None:  # only too few points or too few distinct points may refuse
            assert isinstance(out, ValueError) and (
                len(a["X"]) < a["min_size"] or "distinct" in str(out)
            ), out
        return
    X, method = a["X"], a["method"]
    sizes = out.sizes.tolist()
    assert sizes[0] <= len(X) and all(s >= a["min_size"] for s in sizes)
    assert all(b <= a_ // 2 for a_, b in itertools.pairwise(sizes))
    mu, pair = ref_ratios(ref_sorted_distances(as64(X)))
    if mu.size >= 3:  # the full data set is the first row (sizes without a usable subset
        assert sizes[0] == len(X)  # are left out)
        assert out.dimensions[0].item() == pytest.approx(ref_twonn(mu, method, 0.9), rel=1e-9)
        assert out.scales[0].item() == pytest.approx(pair.mean(), rel=1e-12)
    assert bool(torch.isfinite(out.dimensions).all())


@FUZZ
@given(data=st.data())
def test_nearest_neighbors(data):
    bad, a = draw_args(
        data,
        {"X": (grid_points(min_n=2), BAD_POINTS), "k": (st.integers(1, 3), BAD_INTS)},
    )
    out = outcome(nearest_neighbors, **a)
    X, k = a["X"], a["k"]
    if bad is not None or k >= len(X):
        return
    assert not isinstance(out, Exception), f"refused a valid input: {out}"
    ref = ref_sorted_distances(as64(X))[:, :k]
    np.testing.assert_array_equal(out.distances.numpy(), ref)
    assert not bool((out.indices == torch.arange(len(X))[:, None]).any())


@st.composite
def decimal_lattices(draw):
    """A full lattice (``n^dim`` points, ``dim >= 2``) at a decimal spacing and offset
    (0.1, 0.3, 0.7, 2.7e-5, ...), each coordinate the correctly rounded float64 of its
    exact value: every point is equidistant from its two nearest neighbours, though the
    float64 distances differ by rounding (issue 21, item 7)."""
    from fractions import Fraction

    dim = draw(st.integers(2, 4))
    n = draw(st.integers(2, {2: 12, 3: 6, 4: 4}[dim]))
    spacing = Fraction(draw(st.integers(1, 99))) * Fraction(10) ** draw(st.integers(-8, 6))
    offset = Fraction(draw(st.integers(-999, 999))) * Fraction(10) ** draw(st.integers(-3, 3))
    offset *= draw(st.sampled_from([0, 1]))
    pts = [[float(k * spacing + offset) for k in idx]
           for idx in itertools.product(range(n), repeat=dim)]  # fmt: skip
    X = np.array(pts, dtype=np.float64)
    X = X[np.random.default_rng(draw(st.integers(0, 9))).permutation(len(X))]
    return torch.from_numpy(X) if draw(st.booleans()) else X


@FUZZ
@given(X=decimal_lattices(), method=st.sampled_from(["ls", "mle", "bayes"]))
def test_lattices_at_decimal_spacings_are_all_ties(X, method):
    """Before: a "dimension" of about 1e15 at spacing 0.1 (ratios of 1 + 1e-15)."""
    out = outcome(twonn, X, method=method)
    assert isinstance(out, ValueError) and f"only 0 of {len(X)}" in str(out), out
    out = outcome(gride, X, max_rank=2)
    assert isinstance(out, ValueError) and "degenerate" in str(out), out
    table = ratio_table(nearest_neighbors(X, 2).distances, points=torch.as_tensor(X))
    assert table.mu.numel() == 0 and table.n_ties == len(X) and table.n_duplicates == 0


VALID_MU = st.one_of(
    hnp.arrays(np.float64, st.integers(2, 12), elements=st.floats(1.0, 1e6)),
    hnp.arrays(np.float64, st.integers(2, 12), elements=st.floats(1.001, 50.0)).map(
        torch.from_numpy
    ),
    st.lists(st.floats(1.001, 50.0), min_size=2, max_size=12),
)
BAD_MU = st.one_of(
    hnp.arrays(np.float64, st.integers(0, 12), elements=st.floats(allow_nan=True)),
    any_array(),
    JUNK,
)


@FUZZ
@given(data=st.data(), which=st.sampled_from(["ls", "mle", "bayes", "gride"]))
def test_ratio_estimators(data, which):
    spec = {"mu": (VALID_MU, BAD_MU)}
    if which == "ls":
        spec["fraction"] = (VALID_FRACTION, BAD_FRACTION)
    if which == "bayes":
        spec["prior"] = (
            st.tuples(st.floats(0.01, 10), st.floats(0.01, 10)),
            st.one_of(st.tuples(st.floats(-1, 0), st.floats(-1, 10)), JUNK),
        )
    if which == "gride":
        spec["n1"] = (st.integers(1, 4), BAD_INTS)
        spec["n2"] = (st.integers(5, 9), BAD_INTS)
    fn = {"ls": twonn_ls, "mle": twonn_mle, "bayes": twonn_posterior, "gride": gride_mle}[which]
    bad, a = draw_args(data, spec)
    out = outcome(fn, **a)
    if isinstance(out, Exception):
        m = np.asarray(a["mu"]) if bad is None else None
        if bad is None:  # refused only when the ratios do not identify d
            assert (np.log(m) <= 0).all() or which in ("ls", "gride"), out
        return
    d, err = out
    assert math.isfinite(d) and d > 0 and math.isfinite(err) and err > 0
    m = np.asarray(a["mu"].numpy() if isinstance(a["mu"], torch.Tensor) else a["mu"], np.float64)
    assert m.ndim == 1 and m.size >= 2 and (m >= 1).all()
    n, s = m.size, np.log(m).sum()
    if which == "mle":
        assert d == pytest.approx((n - 1) / s, rel=1e-9)
    elif which == "bayes":
        shape, rate = a.get("prior", (1e-3, 1e-3))
        assert d == pytest.approx((shape + n) / (rate + s), rel=1e-9)
    elif which == "ls":
        assert d == pytest.approx(ref_twonn(m, "ls", a.get("fraction", 0.9)), rel=1e-9)
    else:
        n1, n2 = a.get("n1", 1), a.get("n2", 2)
        assert 1 <= n1 < n2
        assert abs(ref_gride_score(d, m, n1, n2)) <= 1e-6 * n / d


@FUZZ
@given(data=st.data(), which=st.sampled_from(["spectrum", "dim", "pr", "from_spectrum"]))
def test_pca(data, which):
    bad, a = draw_args(
        data,
        {
            "X": (grid_points(min_n=2), BAD_POINTS),
            "variance": (VALID_FRACTION, BAD_FRACTION),
            "standardize": (st.booleans(), st.booleans()),
        },
    )
    X, variance, standardize = a["X"], a["variance"], a["standardize"]
    if which == "spectrum":
        out = outcome(pca_spectrum, X, standardize=standardize)
    elif which == "dim":
        out = outcome(pca_dim, X, variance, standardize=standardize)
    elif which == "pr":
        out = outcome(participation_ratio, X, standardize=standardize)
    else:
        spectrum = outcome(pca_spectrum, X) if bad != "X" else X
        out = outcome(pca_dim_from_spectrum, spectrum, variance)
        if not isinstance(out, Exception):
            assert 1 <= out <= len(np.asarray(spectrum))
        return
    if bad is not None or isinstance(out, Exception):
        if bad is None:  # refused only for data without variance
            assert isinstance(out, ValueError) and "variance" in str(out), out
        return
    Xc = as64(X) - as64(X).mean(0)
    if standardize:
        sd = Xc.std(0, ddof=1)
        keep = sd > 1e-12 * max(1.0, sd.max())
        Xc = Xc[:, keep] / sd[keep]
    ev = np.linalg.svd(Xc, compute_uv=False) ** 2
    ratios = ev / ev.sum()
    if which == "spectrum":
        np.testing.assert_allclose(out.numpy(), ratios, rtol=0, atol=1e-10)
    elif which == "pr":
        assert out == pytest.approx(ev.sum() ** 2 / (ev**2).sum(), rel=1e-9)
    else:
        cum = np.cumsum(ratios)
        lo = int((cum < variance - 1e-9).sum()) + 1
        hi = int((cum < variance + 1e-9).sum()) + 1
        assert min(lo, ratios.size) <= out <= min(hi, ratios.size)


@FUZZ
@given(data=st.data())
def test_gaussian_surrogate(data):
    bad, a = draw_args(
        data,
        {
            "X": (grid_points(min_n=2), BAD_POINTS),
            "n": (st.one_of(st.none(), st.integers(1, 30)), BAD_INTS),
            "seed": (VALID_SEED, BAD_SEED),
        },
    )
    out = outcome(gaussian_surrogate, a["X"], a["n"], seed=a["seed"])
    if isinstance(out, Exception):
        assert bad is not None, out
        return
    arr = as64(a["X"])
    assert arr.ndim == 2 and arr.shape[0] >= 2 and np.isfinite(arr).all()
    m = len(arr) if a["n"] is None else a["n"]
    assert out.shape == (m, arr.shape[1]) and bool(torch.isfinite(out).all())
    # every sample lies in the affine span of the data (the surrogate has its covariance)
    centred = arr - arr.mean(0)
    rank = np.linalg.matrix_rank(centred) if centred.any() else 0
    both = np.vstack([centred, out.double().numpy() - arr.mean(0)])
    assert np.linalg.matrix_rank(both, tol=1e-6 * max(1.0, np.abs(both).max())) <= max(rank, 0) or (
        rank == 0 and np.allclose(out.double().numpy(), arr.mean(0), atol=1e-5)
    )


@FUZZ
@given(data=st.data())
def test_subsample_estimates(data):
    bad, a = draw_args(
        data,
        {
            "X": (grid_points(max_n=12).map(torch.as_tensor), BAD_POINTS),
            "n_resamples": (st.integers(0, 5), st.one_of(st.integers(-3, -1), BAD_INTS)),
            "subsample": (VALID_FRACTION, BAD_FRACTION),
            "seed": (VALID_SEED, BAD_SEED),
            "estimator": (
                st.sampled_from([lambda S: float(S.shape[0]), lambda S: None]),
                st.sampled_from(["not callable", None, 3]),
            ),
        },
    )
    X = a.pop("X")
    estimator = a.pop("estimator")
    out = outcome(subsample_estimates, X, estimator, **a)
    if isinstance(out, Exception):
        assert bad is not None, out
        return
    assert isinstance(X, torch.Tensor) and callable(estimator)
    if estimator(X) is None:
        assert out.shape == (0,)
    else:
        m = min(len(X), max(3, math.floor(a["subsample"] * len(X))))
        assert out.tolist() == [float(m)] * a["n_resamples"]


@FUZZ
@given(data=st.data(), pca=st.booleans())
def test_sklearn_estimators(data, pca):
    # scikit-learn's own validate_data raises its documented errors: allowed here
    _, a = draw_args(
        data,
        {"X": (grid_points(min_n=3), BAD_POINTS), "share": (VALID_FRACTION, BAD_FRACTION)},
    )
    X, share = a["X"], a["share"]
    if pca:
        out = outcome(PCADim(variance=share).fit, X, allowed_roots=SKLEARN)
    else:
        out = outcome(TwoNN(fraction=share).fit, X, allowed_roots=SKLEARN)
    if isinstance(out, Exception):
        return
    if pca:
        assert out.dimension_ == pca_dim(as64(X), share)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert out.dimension_ == pytest.approx(
                twonn(as64(X), fraction=share).dimension, rel=1e-9
            )


# ---------------------------------------------------------------------------------------
# interp_lib.datasets: manifolds and splits

FLOAT_DTYPES = st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16])
BAD_DTYPES = st.one_of(
    st.sampled_from([torch.int64, torch.int8, torch.bool, torch.complex64, torch.uint8]), JUNK
)
BAD_REAL = st.one_of(
    st.floats(max_value=-1e-9), st.sampled_from([float("nan"), float("inf"), "0.1", None])
)


@FUZZ
@given(
    data=st.data(),
    which=st.sampled_from(["hypercube", "gaussian", "sphere", "swiss_roll", "curved"]),
)
def test_manifolds(data, which):
    bad, a = draw_args(
        data,
        {
            "n": (st.integers(1, 40), BAD_INTS),
            "d": (st.integers(1, 4), BAD_INTS),
            "D": (
                st.one_of(st.none(), st.integers(10, 12)),
                st.one_of(st.integers(-1, 1), BAD_INTS),
            ),
            "noise": (st.sampled_from([0.0, 0.1, 2]), BAD_REAL),
            "curvature": (st.floats(0, 3), BAD_REAL),
            "seed": (VALID_SEED, BAD_SEED),
            "dtype": (FLOAT_DTYPES, BAD_DTYPES),
        },
    )
    n, d, D = a["n"], a["d"], a["D"]
    kw = {"noise": a["noise"], "seed": a["seed"], "dtype": a["dtype"]}
    if which == "hypercube":
        out, cols = outcome(hypercube, n, d, **kw), d
    elif which == "gaussian":
        out, cols = outcome(gaussian, n, d, D, **kw), D or d
    elif which == "sphere":
        out, cols = outcome(sphere, n, d, D, **kw), D or (d + 1 if isinstance(d, int) else 0)
    elif which == "swiss_roll":
        out, cols = outcome(swiss_roll, n, **kw), 3
    else:
        D = 2 * D if isinstance(D, int) and bad != "D" else D
        out = outcome(curved_manifold, n, d, 20 if D is None else D, curvature=a["curvature"], **kw)
        cols = 20 if D is None else D
    if isinstance(out, Exception):
        assert bad is not None and (which != "swiss_roll" or bad not in ("d", "D", "curvature"))
        if which in ("hypercube", "swiss_roll"):
            assert bad != "curvature" and (bad != "D" or which != "hypercube")
        return
    assert (
        bad in (None, "curvature")
        or (bad == "D" and which in ("hypercube", "swiss_roll"))
        or (bad == "d" and which == "swiss_roll")
    ), f"accepted bad {bad}={a[bad]!r}"
    assert out.dtype == a["dtype"] and out.shape == (n, cols)
    assert bool(torch.isfinite(out).all())
    if a["noise"] == 0 and a["dtype"] == torch.float64:
        if which == "sphere":
            norms = torch.linalg.vector_norm(out, dim=1)
            torch.testing.assert_close(norms, torch.ones_like(norms))
        if which == "hypercube":
            assert bool(((out >= 0) & (out < 1)).all())


@FUZZ
@given(
    name=st.one_of(
        st.sampled_from(["hypercube", "gaussian", "sphere", "swiss_roll", "curved", "torus"]), JUNK
    ),
    n=st.integers(-1, 30),
    d=st.integers(-1, 4),
)
def test_make_manifold(name, n, d):
    out = outcome(make_manifold, name, n, d)
    if isinstance(out, Exception):
        return
    assert out.shape[0] == n and bool(torch.isfinite(out).all())


@FUZZ
@given(data=st.data())
def test_periodic_distances(data):
    bad, a = draw_args(
        data,
        {
            "X": (grid_points(max_n=10), BAD_POINTS),
            "box": (st.floats(0.1, 10), st.one_of(BAD_REAL, st.just(0.0))),
            "chunk_size": (st.integers(1, 4), BAD_INTS),
        },
    )
    out = outcome(periodic_distances, **a)
    if isinstance(out, Exception):
        assert bad is not None, out
        return
    box = a["box"]
    Y = np.remainder(as64(a["X"]), box)
    delta = np.abs(Y[:, None] - Y[None])
    ref = np.sqrt((np.minimum(delta, box - delta) ** 2).sum(-1))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12 * box)


@FUZZ
@given(data=st.data())
def test_stratified_split(data):
    bad, a = draw_args(
        data,
        {
            "labels": (
                st.one_of(
                    hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 3)),
                    st.lists(st.integers(0, 2), min_size=1, max_size=20),
                    hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 3)).map(
                        lambda y: torch.from_numpy(y).double()
                    ),
                ),
                st.one_of(
                    st.just([]),
                    hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(0.1, 0.9)),
                    any_array(max_side=6),
                    JUNK,
                ),
            ),
            "fractions": (
                st.sampled_from([(0.5, 0.5), (0.7, 0.15, 0.15), [0.25] * 4, (0.9, 0.1)]),
                st.one_of(st.lists(st.floats(-0.5, 1.5), max_size=4), JUNK),
            ),
            "seed": (VALID_SEED, BAD_SEED),
        },
    )
    out = outcome(stratified_split, **a)
    if isinstance(out, Exception):
        assert bad is not None, out
        return
    labels, fractions = a["labels"], a["fractions"]
    y = np.asarray(labels.numpy() if isinstance(labels, torch.Tensor) else labels)
    assert y.ndim == 1 and y.size > 0 and (y == np.round(y)).all()
    fr = [float(f) for f in fractions]
    assert len(out) == len(fr) >= 2 and abs(sum(fr) - 1) <= 1e-6
    everything = torch.sort(torch.cat(out)).values
    assert torch.equal(everything, torch.arange(y.size))  # a partition of the samples
    bounds = np.cumsum(fr)
    for c in np.unique(y):
        count = int((y == c).sum())
        cuts = [0] + [round(float(b) * count) for b in bounds[:-1]] + [count]
        for g, part in enumerate(out):
            assert int((y[part.numpy()] == c).sum()) == cuts[g + 1] - cuts[g]


@FUZZ
@given(
    n=st.integers(0, 12),
    junk=st.one_of(st.none(), JUNK),
    fractions=st.sampled_from([(0.5, 0.5), (0.7, 0.15, 0.15), (1.0,)]),
)
def test_train_val_test_split(n, junk, fractions):
    g = torch.Generator().manual_seed(n)
    ds = TensorImageDataset(torch.rand(n, 1, 2, 2, generator=g), torch.arange(n) % 3)
    out = outcome(train_val_test_split, ds if junk is None else junk, fractions)
    if isinstance(out, Exception):  # only for one of the three invalid inputs, as documented
        if junk is not None:
            assert isinstance(out, TypeError), out
            assert "dataset must be a TensorImageDataset" in str(out)
        elif n == 0:
            assert isinstance(out, ValueError) and "labels is empty" in str(out), out
        else:
            assert len(fractions) < 2, out
            assert isinstance(out, ValueError), out
            assert "fractions must hold at least two" in str(out)
        return
    assert junk is None and n > 0 and len(fractions) >= 2
    assert sum(len(part) for part in out) == n and len(out) == len(fractions)
