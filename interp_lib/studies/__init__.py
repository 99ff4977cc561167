"""The experiments of Ansuini et al. (2019) at laptop scale, as tested building blocks.

==============================  =====================================================
single-class profiles           :func:`class_profiles` -> :class:`ClassProfiles`
                                (TwoNN, PC-ID and the Gride ID-vs-scale curve of
                                every layer, one image set per class: the paper's
                                protocol, also behind ``python -m
                                interp_lib.profile``); :func:`class_indices`
paired trained-vs-untrained     :func:`paired_interval` -> :class:`PairedInterval`
the hunchback of a profile      :func:`hunchback` -> :class:`Hunchback` (peak, its
                                depth, rise over the input and trained minus
                                untrained, paired over seeds x classes)
correlation over networks       :func:`correlation_bootstrap` ->
                                :class:`CorrelationResult` (Pearson, Spearman,
                                bootstrap intervals over networks or groups)
last-hidden ID vs test error    :func:`generalisation_study` ->
                                :class:`GeneralisationStudy` over the architectures
                                ``ARCHITECTURES`` (:class:`Architecture`), each
                                trained by :func:`train_to_criterion`; IDs from
                                :func:`last_hidden_ids`; the task :func:`birds_task`
shuffled labels, MNIST*         :func:`shuffled_label_study`, :func:`mnist_star_study`
a prototype network's geometry  :func:`geometry_study` -> :class:`GeometryStudy`
                                (ProtoPNet vs same-trunk CNN, paired by layer),
                                :func:`prototype_space_study`, :func:`stage_study`;
                                :class:`ProtoPNetLayers` names the distance map and
                                the similarity vector for the profiler
==============================  =====================================================
"""

from .controls import MNIST_NET, mnist_star_study, profile_table, shuffled_label_study
from .generalisation import (
    ARCHITECTURES,
    BIRDS_TASK,
    Architecture,
    FitRecord,
    GeneralisationStudy,
    birds_task,
    compare_to_summary,
    generalisation_study,
    last_hidden_ids,
    load_generalisation_summary,
    train_to_criterion,
)
from .hunchback import Hunchback, hunchback
from .per_class import ClassProfiles, class_indices, class_profiles
from .protopnet_geometry import (
    GeometryStudy,
    ProtoPNetLayers,
    PrototypeSpaceStudy,
    StageStudy,
    cnn_layers,
    geometry_study,
    protopnet_layers,
    prototype_space_study,
    stage_study,
)
from .stats import CorrelationResult, PairedInterval, correlation_bootstrap, paired_interval

__all__ = [
    "ARCHITECTURES",
    "BIRDS_TASK",
    "MNIST_NET",
    "Architecture",
    "ClassProfiles",
    "CorrelationResult",
    "FitRecord",
    "GeneralisationStudy",
    "GeometryStudy",
    "Hunchback",
    "PairedInterval",
    "ProtoPNetLayers",
    "PrototypeSpaceStudy",
    "StageStudy",
    "birds_task",
    "class_indices",
    "class_profiles",
    "cnn_layers",
    "compare_to_summary",
    "correlation_bootstrap",
    "generalisation_study",
    "geometry_study",
    "hunchback",
    "last_hidden_ids",
    "load_generalisation_summary",
    "mnist_star_study",
    "paired_interval",
    "profile_table",
    "protopnet_layers",
    "prototype_space_study",
    "shuffled_label_study",
    "stage_study",
    "train_to_criterion",
]
