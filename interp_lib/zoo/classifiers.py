"""Zoo recipes for the small CNNs of the intrinsic-dimension chapters.

Both train :func:`interp_lib.networks.cnn_classifier` with
:func:`interp_lib.models.train_classifier` (Adam, cross-entropy, constant learning rate),
exactly as the chapters do inline: ``torch.manual_seed(seed)`` before building the
network, the batch order seeded by ``seed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._plumbing import torch_threads
from .._validation import check_int, check_seed
from ..datasets import TensorImageDataset
from ._cache import cached

__all__ = ["TrainedClassifier", "digits_cnn", "objects_cnn"]

_SOURCES = (
    "interp_lib.zoo._cache",
    "interp_lib.zoo.classifiers",
    "interp_lib.models",
    "interp_lib.networks.classifiers",
    "interp_lib.networks.trunks",
    "interp_lib.datasets._base",
    "interp_lib.datasets.digits",
    "interp_lib.datasets.objects",
)


@dataclass
class TrainedClassifier:
    """A trained CNN from the zoo, with its data and its training log.

    Attributes
    ----------
    model : nn.Sequential
        The trained :func:`~interp_lib.networks.cnn_classifier`, in eval mode, on CPU.
    train, test : TensorImageDataset
        The splits it was trained and tested on (``test`` never trained on).
    history : interp_lib.models.TrainHistory
        Loss and training / test accuracy per epoch.
    test_accuracy : float
        Accuracy on ``test`` after training.
    recipe : dict
        The recipe's arguments (the cache key, with the library source hash).
    train_seconds : float
        Wall time of the training when the entry was made (on the machine that made it).
    from_cache : bool
        Whether this call read the model from the disk cache.
    """

    model: nn.Module
    train: TensorImageDataset
    test: TensorImageDataset
    history: Any
    test_accuracy: float
    recipe: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = float("nan")
    from_cache: bool = False


def _history_state(h) -> dict[str, list[float]]:
    return {
        "loss": list(h.loss),
        "train_accuracy": list(h.train_accuracy),
        "test_accuracy": list(h.test_accuracy),
    }


def cached_classifier(
    name: str,
    params: dict[str, Any],
    make: Callable[[], nn.Module],
    fit: Callable[[nn.Module], Any],
    train: TensorImageDataset,
    test: TensorImageDataset,
    *,
    sources: Sequence[str],
    retrain: bool,
    result: Callable[..., TrainedClassifier] = TrainedClassifier,
    payload_extras: Callable[[Any], dict[str, Any]] | None = None,
    result_extras: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> TrainedClassifier:
    """A classifier zoo entry (cached): the build and load shared by every recipe that
    trains one network with :func:`~interp_lib.models.train_classifier`.

    On a miss, under ``params["threads"]`` torch threads when that key is present (the
    caller's setting restored afterwards): ``net = make()``, ``history = fit(net)``
    (timed), then the accuracy on ``test``; the payload is ``state_dict``, ``history``,
    ``test_accuracy``, ``train_seconds`` and ``payload_extras(history)``. Loading builds
    ``make()``, loads the state dict (eval mode) and returns ``result(...)`` with the
    :class:`TrainedClassifier` fields and ``result_extras(payload)``; a payload it cannot
    read is warned about and retrained (the ``load`` hook of ``_cache.cached``).

    Parameters
    ----------
    name : str
        The recipe's name (the entry's file name starts with it).
    params : dict
        The recipe's arguments: the cache key.
    make : callable () -> nn.Module
        The untrained network, seeded (the same weights at every call).
    fit : callable (nn.Module) -> TrainHistory
        Trains the network in place.
    train, test : TensorImageDataset
        The splits returned with the network; ``test`` is also the one measured.
    sources : sequence of str
        The modules whose code is part of the key.
    retrain : bool
        Ignore and overwrite the cached entry.
    result : callable
        :class:`TrainedClassifier` or a subclass.
    payload_extras, result_extras : callable, optional
        What a recipe stores beyond the common payload, and what it reads back from it
        (the subclass's fields).

    Returns
    -------
    TrainedClassifier
        ``result(...)``.
    """
    from ..models import TrainHistory, accuracy

    def build() -> dict[str, Any]:
        with torch_threads(params.get("threads")):
            net = make()
            t0 = time.perf_counter()
            hist = fit(net)
            seconds = time.perf_counter() - t0
            test_accuracy = accuracy(net, (test.images, test.labels))
        return {
            "state_dict": net.state_dict(),
            "history": _history_state(hist),
            "test_accuracy": test_accuracy,
            "train_seconds": seconds,
            **({} if payload_extras is None else payload_extras(hist)),
        }

    def load(payload: dict[str, Any], hit: bool) -> TrainedClassifier:
        # a cached payload this cannot read (a missing key, wrong shapes, unknown history
        # fields, a non-numeric accuracy) is warned about and retrained by `cached`
        net = make()
        net.load_state_dict(payload["state_dict"])
        net.eval()
        return result(
            model=net,
            train=train,
            test=test,
            history=TrainHistory(**payload["history"]),
            test_accuracy=float(payload["test_accuracy"]),
            recipe=dict(params),
            train_seconds=float(payload["train_seconds"]),
            from_cache=hit,
            **({} if result_extras is None else result_extras(payload)),
        )

    return cached(name, params, build, sources=sources, retrain=retrain, load=load)[0]


def _train_cnn(
    name: str,
    params: dict[str, Any],
    arch: dict[str, Any],
    train: TensorImageDataset,
    test: TensorImageDataset,
    *,
    retrain: bool,
    progress: bool,
) -> TrainedClassifier:
    from ..models import train_classifier
    from ..networks import cnn_classifier

    n_classes = int(train.n_classes)

    def make() -> nn.Module:
        torch.manual_seed(params["seed"])
        return cnn_classifier(n_classes, **arch)

    def fit(net: nn.Module):
        return train_classifier(
            net,
            (train.images, train.labels),
            test=(test.images, test.labels),
            epochs=params["epochs"],
            lr=params["lr"],
            batch_size=params["batch_size"],
            shuffle_labels=params.get("shuffle_labels", False),
            seed=params["seed"],
            device="cpu",
            progress=progress,
        )

    return cached_classifier(name, params, make, fit, train, test, sources=_SOURCES,
                             retrain=retrain)  # fmt: skip


def digits_cnn(
    widths: Sequence[int] = (16, 32),
    hidden: Sequence[int] = (128, 64),
    *,
    convs_per_stage: int = 1,
    n_train: int | None = None,
    epochs: int = 12,
    lr: float = 2e-3,
    batch_size: int = 64,
    shuffle_labels: bool = False,
    image_size: int = 16,
    seed: int = 0,
    progress: bool = True,
    retrain: bool = False,
) -> TrainedClassifier:
    """A CNN trained on scikit-learn's handwritten digits (cached; trains in seconds).

    Data: :func:`interp_lib.datasets.digits` upsampled to ``image_size`` (16) pixels and
    normalised, its seeded stratified 75 / 25 split (1347 training, 450 test digits);
    the first ``n_train`` training digits when given. Network:
    ``cnn_classifier(10, in_channels=1, image_size=image_size, widths=widths, hidden=hidden,
    convs_per_stage=convs_per_stage)``; Adam, lr ``lr``, ``epochs`` epochs, batches of
    ``batch_size``. The defaults are the "shallow" network of the chapter on the ID of
    layers; ``widths=(16, 32, 64), convs_per_stage=2`` is its "deep" one; the
    generalisation chapter's family uses ``widths=(4, 8) / (8, 16) / (16, 32)``,
    ``hidden=(32,) / (64,) / (128,)``.

    Parameters
    ----------
    widths, hidden, convs_per_stage : architecture (see ``cnn_classifier``)
    n_train : int, optional
        Train on the first ``n_train`` training digits only (default: all 1347).
    epochs, lr, batch_size : training settings
    shuffle_labels : bool
        Train on a fixed random permutation of the labels (memorisation control).
    image_size : int
        Image side (the 8x8 digits are upsampled).
    seed : int
        Seeds the weights, the batch order (and the label permutation).
    progress : bool
        Show a progress bar while training (only on a cache miss).
    retrain : bool
        Ignore and overwrite the cached entry.

    Returns
    -------
    TrainedClassifier
    """
    from ..datasets import digits

    seed = check_seed(seed)
    image_size = check_int(image_size, "image_size", minimum=8)
    train = digits("train", image_size=image_size, normalize=True)
    test = digits("test", image_size=image_size, normalize=True)
    if n_train is not None:
        n_train = check_int(n_train, "n_train", minimum=10)
        train = train.subset(torch.arange(min(n_train, len(train))))
    arch = {
        "in_channels": 1,
        "image_size": image_size,
        "widths": [int(w) for w in widths],
        "hidden": [int(h) for h in hidden],
        "convs_per_stage": check_int(convs_per_stage, "convs_per_stage"),
    }
    params = {
        **arch,
        "n_train": n_train,
        "epochs": check_int(epochs, "epochs"),
        "lr": float(lr),
        "batch_size": check_int(batch_size, "batch_size"),
        "shuffle_labels": bool(shuffle_labels),
        "seed": int(seed),
    }
    return _train_cnn("digits_cnn", params, arch, train, test, retrain=retrain, progress=progress)


def objects_cnn(
    *,
    n_objects: int = 20,
    n_poses: int = 72,
    image_size: int = 32,
    widths: Sequence[int] = (16, 32, 64),
    hidden: Sequence[int] = (128, 64),
    train_fraction: float = 0.8,
    epochs: int = 8,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    retrain: bool = False,
) -> TrainedClassifier:
    """A CNN that tells rotating objects apart (the first experiment of the ID-of-layers
    chapter; cached).

    Data: :func:`interp_lib.datasets.rotating_objects` (``n_objects`` objects x
    ``n_poses`` random rotation angles, ``image_size`` pixels, seeded by ``seed``), a random
    ``train_fraction`` of all images (seeded) for training and the rest for testing.
    Network: ``cnn_classifier(n_objects, image_size=image_size, widths=widths,
    hidden=hidden)``; Adam, lr ``lr``, ``epochs`` epochs. Defaults: the chapter's
    (20 x 72 images, 32 px, 8 epochs).

    Accuracy on unseen poses: ``result.test_accuracy`` (not yet measured through the zoo;
    the chapter's inline run of the same recipe prints it).

    Returns
    -------
    TrainedClassifier
        ``train`` and ``test`` carry the angles as an extra (``train.angles``).
    """
    from ..datasets import rotating_objects

    seed = check_seed(seed)
    n_objects = check_int(n_objects, "n_objects", minimum=2)
    n_poses = check_int(n_poses, "n_poses", minimum=2)
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}.")
    images, labels, angles = rotating_objects(n_objects, n_poses, image_size=image_size, seed=seed)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cut = round(float(train_fraction) * len(labels))
    names = {"class_names": [f"object {i}" for i in range(n_objects)]}

    def part(idx: torch.Tensor) -> TensorImageDataset:
        return TensorImageDataset(images[idx], labels[idx], extras={"angles": angles[idx]},
                                  info=names)  # fmt: skip

    train, test = part(perm[:cut]), part(perm[cut:])
    arch = {
        "in_channels": int(images.shape[1]),
        "image_size": check_int(image_size, "image_size", minimum=8),
        "widths": [int(w) for w in widths],
        "hidden": [int(h) for h in hidden],
    }
    params = {
        **arch,
        "n_objects": n_objects,
        "n_poses": n_poses,
        "train_fraction": float(train_fraction),
        "epochs": check_int(epochs, "epochs"),
        "lr": float(lr),
        "batch_size": check_int(batch_size, "batch_size"),
        "seed": int(seed),
    }
    return _train_cnn("objects_cnn", params, arch, train, test, retrain=retrain, progress=progress)
