"""scikit-learn estimators around the pure functions of :mod:`interp_lib.id`.

They follow the estimator contract: ``__init__`` only stores its arguments, ``fit``
validates and returns ``self``, learned state ends with ``_``. There is no
``transform``: an intrinsic dimension is a property of the whole data set, read from
``dimension_``.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import validate_data

from .._validation import as_points, check_fraction
from .pca import (
    covariance_eigenvalues,
    explained_ratios,
    participation_from_eigenvalues,
    pca_dim_from_spectrum,
)
from .twonn import twonn

__all__ = ["PCADim", "TwoNN"]


class TwoNN(BaseEstimator):
    """TwoNN intrinsic-dimension estimator (Facco et al. 2017), scikit-learn style.

    Parameters
    ----------
    fraction : float in (0, 1], default 0.9
        Share of the smallest ratios used by the least-squares fit.
    method : {"ls", "mle", "bayes"}, default "ls"
    n_resamples : int, default 0
        Subsamples for the error bar (0: analytic error).
    prior : (float, float), default (1e-3, 1e-3)
        Gamma (shape, rate) prior of ``method="bayes"``; ``(2, 5)`` is DADApy's.
    subsample : float in (0, 1], default 0.9
    random_state : int or None, default 0
        Seed of the subsampling (the ``seed`` of :func:`interp_lib.id.twonn`). Named
        ``random_state`` because scikit-learn's estimator API requires that name.
    device : str or None, default None
        Run the neighbour search there (e.g. ``"cuda"``).

    Attributes
    ----------
    dimension_ : float
    error_ : float
    n_used_ : int
    n_dropped_ : int
    result_ : interp_lib.id.TwoNNResult
    n_features_in_ : int

    Examples
    --------
    >>> from interp_lib.datasets import sphere
    >>> round(TwoNN().fit(sphere(2000, d=2, seed=0)).dimension_)
    2
    """

    def __init__(
        self,
        fraction: float = 0.9,
        method: str = "ls",
        n_resamples: int = 0,
        subsample: float = 0.9,
        random_state: int | None = 0,
        device: str | None = None,
        prior: tuple[float, float] = (1e-3, 1e-3),
    ):
        self.fraction = fraction
        self.method = method
        self.prior = prior
        self.n_resamples = n_resamples
        self.subsample = subsample
        self.random_state = random_state
        self.device = device

    def fit(self, X, y=None) -> TwoNN:
        """Estimate the intrinsic dimension of ``X`` (shape (n_samples, n_features))."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            res = twonn(
                X,
                fraction=self.fraction,
                method=self.method,
                prior=self.prior,
                n_resamples=self.n_resamples,
                subsample=self.subsample,
                seed=self.random_state,
                device=self.device,
            )
        if res.n_dropped:
            warnings.warn(
                f"TwoNN dropped {res.n_dropped} of {X.shape[0]} points (duplicates or ties).",
                UserWarning,
                stacklevel=2,
            )
        self.result_ = res
        self.dimension_ = res.dimension
        self.error_ = res.error
        self.n_used_ = res.n_used
        self.n_dropped_ = res.n_dropped
        return self


class PCADim(BaseEstimator):
    """PC-ID: principal components needed to explain a share of the variance.

    Parameters
    ----------
    variance : float in (0, 1], default 0.9
    standardize : bool, default True
        z-score the features first (Ansuini et al.).

    Attributes
    ----------
    dimension_ : int
        The count of components (1-based; Ansuini et al.'s code reports one less).
    explained_variance_ratio_ : numpy.ndarray, shape (min(n_samples, n_features),)
    participation_ratio_ : float
    n_features_in_ : int
    """

    def __init__(self, variance: float = 0.9, standardize: bool = True):
        self.variance = variance
        self.standardize = standardize

    def fit(self, X, y=None) -> PCADim:
        """Compute the spectrum of ``X`` (shape (n_samples, n_features))."""
        variance = check_fraction(self.variance, "variance")
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        ev = covariance_eigenvalues(as_points(X, min_samples=2), self.standardize)  # one SVD
        ratios = explained_ratios(ev)
        self.dimension_ = pca_dim_from_spectrum(ratios, variance)
        self.explained_variance_ratio_ = ratios.numpy()
        self.participation_ratio_ = participation_from_eigenvalues(ev)
        return self
