"""Intrinsic-dimension estimation.

Pure estimators are functions on tensors; :class:`TwoNN` and :class:`PCADim` are thin
scikit-learn estimators around them.

=============================  ====================================================
:func:`nearest_neighbors`      exact, chunked k-NN on CPU or GPU
:func:`twonn`                  TwoNN (least squares, MLE, Bayesian), error bars
:func:`gride`                  Gride: multi-scale MLE over neighbour ranks
:func:`block_analysis`         ID against sample size (Ansuini's block analysis)
:func:`decimation`             ID against sample size, one random subset per size
:func:`gride_scaling`          ID against neighbourhood scale (ranks 1, 2, 4, ...)
:func:`pca_spectrum`           explained-variance ratios of the principal components
:func:`pca_dim`                PC-ID: components needed for a share of the variance
:func:`participation_ratio`    (sum lambda)^2 / sum lambda^2
=============================  ====================================================
"""

from .neighbors import Neighbors, nearest_neighbors
from .twonn import TwoNNResult, twonn, twonn_ls, twonn_mle, twonn_posterior

__all__ = [
    "Neighbors",
    "TwoNNResult",
    "nearest_neighbors",
    "twonn",
    "twonn_ls",
    "twonn_mle",
    "twonn_posterior",
]
