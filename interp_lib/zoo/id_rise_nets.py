"""Zoo recipe for the small bird CNNs of the chapter on why the intrinsic dimension rises.

A module of its own, with its own ``SOURCES``: the cache keys of the other recipes do not
depend on this code, and this recipe's key does not depend on the study that measures
its networks (:mod:`interp_lib.studies.id_rise`), so the study can change without
retraining anything.

The network (:func:`first_stage_net`) names every operation of its first stage --
``conv1`` (3x3 convolution), ``bn1`` (BatchNorm), ``relu1``, ``pool1`` (2x2 max-pool) --
so that each can be measured, or removed, on its own; two more stages and two fully
connected layers follow.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from .._validation import check_choice, check_int, check_real, check_seed
from ..datasets import TensorImageDataset
from .classifiers import TrainedClassifier, cached_classifier

__all__ = ["ID_RISE_VARIANTS", "TrainedRiseNet", "first_stage_net", "id_rise_net"]

SOURCES = (
    "interp_lib.zoo._cache",
    "interp_lib.zoo.id_rise_nets",
    "interp_lib.zoo.classifiers",
    "interp_lib.models",
    "interp_lib.datasets._base",
    "interp_lib.datasets.birds",
    "interp_lib.datasets.filters",
)

#: The training variants: true labels on the images, true labels on low-pass images,
#: shuffled labels on the images.
ID_RISE_VARIANTS = ("true", "low_pass", "shuffled")


def first_stage_net(
    n_classes: int = 5,
    *,
    image_size: int = 32,
    in_channels: int = 3,
    width: int = 16,
    seed: int | None = 0,
) -> nn.Sequential:
    """A three-stage CNN whose first stage is four named modules.

    ``conv1`` (3x3, padding 1, ``width`` channels) - ``bn1`` - ``relu1`` - ``pool1``
    (2x2 max-pool), then ``conv2-bn2-relu2-pool2`` (32 channels),
    ``conv3-bn3-relu3-pool3`` (64 channels), ``flatten``, ``fc`` (64 units), ``relu_fc``,
    ``out``.

    Parameters
    ----------
    n_classes : int, default 5
    image_size : int, default 32
        Input height = width, divisible by 8.
    in_channels : int, default 3
    width : int, default 16
        Channels of the first convolution.
    seed : int or None, default 0
        ``torch.manual_seed(seed)`` before the weights are drawn (None: leave the global
        generator as it is).

    Returns
    -------
    torch.nn.Sequential
        Input ``(N, in_channels, image_size, image_size)``, logits ``(N, n_classes)``.
    """
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    image_size = check_int(image_size, "image_size", minimum=8)
    if image_size % 8:
        raise ValueError(f"image_size must be divisible by 8 (three pools), got {image_size}.")
    width = check_int(width, "width")
    if seed is not None:
        torch.manual_seed(check_seed(seed))
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = check_int(in_channels, "in_channels")
    for i, out in enumerate((width, 32, 64), start=1):
        layers[f"conv{i}"] = nn.Conv2d(channels, out, 3, padding=1)
        layers[f"bn{i}"] = nn.BatchNorm2d(out)
        layers[f"relu{i}"] = nn.ReLU()
        layers[f"pool{i}"] = nn.MaxPool2d(2)
        channels = out
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(64 * (image_size // 8) ** 2, 64)
    layers["relu_fc"] = nn.ReLU()
    layers["out"] = nn.Linear(64, n_classes)
    return nn.Sequential(layers)


@dataclass
class TrainedRiseNet(TrainedClassifier):
    """A :class:`~interp_lib.zoo.TrainedClassifier` of one training variant.

    ``train`` holds the images the network was trained on (low-pass ones for the
    ``"low_pass"`` variant) with their **true** labels; ``test`` likewise.

    Attributes
    ----------
    variant : str
        One of ``ID_RISE_VARIANTS``.
    trained_labels : torch.Tensor, shape (N,)
        The labels it was trained on (a fixed permutation of the true ones for
        ``"shuffled"``).
    """

    variant: str = "true"
    trained_labels: torch.Tensor | None = None


def id_rise_net(
    variant: str = "true",
    *,
    seed: int = 0,
    n_per_class: int = 150,
    n_test: int = 60,
    n_classes: int = 5,
    image_size: int = 32,
    difficulty: float = 1.0,
    sigma: float = 1.0,
    epochs: int = 12,
    lr: float = 2e-3,
    batch_size: int = 64,
    threads: int | None = 1,
    retrain: bool = False,
) -> TrainedRiseNet:
    """A :func:`first_stage_net` trained on the procedural birds, one variant (cached).

    Data: :func:`interp_lib.datasets.birds` with ``n_classes`` species at ``image_size``
    pixels and ``difficulty`` (1.0: clutter and pixel noise), ``n_per_class`` training
    images per class (data seed 0) and ``n_test`` per class for the test (seed 1). The
    variant: ``"true"``, the images and their labels; ``"low_pass"``, the images blurred
    by :func:`interp_lib.datasets.filters.low_pass` with ``sigma`` (training and test);
    ``"shuffled"``, the images with one fixed random permutation of the labels (drawn
    with ``torch.Generator().manual_seed(seed)``; ``trained_labels``).
    Adam, lr ``lr``, ``epochs`` epochs (the last one kept), batches of ``batch_size``;
    the weights are ``first_stage_net(seed=seed)``, so the untrained twin of a network
    is ``first_stage_net(seed=seed)`` itself. Trained under ``threads`` torch threads
    (part of the cache key, as in :func:`~interp_lib.zoo.birds_classifier`).

    Returns
    -------
    TrainedRiseNet
        In eval mode; ``history.test_accuracy`` is measured against the true labels.
    """
    from ..datasets import birds
    from ..datasets.filters import low_pass
    from ..models import train_classifier

    check_choice(variant, "variant", ID_RISE_VARIANTS)
    seed = check_seed(seed)
    data = {
        "image_size": check_int(image_size, "image_size", minimum=32),
        "classes": check_int(n_classes, "n_classes", minimum=2),
        "difficulty": check_real(difficulty, "difficulty", minimum=0.0, maximum=1.0),
    }
    train = birds(check_int(n_per_class, "n_per_class", minimum=2), seed=0, **data)
    test = birds(check_int(n_test, "n_test"), seed=1, **data)
    sigma = check_real(sigma, "sigma", positive=True)
    if variant == "low_pass":
        train = TensorImageDataset(low_pass(train.images, sigma), train.labels)
        test = TensorImageDataset(low_pass(test.images, sigma), test.labels)
    params = {
        "variant": variant,
        "seed": seed,
        "n_per_class": n_per_class,
        "n_test": n_test,
        **data,
        "sigma": sigma if variant == "low_pass" else None,
        "epochs": check_int(epochs, "epochs"),
        "lr": check_real(lr, "lr", positive=True),
        "batch_size": check_int(batch_size, "batch_size"),
        "threads": torch.get_num_threads() if threads is None else check_int(threads, "threads"),
    }
    shuffled = variant == "shuffled"

    def labels_trained() -> torch.Tensor:
        if not shuffled:
            return train.labels
        gen = torch.Generator().manual_seed(seed)
        return train.labels[torch.randperm(len(train.labels), generator=gen)]

    def make() -> nn.Sequential:
        return first_stage_net(n_classes, image_size=image_size, seed=seed)

    def fit(net: nn.Module):
        return train_classifier(net, (train.images, labels_trained()),
                                test=(test.images, test.labels), epochs=params["epochs"],
                                lr=params["lr"], batch_size=params["batch_size"], seed=seed,
                                device="cpu", progress=False)  # fmt: skip

    return cached_classifier(
        "id_rise_net", params, make, fit, train, test, sources=SOURCES, retrain=retrain,
        result=TrainedRiseNet,
        result_extras=lambda payload: {"variant": variant, "trained_labels": labels_trained()},
    )  # fmt: skip
