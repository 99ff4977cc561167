"""Zoo recipe for the bird classifiers of the chapter on the ID of layers (cached).

A module of its own so that the cache keys of :mod:`interp_lib.zoo.classifiers` (the
digits' and objects' CNNs) do not depend on this code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._validation import check_int, check_seed
from ..datasets import TensorImageDataset
from .classifiers import TrainedClassifier, cached_classifier

__all__ = ["BIRD_ARCHS", "TrainedBirdClassifier", "birds_classifier"]

_BIRD_SOURCES = (
    "interp_lib.zoo._cache",
    "interp_lib.zoo.bird_classifiers",
    "interp_lib.zoo.classifiers",
    "interp_lib.models",
    "interp_lib.networks.classifiers",
    "interp_lib.networks.trunks",
    "interp_lib.datasets._base",
    "interp_lib.datasets.birds",
)


@dataclass
class TrainedBirdClassifier(TrainedClassifier):
    """A :class:`~interp_lib.zoo.TrainedClassifier` kept at its best validation epoch.

    Attributes
    ----------
    validation : TensorImageDataset or None
        The split that chose the kept epoch; ``history.test_accuracy`` is its accuracy
        per epoch.
    best_epoch : int or None
        The kept epoch (1-based).
    """

    validation: TensorImageDataset | None = None
    best_epoch: int | None = None


BIRD_ARCHS = ("vgg8", "vgg4", "resnet")
_BIRD_WIDTHS = (16, 32, 64, 128)


def _bird_net(arch: str, n_classes: int, image_size: int, seed: int) -> nn.Module:
    from ..networks import cnn_classifier, residual_classifier

    torch.manual_seed(seed)
    if arch in ("vgg8", "vgg4"):
        return cnn_classifier(n_classes, image_size=image_size, widths=_BIRD_WIDTHS,
                              convs_per_stage=2 if arch == "vgg8" else 1, hidden=(128, 64),
                              batch_norm=True)  # fmt: skip
    return residual_classifier(n_classes, image_size=image_size, widths=_BIRD_WIDTHS)


def birds_classifier(
    arch: str = "vgg8",
    *,
    n_per_class: int = 500,
    n_val: int = 100,
    n_test: int = 100,
    n_classes: int = 5,
    image_size: int = 64,
    difficulty: float = 1.0,
    epochs: int = 12,
    lr: float = 5e-4,
    batch_size: int = 64,
    seed: int = 0,
    threads: int | None = 1,
    progress: bool = True,
    retrain: bool = False,
) -> TrainedBirdClassifier:
    """A CNN on the procedural birds, kept at its best validation epoch (cached).

    The networks of the chapter on the ID of layers. Data:
    :func:`interp_lib.datasets.birds` with ``n_classes`` species, ``image_size`` pixels and
    ``difficulty``; training ``n_per_class`` images per class (data seed 0), validation
    ``n_val`` (seed 2) and test ``n_test`` (seed 1). Network (``arch``): ``"vgg8"``, four
    stages of two convolutions with BatchNorm and fully connected layers 128-64
    (``cnn_classifier``); ``"vgg4"``, the same with one convolution per stage;
    ``"resnet"``, :func:`interp_lib.networks.residual_classifier`; widths 16-32-64-128,
    weights seeded by ``seed``. Adam, lr ``lr``, ``epochs`` epochs, batches of
    ``batch_size`` (order seeded by ``seed``); the weights of the epoch with the best
    validation accuracy are kept (``restore_best``), and the test accuracy is measured
    once on the test split.

    The untrained twin of a network is ``torch.manual_seed(seed)`` followed by the same
    constructor: the same initial weights.

    Trained under ``threads`` torch threads (default 1; ``None``: the current setting;
    the caller's setting is restored afterwards), which is part of the cache key, as in
    :func:`~interp_lib.zoo.protopnet_birds`: the thread count changes the order of
    floating-point sums, so a build under another count ends with other weights. The
    cache key holds every argument except ``progress`` (which only displays) and
    ``retrain``.

    Returns
    -------
    TrainedBirdClassifier
        With ``validation`` and ``best_epoch``; ``history.test_accuracy`` holds the
        validation accuracy of each epoch.
    """
    from ..datasets import birds
    from ..models import train_classifier

    seed = check_seed(seed)
    if arch not in BIRD_ARCHS:
        raise ValueError(f"arch must be one of {', '.join(BIRD_ARCHS)}; got {arch!r}.")
    data = {"image_size": check_int(image_size, "image_size", minimum=16),
            "classes": check_int(n_classes, "n_classes", minimum=2),
            "difficulty": float(difficulty)}  # fmt: skip
    train = birds(check_int(n_per_class, "n_per_class", minimum=2), seed=0, **data)
    val = birds(check_int(n_val, "n_val", minimum=1), seed=2, **data)
    test = birds(check_int(n_test, "n_test", minimum=1), seed=1, **data)
    params = {
        "arch": arch,
        "n_per_class": n_per_class,
        "n_val": n_val,
        "n_test": n_test,
        **data,
        "epochs": check_int(epochs, "epochs"),
        "lr": float(lr),
        "batch_size": check_int(batch_size, "batch_size"),
        "seed": int(seed),
        "threads": torch.get_num_threads() if threads is None else check_int(threads, "threads"),
    }

    def fit(net: nn.Module):
        return train_classifier(net, (train.images, train.labels), test=(val.images, val.labels),
                                epochs=params["epochs"], lr=params["lr"],
                                batch_size=params["batch_size"], seed=seed, restore_best=True,
                                device="cpu", progress=progress)  # fmt: skip

    def best_epoch(hist) -> dict[str, Any]:
        best = max(range(len(hist.test_accuracy)), key=hist.test_accuracy.__getitem__)
        return {"best_epoch": best + 1}

    return cached_classifier(
        "birds_classifier", params, lambda: _bird_net(arch, n_classes, image_size, seed), fit,
        train, test, sources=_BIRD_SOURCES, retrain=retrain, result=TrainedBirdClassifier,
        payload_extras=best_epoch,
        result_extras=lambda payload: {"validation": val, "best_epoch": int(payload["best_epoch"])},
    )  # fmt: skip
