"""The experiments of Ansuini et al. (2019) at laptop scale, as tested building blocks.

==============================  =====================================================
single-class profiles           :func:`class_profiles` -> :class:`ClassProfiles`
                                (TwoNN, PC-ID and the Gride ID-vs-scale curve of
                                every layer, one image set per class)
paired trained-vs-untrained     :func:`paired_interval` -> :class:`PairedInterval`
the hunchback of a profile      :func:`hunchback` -> :class:`Hunchback` (peak, its
                                depth, rise over the input and trained minus
                                untrained, paired over seeds x classes)
correlation over networks       :func:`correlation_bootstrap` ->
                                :class:`CorrelationResult` (Pearson, Spearman,
                                bootstrap intervals over networks or groups)
a small residual network        :func:`residual_classifier` (ResNet-like stages)
per-image brightness centring   :class:`ImageCentering` (a first layer for MNIST*)
==============================  =====================================================
"""

from .hunchback import Hunchback, hunchback
from .nets import ImageCentering, ResidualBlock, residual_classifier
from .per_class import ClassProfiles, class_profiles
from .stats import CorrelationResult, PairedInterval, correlation_bootstrap, paired_interval

__all__ = [
    "ClassProfiles",
    "CorrelationResult",
    "Hunchback",
    "ImageCentering",
    "PairedInterval",
    "ResidualBlock",
    "class_profiles",
    "correlation_bootstrap",
    "hunchback",
    "paired_interval",
    "residual_classifier",
]
