"""Options that used to be ignored silently now raise, and the refactored helpers."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from interp_lib.datasets import gaussian, sphere
from interp_lib.id import (
    PCADim,
    gride,
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


@pytest.mark.parametrize("fn", [twonn, gride])
@pytest.mark.parametrize("metric", ["cosine", "manhattan", "Euclidean", None])
def test_unsupported_metric_raises_with_the_recipe(fn, metric):
    with pytest.raises(ValueError, match=r"cdist\(X, X, metric='cosine'\)"):
        fn(gaussian(50, 2, 4), metric=metric)


def test_cosine_via_a_precomputed_matrix():
    X = sphere(400, 3, 6, seed=0, dtype=torch.float64).numpy() * np.linspace(1, 3, 400)[:, None]
    D = cdist(X, X, metric="cosine")
    # cosine distance = |u - v|^2 / 2 between unit vectors: its square root is Euclidean on
    # the normalised rows, whatever their norms (and D itself halves every log-ratio)
    unit = twonn(X / np.linalg.norm(X, axis=1, keepdims=True)).dimension
    assert twonn(np.sqrt(D), metric="precomputed").dimension == pytest.approx(unit, rel=1e-6)
    assert twonn(D, metric="precomputed").dimension == pytest.approx(unit / 2, rel=1e-6)


def test_layer_ids_passes_the_metric_check_through():
    from interp_lib.profile import layer_ids

    net = torch.nn.Sequential(torch.nn.Linear(5, 8))
    with pytest.raises(ValueError, match="precomputed"):
        layer_ids(net, torch.randn(60, 5), estimator_kwargs={"metric": "cosine"}, progress=False)


@pytest.mark.parametrize("fn", [twonn, gride])
def test_precomputed_matrix_must_hold_distances(fn):
    X = gaussian(80, 3, seed=0, dtype=torch.float64)
    D = torch.cdist(X, X)
    asym = D.clone()
    asym[0, 1] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        fn(asym, metric="precomputed")
    with pytest.raises(ValueError, match="zero diagonal"):
        fn(D + 1.0, metric="precomputed")
    with pytest.raises(ValueError, match="square"):
        fn(D[:, :50], metric="precomputed")
    with pytest.raises(ValueError, match="negative"):
        fn(D - 0.5, metric="precomputed")
    # symmetric up to float32 round-off is accepted
    fn(torch.cdist(X.float(), X.float()), metric="precomputed")


@pytest.mark.parametrize("chunk_size", [0, -5])
def test_bad_chunk_size(chunk_size):
    for fn in (twonn, gride):
        with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
            fn(gaussian(50, 2), chunk_size=chunk_size)


def test_one_return_convention_for_the_pure_estimators():
    mu = torch.rand(300, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mu = mu.pow(-1 / 3)
    for out in (twonn_ls(mu), twonn_mle(mu), twonn_posterior(mu)):
        assert isinstance(out, tuple) and len(out) == 2
        assert all(isinstance(v, float) for v in out)
    with pytest.raises(ValueError, match=">= 1"):
        twonn_mle(torch.tensor([0.5, 2.0]))
    with pytest.raises(TypeError, match="real ratios"):
        twonn_ls(["a", "b", "c"])


def test_subsample_estimates_is_twonns_loop():
    X = sphere(150, 3, seed=0)
    res = twonn(X, n_resamples=3, seed=4)
    again = subsample_estimates(
        X, lambda S: twonn(S).dimension, n_resamples=3, subsample=0.9, seed=4
    )
    torch.testing.assert_close(res.resamples, again, rtol=0, atol=0)
    skipped = subsample_estimates(X, lambda S: None, n_resamples=3)
    assert skipped.shape == (0,) and skipped.dtype == torch.float64
    with pytest.raises(ValueError, match="n_resamples"):
        subsample_estimates(X, len, n_resamples=-1)


def test_pcadim_runs_one_svd_and_agrees_with_the_functions(monkeypatch):
    X = gaussian(300, 5, 20, noise=0.05, seed=0, dtype=torch.float64).numpy()
    calls = []
    real = torch.linalg.svdvals
    monkeypatch.setattr(torch.linalg, "svdvals", lambda A: calls.append(1) or real(A))
    est = PCADim(variance=0.8).fit(X)
    assert len(calls) == 1
    monkeypatch.undo()
    assert est.dimension_ == pca_dim(X, 0.8)
    np.testing.assert_array_equal(est.explained_variance_ratio_, pca_spectrum(X, standardize=True))
    assert est.participation_ratio_ == participation_ratio(X, standardize=True)


def test_pca_dim_from_spectrum():
    r = torch.tensor([0.5, 0.25, 0.125, 0.125], dtype=torch.float64)
    assert [pca_dim_from_spectrum(r, v) for v in (0.4, 0.5, 0.7, 0.8, 1.0)] == [1, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="descending"):
        pca_dim_from_spectrum(torch.tensor([0.25, 0.75]))
    with pytest.raises(ValueError, match="summing to 1"):
        pca_dim_from_spectrum(torch.tensor([0.5, 0.25]))


_UNAVAILABLE = ["meta", "nonsense", "cuda:99"]
if not torch.cuda.is_available():
    _UNAVAILABLE.append("cuda")
if not torch.backends.mps.is_available():
    _UNAVAILABLE.append("mps")


@pytest.mark.parametrize("device", _UNAVAILABLE)
@pytest.mark.parametrize("fn", ["twonn", "gride", "nearest_neighbors", "block_analysis"])
def test_a_device_this_machine_lacks_is_one_clear_error(fn, device):
    """Issue 21, item 13: torch's RuntimeError / AssertionError / NotImplementedError
    before (or, for "meta", a result computed on no data)."""
    import interp_lib.id as ID

    X = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"valid devices here: \['cpu'"):
        getattr(ID, fn)(X, device=device)
    with pytest.raises(TypeError, match="valid devices"):
        getattr(ID, fn)(X, device=3.5)
    assert getattr(ID, fn)(X, device=torch.device("cpu")) is not None
