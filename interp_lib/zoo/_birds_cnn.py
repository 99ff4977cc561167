"""The data and the CNN of the birds recipe, cached as their own zoo entry.

:func:`interp_lib.zoo.protopnet_birds` trains a ProtoPNet on a trunk warm-started by a
CNN, and the CNN goes on as the ProtoPNet's baseline. The CNN depends only on the data,
the trunk, its optimiser and the ProtoPNet's epoch count and learning-rate drops, not on
the ProtoPNet's own choices (last-layer rule, prototype start, losses): so it is an entry
of its own (``protopnet_birds_cnn``) whose key holds those arguments and the code that
trains it, and ProtoPNet variants over the same seed share it. See
:mod:`interp_lib.zoo.birds` for the recipe.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.data import TensorDataset

from ..datasets import TensorImageDataset
from ._cache import cached

#: The recipe arguments that the data and the CNN depend on.
CNN_KEYS = (
    "n_classes seed n_per_class val_per_class test_per_class image_size difficulty crop "
    "widths pool_last batch_size cnn_lr warm_epochs degrees shift shear channels_last threads"
).split()

CNN_SOURCES = (
    "interp_lib.zoo._cache",
    "interp_lib.zoo._birds_cnn",
    "interp_lib.protopnet.warmstart",
    "interp_lib.networks.backbones",
    "interp_lib.networks.classifiers",
    "interp_lib.networks.trunks",
    "interp_lib.models",
    "interp_lib._plumbing",
    "interp_lib.datasets._base",
    "interp_lib.datasets.birds",
    "interp_lib.datasets.augment",
)


def to_u8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def mask_index(masks: torch.Tensor) -> torch.Tensor:
    """(N, parts, H, W) disjoint bool masks -> (N, H, W) uint8: 0 background, p + 1 part p."""
    idx = (masks.float().argmax(1) + 1) * masks.any(1)
    return idx.to(torch.uint8)


class Normalize:
    """``(x - mean) / std`` per channel, for ``(C, H, W)`` or ``(N, C, H, W)`` images."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean.view(-1, 1, 1), std.view(-1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_dataset(images_u8, labels, mask_idx, mean, std, info) -> TensorImageDataset:
    n_parts = len(info["part_names"])
    parts = torch.arange(1, n_parts + 1, dtype=mask_idx.dtype).view(1, -1, 1, 1)
    masks = mask_idx[:, None] == parts  # (N, parts, H, W) bool
    return TensorImageDataset(
        images_u8.float() / 255,
        labels.long(),
        extras={"masks": masks},
        transform=Normalize(mean, std),
        info=info,
    )


def normalised(ds: TensorImageDataset) -> TensorDataset:
    return TensorDataset(ds.transform(ds.images), ds.labels)


def splits(payload: dict[str, Any]) -> dict[str, TensorImageDataset]:
    """``train``, ``val``, ``test`` datasets from a payload's ``data``, ``mean``, ``std``
    and ``info``."""
    mean, std, info = payload["mean"], payload["std"], payload["info"]
    return {
        k: make_dataset(d["images"], d["labels"], d["mask_index"], mean, std, info)
        for k, d in payload["data"].items()
    }


def _build(c: dict[str, Any], progress: bool) -> dict[str, Any]:
    from ..datasets import birds
    from ..datasets.augment import AugmentedDataset, RandomAffine
    from ..models import accuracy, train_classifier
    from ..protopnet import pretrain_backbone

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    kw = {"image_size": c["image_size"], "classes": c["n_classes"],
          "difficulty": c["difficulty"], "crop": c["crop"]}  # fmt: skip
    raw = {
        "train": birds(c["n_per_class"], seed=c["seed"], **kw),
        "val": birds(c["val_per_class"], seed=c["seed"] + 1000, **kw),
        "test": birds(c["test_per_class"], seed=c["seed"] + 2000, **kw),
    }
    data = {
        k: {"images": to_u8(d.images), "labels": d.labels, "mask_index": mask_index(d.masks)}
        for k, d in raw.items()
    }
    info = {k: raw["train"].info[k] for k in ("part_names", "class_names", "class_parts")}
    x_train = data["train"]["images"].float() / 255
    mean, std = x_train.mean((0, 2, 3)), x_train.std((0, 2, 3))
    ds = splits({"data": data, "mean": mean, "std": std, "info": info})
    train_n, val_n, test_n = (normalised(ds[k]) for k in ("train", "val", "test"))
    augment = RandomAffine(degrees=c["degrees"], shift=c["shift"], shear=c["shear"])
    seconds["data"] = time.perf_counter() - t0

    # CNN warm start (the stand-in for ImageNet pretraining) on augmented images
    t0 = time.perf_counter()
    backbone_kwargs = {"widths": tuple(c["widths"]), "pool_last": c["pool_last"]}
    cnn, warm_hist = pretrain_backbone(
        "small_cnn", AugmentedDataset(train_n, augment, seed=c["seed"]),
        n_classes=c["n_classes"], epochs=c["warm_epochs"], lr=c["cnn_lr"],
        batch_size=c["batch_size"], val=val_n, seed=c["seed"], device="cpu",
        progress=progress, backbone_kwargs=backbone_kwargs, channels_last=c["channels_last"],
    )  # fmt: skip
    # the state at the branch point: the ProtoPNet's trunk and the seeding head
    warm = {k: v.detach().clone().contiguous() for k, v in cnn.state_dict().items()}
    seconds["warm_start"] = time.perf_counter() - t0

    # the CNN goes on for as many epochs as the ProtoPNet trains, with the same
    # learning-rate drops, and is selected on the validation split as the ProtoPNet is
    t0 = time.perf_counter()
    more = train_classifier(
        cnn, AugmentedDataset(train_n, augment, seed=c["seed"] + 2), test=val_n,
        epochs=c["cnn_epochs"], lr=c["cnn_lr"], batch_size=c["batch_size"],
        seed=c["seed"] + 1, device="cpu", progress=progress,
        lr_milestones=list(c["lr_milestones"]), lr_gamma=c["lr_gamma"],
        restore_best=True, channels_last=c["channels_last"],
    )  # fmt: skip
    seconds["cnn"] = time.perf_counter() - t0
    cnn_history = {
        key: list(getattr(warm_hist, key)) + list(getattr(more, key))
        for key in ("loss", "train_accuracy", "test_accuracy")
    }
    return {
        "data": data,
        "info": info,
        "mean": mean,
        "std": std,
        "warm_cnn": warm,
        "cnn": {k: v.contiguous() for k, v in cnn.state_dict().items()},
        "cnn_history": cnn_history,
        "cnn_test_accuracy": accuracy(cnn, test_n),
        "train_seconds": seconds,
    }


def cnn_entry(
    p: dict[str, Any], schedule, progress: bool, retrain: bool
) -> tuple[dict[str, Any], bool]:
    """The data and CNN payload for the recipe ``p`` and the ProtoPNet's ``schedule``
    (its epochs and learning-rate drops), from the cache or trained (under the thread
    count and RNG state the caller set up)."""
    c = {k: p[k] for k in CNN_KEYS}
    c.update(cnn_epochs=schedule.epochs, lr_milestones=schedule.lr_drop_epochs(),
             lr_gamma=float(schedule.lr_gamma))  # fmt: skip

    def build() -> dict[str, Any]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c["seed"])
            return _build(c, progress)

    return cached("protopnet_birds_cnn", c, build, sources=CNN_SOURCES, retrain=retrain)
