"""Trained models for the offline data sets, trained once and cached on disk.

Chapters of the book and readers reuse the same few trained networks; training them in
every notebook costs minutes. Each function of the zoo trains its model with a fixed,
documented recipe on first use, saves it under :func:`cache_dir` and loads it in a second
or two afterwards.

==============================  =====================================================
:func:`protopnet_birds`         ProtoPNet + same-trunk CNN on the procedural birds,
                                with data splits, push result, histories, accuracies;
                                ``last_layer`` and ``prototype_init`` pick a variant
:class:`BirdsRecipe`            its arguments, frozen and checked: the cache key
:func:`digits_cnn`              small CNN on scikit-learn's handwritten digits
:func:`objects_cnn`             small CNN on the rotating objects
:func:`birds_classifier`        the ID chapters' bird CNNs (VGG- and ResNet-like), kept
                                at their best validation epoch
:func:`protopnet_birds_stages`  a small birds ProtoPNet with its state after every
                                training step, and its untrained twin
:func:`cache_dir`               where the entries live (``$INTERP_LIB_CACHE``)
==============================  =====================================================

The cache
---------
* **Key**: the recipe's name and arguments, and a SHA-256 of the source files of the
  library code that trains it; editing that code (or upgrading the library) retrains on
  the next call, and different arguments are different entries. ``retrain=True`` forces
  training. A recipe may keep a stage as an entry of its own: the birds' data and CNN
  (``protopnet_birds_cnn``) are keyed by the arguments they depend on, so the ProtoPNet
  variants of one seed share them.
* **Location**: ``$INTERP_LIB_CACHE/zoo``, else the user's cache directory
  (``~/.cache/interp_lib/zoo`` on Linux, ``$XDG_CACHE_HOME`` respected). Delete the
  folder to free the space (a birds entry is about 40 MB).
* **Safety**: entries are written atomically (a temporary file renamed into place) and
  hold only tensors and plain containers, read with ``torch.load(weights_only=True)``;
  an entry that cannot be read warns (:class:`CacheWarning`) and is retrained, never
  unpickled.
* **Determinism**: each recipe seeds everything it draws; on the same machine and
  library version a retrain gives the same weights.

Examples
--------
>>> from interp_lib import zoo
>>> birds = zoo.protopnet_birds()          # doctest: +SKIP
>>> birds.protopnet_test_accuracy, birds.cnn_test_accuracy  # doctest: +SKIP
"""

from ._cache import CacheWarning, cache_dir
from .bird_classifiers import TrainedBirdClassifier, birds_classifier
from .birds import BirdsModels, BirdsRecipe, protopnet_birds
from .classifiers import TrainedClassifier, digits_cnn, objects_cnn
from .protopnet_stages import STAGES_RECIPE, BirdsStages, protopnet_birds_stages

__all__ = [
    "STAGES_RECIPE",
    "BirdsModels",
    "BirdsRecipe",
    "BirdsStages",
    "CacheWarning",
    "TrainedBirdClassifier",
    "TrainedClassifier",
    "birds_classifier",
    "cache_dir",
    "digits_cnn",
    "objects_cnn",
    "protopnet_birds",
    "protopnet_birds_stages",
]
