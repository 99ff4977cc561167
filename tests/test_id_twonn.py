"""TwoNN: analytic truths, the reference table, peers, invariances, duplicates, bad input."""

import math
import warnings

import numpy as np
import pytest
import skdim
import torch

from interp_lib.datasets import gaussian, hypercube, periodic_distances, sphere
from interp_lib.id import twonn, twonn_ls, twonn_mle, twonn_posterior
from interp_lib.id.twonn import _fit_points


def pareto(n, d, seed=0):
    """Ratios drawn exactly from the TwoNN model F(mu) = 1 - mu^-d."""
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return u.pow(-1.0 / d)


@pytest.mark.parametrize("d", [1.0, 4.0, 17.0])
def test_estimators_recover_d_from_the_pareto_law(d):
    mu = pareto(20000, d)
    se = d / math.sqrt(20000)
    assert abs(twonn_mle(mu)[0] - d) < 4 * se
    assert abs(twonn_posterior(mu)[0] - d) < 4 * se
    assert abs(twonn_ls(mu, 0.9)[0] - d) < 10 * se


def test_mle_standard_error_matches_the_spread_of_replicates():
    d, n = 6.0, 60
    est = torch.tensor([twonn_mle(pareto(n, d, seed=s))[0] for s in range(400)])
    # unbiased: (N - 1) / sum(log mu); std exactly d / sqrt(N - 2) under the model
    assert abs(float(est.mean()) - d) < 3 * d / math.sqrt(n - 2) / math.sqrt(400)
    assert float(est.std()) == pytest.approx(d / math.sqrt(n - 2), rel=0.15)


def test_ls_fit_is_the_regression_through_the_origin():
    mu = pareto(101, 3.0)
    x, y = _fit_points(mu, 0.9)
    assert len(x) == math.floor(0.9 * 101)
    # y_i = -log(1 - i / N) for i = 1..n_fit, x sorted
    torch.testing.assert_close(y, -torch.log1p(-torch.arange(1, 91, dtype=torch.float64) / 101))
    assert bool((x[1:] >= x[:-1]).all())
    slope = np.linalg.lstsq(x.numpy()[:, None], y.numpy(), rcond=None)[0][0]
    d, se = twonn_ls(mu, 0.9)
    assert d == pytest.approx(slope, rel=1e-12)
    assert se == pytest.approx(d / math.sqrt(101 - 2), rel=1e-12)  # same convention as the MLE
    assert math.isfinite(twonn_ls(mu, 1.0)[0])  # the F = 1 point is never used


def test_equals_scikit_dimension_ls():
    for d, D in [(3, 3), (5, 10), (8, 40)]:
        X = gaussian(1500, d, D, seed=d, dtype=torch.float64).numpy()
        theirs = skdim.id.TwoNN().fit(X).dimension_
        assert twonn(X).dimension == pytest.approx(theirs, rel=1e-6)


# REFERENCE.md section 1, LS with fraction 0.9, mean of 5 runs, N = 1000.
REFERENCE_N1000 = {
    ("cube", 2): 2.04, ("cube", 10): 8.59, ("cube", 30): 20.2,
    ("torus", 5): 4.99, ("torus", 20): 19.1,
    ("gaussian", 5): 5.23, ("gaussian", 20): 16.1, ("gaussian", 50): 31.2,
    ("sphere", 10): 9.52, ("sphere", 30): 22.2,
}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "d"),
    # the torus cases compute five 1000 x 1000 periodic distance matrices: seconds
    [
        pytest.param(*case, marks=pytest.mark.slow if case[0] == "torus" else ())
        for case in REFERENCE_N1000
    ],
)
def test_reference_table(kind, d):
    """Calibrated: the means measured here lie within 4 % of the table (2.1 % worst);
    the tolerance of 7 % still catches a wrong fraction, F_emp offset or kept ties."""
    vals = []
    for s in range(5):
        if kind == "cube":
            vals.append(twonn(hypercube(1000, d, seed=s)).dimension)
        elif kind == "torus":
            D = periodic_distances(hypercube(1000, d, seed=s, dtype=torch.float64))
            vals.append(twonn(D, metric="precomputed").dimension)
        elif kind == "gaussian":
            vals.append(twonn(gaussian(1000, d, seed=s)).dimension)
        else:
            vals.append(twonn(sphere(1000, d, seed=s)).dimension)
    assert sum(vals) / 5 == pytest.approx(REFERENCE_N1000[(kind, d)], rel=0.07)


def test_invariances():
    gen = torch.Generator().manual_seed(1)
    X = gaussian(800, 6, 12, seed=3, dtype=torch.float64)
    ref = twonn(X).dimension
    Q, _ = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))
    perm = torch.randperm(800, generator=gen)
    for Y in (
        X @ Q,
        X + 1e3 * torch.randn(12, generator=gen, dtype=torch.float64),
        7.5 * X,
        X[perm],
    ):
        assert twonn(Y).dimension == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("share", [0.02, 0.08])
def test_duplicates_are_dropped_with_a_warning_and_estimate_stays_sensible(share):
    X = gaussian(2000, 10, seed=0, dtype=torch.float64)
    clean = twonn(X).dimension
    n_dup = int(share * 2000)
    Xd = torch.cat([X, X[:n_dup]])
    with pytest.warns(UserWarning, match=rf"{2 * n_dup} duplicates"):
        res = twonn(Xd)
    assert math.isfinite(res.dimension)
    assert res.n_used + res.n_dropped == 2000 + n_dup
    assert res.dimension == pytest.approx(clean, rel=0.05)
    for method in ("mle", "bayes"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert twonn(Xd, method=method).dimension == pytest.approx(clean, rel=0.1)


def test_resampled_error_bars_are_seeded():
    X = sphere(600, 4, seed=0)
    a = twonn(X, n_resamples=8, seed=1)
    b = twonn(X, n_resamples=8, seed=1)
    c = twonn(X, n_resamples=8, seed=2)
    assert a.error_kind == "resample" and a.resamples.shape == (8,)
    assert a.error == b.error and a.error != c.error
    assert 0 < a.error < 1
    assert twonn(X).error_kind == "analytic"


def test_result_object():
    res = twonn(gaussian(500, 3, seed=0))
    assert float(res) == res.dimension
    assert res.n_used == 500 and res.n_dropped == 0 and res.mu.shape == (500,)
    x, y = res.fit_points()
    assert len(x) == len(y) == 450


@pytest.mark.parametrize(
    ("X", "exc", "match"),
    [
        (np.array([[0.0, np.nan], [1, 2], [3, 4], [5, 6]]), ValueError, "NaN or infinity"),
        (np.array([[0.0, np.inf], [1, 2], [3, 4], [5, 6]]), ValueError, "NaN or infinity"),
        (np.zeros((2, 3)), ValueError, "at least 3 samples"),
        (np.ones((10, 3)), ValueError, "all points identical"),
        (np.arange(10.0), ValueError, "2-D"),
        (np.zeros((4, 3, 2)), ValueError, r"X.reshape\(len\(X\), -1\)"),
        (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), TypeError, "real numbers"),
        (np.ones((5, 2), dtype=complex), TypeError, "real numbers"),
        ([[1.0, 2.0], [3.0]], ValueError, "2-D"),
    ],
)
def test_bad_input(X, exc, match):
    with pytest.raises(exc, match=match):
        twonn(X)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        twonn(gaussian(50, 2), fraction=fraction)


def test_bad_method():
    with pytest.raises(ValueError, match="'ls', 'mle', 'bayes'"):
        twonn(gaussian(50, 2), method="gride")
