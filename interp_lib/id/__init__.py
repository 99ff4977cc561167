"""Intrinsic-dimension estimation.

Pure estimators are functions on tensors; :class:`TwoNN` and :class:`PCADim` are thin
scikit-learn estimators around them. Everything runs on CPU or GPU (the device of the
input, or ``device=``).

=============================  ====================================================
:func:`nearest_neighbors`      exact, chunked k-NN on CPU or GPU ->
                               :class:`Neighbors`, computed once and passed as
                               ``neighbors=`` to the estimators below
:func:`ratio_table`            kept neighbour-distance ratios -> :class:`RatioTable`
                               (duplicates and ties dropped); :func:`length_scale`
:func:`twonn`                  TwoNN (least squares, MLE, Bayesian), error bars
:func:`gride`                  Gride: multi-scale MLE over neighbour ranks
:func:`block_analysis`         ID against sample size (Ansuini's block analysis)
:func:`decimation`             ID against sample size, one random subset per size
:func:`pca_spectrum`           explained-variance ratios of the principal components
:func:`pca_dim`                PC-ID: components needed for a share of the variance
:func:`pca_dim_from_spectrum`  PC-ID from explained-variance ratios already computed
:func:`participation_ratio`    (sum lambda)^2 / sum lambda^2
:func:`gaussian_surrogate`     a Gaussian with the data's covariance (curvature test)
:func:`subsample_estimates`    any estimator on random subsamples (error bars)
=============================  ====================================================

Conventions (chosen to agree with DADApy, the field's reference implementation, which
``tests/test_id_dadapy.py`` checks on its own test data): the TwoNN and Gride maximum
likelihood use ``N - 1`` in the score, so ``gride`` at ranks (1, 2) equals
``twonn(method="mle")``; length scales are the mean of the two neighbour distances of a
ratio (``scale="mean"``). The Bayesian TwoNN's prior is a parameter, vague by default
(DADApy's is ``prior=(2, 5)``).
"""

from ._ratios import RatioTable, length_scale, ratio_table
from .gride import GrideResult, gride, gride_mle, outlier_ratio_threshold
from .neighbors import Neighbors, nearest_neighbors
from .pca import participation_ratio, pca_dim, pca_dim_from_spectrum, pca_spectrum
from .resample import subsample_estimates
from .scaling import ScalingResult, block_analysis, decimation
from .surrogate import gaussian_surrogate
from .twonn import TwoNNResult, twonn, twonn_ls, twonn_mle, twonn_posterior


def __getattr__(name: str):
    # the scikit-learn estimators import scikit-learn: only when asked for
    if name in ("TwoNN", "PCADim"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'interp_lib.id' has no attribute {name!r}")


__all__ = [
    "GrideResult",
    "Neighbors",
    "PCADim",
    "RatioTable",
    "ScalingResult",
    "TwoNN",
    "TwoNNResult",
    "block_analysis",
    "decimation",
    "gaussian_surrogate",
    "gride",
    "gride_mle",
    "length_scale",
    "nearest_neighbors",
    "outlier_ratio_threshold",
    "participation_ratio",
    "pca_dim",
    "pca_dim_from_spectrum",
    "pca_spectrum",
    "ratio_table",
    "subsample_estimates",
    "twonn",
    "twonn_ls",
    "twonn_mle",
    "twonn_posterior",
]
