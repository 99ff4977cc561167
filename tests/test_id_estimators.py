"""The scikit-learn shells follow the estimator contract."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from interp_lib.datasets import sphere
from interp_lib.id import PCADim, TwoNN, pca_dim, twonn


@parametrize_with_checks([TwoNN(), PCADim()])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_twonn_estimator_matches_the_function():
    X = sphere(1000, 3, seed=0).numpy()
    est = TwoNN(method="mle")
    assert est.fit(X) is est
    assert est.dimension_ == twonn(X, method="mle").dimension
    assert est.n_features_in_ == 4 and est.n_used_ == 1000


def test_pcadim_estimator_matches_the_function():
    X = np.random.default_rng(0).normal(size=(100, 6)) @ np.random.default_rng(1).normal(
        size=(6, 20)
    )
    est = PCADim(variance=0.95).fit(X)
    assert est.dimension_ == pca_dim(X, 0.95)
    assert est.explained_variance_ratio_.sum() == pytest.approx(1.0)


def test_errors_surface_at_fit():
    with pytest.raises(ValueError):
        TwoNN(fraction=2.0).fit(np.random.default_rng(0).random((20, 3)))
    with pytest.raises(ValueError):
        TwoNN().fit(np.full((10, 3), np.nan))
