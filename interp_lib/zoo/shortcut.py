"""Zoo recipe: a CNN and a ProtoPNet on birds with a planted shortcut (small, cached).

The recipe is the birds recipe (:func:`interp_lib.zoo.protopnet_birds`) scaled down to run in
well under a CPU-minute per seed, on :func:`interp_lib.datasets.shortcut.shortcut_birds`:

1. **Data**: ``n_per_class`` training, ``val_per_class`` validation and
   ``test_per_class`` test birds per class at ``image_size`` pixels (seeds ``seed``,
   ``seed + 1000``, ``seed + 2000``); training and validation images carry the marker
   with the recipe's ``correlation`` (``None``: no marker, the plain birds); the test
   birds are stored without it, with a marker position each, so that a study paints
   the marker as in training, swaps it or leaves it out
   (:meth:`ShortcutModels.test_images`). Stored as 8-bit images and normalised with the
   training set's channel mean and std, as in the birds recipe.
2. **CNN**: the small CNN trunk under a global max pool and a linear head, trained for
   ``warm_epochs`` epochs (Adam ``cnn_lr``) on images augmented by
   ``interp_lib.datasets.augment.RandomAffine``; the trunk at that point starts the
   ProtoPNet, and the CNN goes on for as many epochs as the ProtoPNet trains (the best
   validation epoch is kept).
3. **ProtoPNet**: prototypes seeded where the warm CNN's head sees the class, trained with
   :func:`interp_lib.protopnet.fit` under :meth:`~interp_lib.protopnet.Schedule.cpu_birds`
   with the recipe's ``schedule`` overrides and last-layer rule, then pushed once more for
   the provenance of each prototype.

The entry's key is the recipe and a hash of this module, the data modules and the
training code (the birds recipe's modules), so the birds entries are untouched by it.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .._plumbing import torch_threads
from .._validation import check_real
from ..datasets import TensorImageDataset
from ._birds_cnn import Normalize, mask_index, to_u8
from ._birds_protopnet import LAST_LAYER_SCHEDULE, Recipe, _push_state, rebuild_models, schedule_of
from ._birds_protopnet import SOURCES as BIRDS_SOURCES
from ._cache import cached

__all__ = ["SHORTCUT_SCHEDULE", "TEST_CONDITIONS", "ShortcutModels", "ShortcutRecipe",
           "shortcut_birds_models"]  # fmt: skip

SOURCES = (*BIRDS_SOURCES, "interp_lib.zoo.shortcut", "interp_lib.datasets.shortcut")

#: Overrides of :meth:`interp_lib.protopnet.Schedule.cpu_birds` in the shortcut recipe:
#: 6 epochs (1 warm-up), a push and last-layer solve after epochs 0, 2, 4 and 5, the
#: trunk at the CNN's learning rate, the last epoch at a tenth of the learning rates.
SHORTCUT_SCHEDULE: dict[str, Any] = {
    "epochs": 6,
    "warmup_epochs": 1,
    "push_start": 0,
    "push_every": 2,
    "joint_lr_features": 2e-3,
    "lr_step_size": 5,
}

#: How :meth:`ShortcutModels.test_images` paints the test birds: the marker of the own
#: class (as in training with correlation 1), none, or the marker of another class.
TEST_CONDITIONS = ("as_trained", "removed", "swapped")


@dataclass(frozen=True)
class ShortcutRecipe(Recipe):
    """The arguments of :func:`shortcut_birds_models` (the cache key).

    Parameters
    ----------
    correlation : float in [0, 1] or None
        How often a training marker names the bird's class
        (:func:`interp_lib.datasets.shortcut.shortcut_birds`); ``None``: no marker (plain birds).
    marker_size : int
        Side of the square marker in pixels.
    n_classes, seed, n_per_class, val_per_class, test_per_class : int
        The data (as in :class:`interp_lib.zoo.BirdsRecipe`).
    image_size : int
    difficulty : float
    widths : tuple of int
        As in :class:`interp_lib.zoo.BirdsRecipe`, and so are the fields below but
        ``schedule``.
    pool_last, channels_last : bool
    n_prototypes_per_class, prototype_dim, batch_size, warm_epochs, threads : int
    cnn_lr, degrees, shift, shear : float
    last_layer : str
    schedule : mapping, optional
        Overrides of :meth:`~interp_lib.protopnet.Schedule.cpu_birds` (default
        ``SHORTCUT_SCHEDULE``).
    """

    correlation: float | None = 1.0
    marker_size: int = 6
    n_classes: int = 4
    seed: int = 0
    n_per_class: int = 150
    val_per_class: int = 10
    test_per_class: int = 25
    image_size: int = 48
    difficulty: float = 0.3
    widths: tuple[int, ...] = (16, 32, 64)
    pool_last: bool = False
    n_prototypes_per_class: int = 3
    prototype_dim: int = 32
    batch_size: int = 32
    cnn_lr: float = 2e-3
    warm_epochs: int = 20
    degrees: float = 10.0
    shift: float = 3.0
    shear: float = 5.0
    schedule: Mapping[str, Any] | None = None
    last_layer: str = "convex_nonpositive"
    channels_last: bool = True
    threads: int = 1

    def __post_init__(self) -> None:
        ints = ("n_classes", "n_per_class", "val_per_class", "test_per_class", "image_size",
                "marker_size", "n_prototypes_per_class", "prototype_dim", "batch_size",
                "warm_epochs", "threads")  # fmt: skip
        checked = self._checked_fields(ints, ("pool_last", "channels_last"),
                                      minimum={"n_classes": 2})  # fmt: skip
        if self.correlation is not None:
            c = float(check_real(self.correlation, "correlation"))
            if not 0.0 <= c <= 1.0:
                raise ValueError(f"correlation must lie in [0, 1] or be None, got {c}.")
            checked["correlation"] = c
        if self.last_layer not in LAST_LAYER_SCHEDULE:
            raise ValueError(f"last_layer must be one of {sorted(LAST_LAYER_SCHEDULE)}.")
        checked["schedule"] = dict(SHORTCUT_SCHEDULE if self.schedule is None else self.schedule)
        self._set_checked(checked)

    def asdict(self) -> dict[str, Any]:
        """The recipe as plain JSON-able values: the cache key."""
        return self._key()

    def replace(self, **changes: Any) -> ShortcutRecipe:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)


@dataclass
class ShortcutModels:
    """A CNN and a ProtoPNet trained on the shortcut birds, with their data.

    Attributes
    ----------
    cnn, protopnet : nn.Module
        Eval mode, CPU; both take normalised images.
    train, val : TensorImageDataset
        As trained: ``images`` (N, 3, H, W) in [0, 1] with their markers, ``labels``,
        ``masks`` (N, 7, H, W) bird parts, ``marker`` (N, H, W) bool.
    test : TensorImageDataset
        The test birds *without* marker; ``marker_position`` (N, 2) holds where
        :meth:`test_images` paints one.
    mean, std : torch.Tensor, shape (3,)
    push : PushResult
        Provenance of every prototype (``sample_index`` into ``train``).
    cnn_test_accuracy, protopnet_test_accuracy : dict of str to float
        Test accuracy under each of ``TEST_CONDITIONS``.
    recipe : dict
    from_cache : bool
    """

    cnn: nn.Module
    protopnet: nn.Module
    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset
    mean: torch.Tensor
    std: torch.Tensor
    push: Any
    cnn_test_accuracy: dict[str, float]
    protopnet_test_accuracy: dict[str, float]
    recipe: dict[str, Any] = field(default_factory=dict)
    train_seconds: dict[str, float] = field(default_factory=dict)
    from_cache: bool = False

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 3, H, W)`` in [0, 1] -> the models' input."""
        return (images - self.mean.view(-1, 1, 1)) / self.std.view(-1, 1, 1)

    def test_images(self, condition: str = "as_trained", *, seed: int = 0):
        """The test birds with their marker painted under ``condition``.

        Parameters
        ----------
        condition : {"as_trained", "removed", "swapped"}
            The own class's marker; none; a marker of a uniformly drawn other class.
        seed : int
            Draws the swapped classes.

        Returns
        -------
        images : torch.Tensor, shape (N, 3, H, W), in [0, 1]
        marker : torch.Tensor, shape (N, H, W), bool
            Where the marker is (empty for ``"removed"``).
        named : torch.Tensor, shape (N,), long
            The class each marker names (-1: none).
        """
        from ..datasets.shortcut import paint_markers

        return _test_images(self.test, self.recipe, condition, seed, paint_markers)


def _test_images(test, recipe, condition, seed, paint):
    if condition not in TEST_CONDITIONS:
        raise ValueError(f"condition must be one of {TEST_CONDITIONS}, got {condition!r}.")
    labels = test.labels
    k = int(recipe["n_classes"])
    if condition == "as_trained":
        named = labels.clone()
    elif condition == "removed":
        named = torch.full_like(labels, -1)
    else:
        g = torch.Generator().manual_seed(int(seed))
        named = (labels + torch.randint(1, k, labels.shape, generator=g)) % k
    images, marker = paint(test.images, test.marker_position, named,
                           size=int(recipe["marker_size"]))  # fmt: skip
    return images, marker, named


def _dataset(d: dict[str, torch.Tensor], mean, std, info) -> TensorImageDataset:
    idx = d["mask_index"]
    parts = torch.arange(1, 8, dtype=idx.dtype).view(1, -1, 1, 1)
    return TensorImageDataset(
        d["images"].float() / 255, d["labels"].long(),
        extras={"masks": idx[:, None] == parts, "marker": idx == 8,
                "marker_class": d["marker_class"], "marker_position": d["marker_position"]},
        transform=Normalize(mean, std), info=info,
    )  # fmt: skip


def _splits(payload: dict[str, Any]) -> dict[str, TensorImageDataset]:
    return {k: _dataset(d, payload["mean"], payload["std"], payload["info"])
            for k, d in payload["data"].items()}  # fmt: skip


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def _build(p: dict[str, Any]) -> dict[str, Any]:
    from ..datasets.augment import AugmentedDataset, RandomAffine
    from ..datasets.shortcut import paint_markers, shortcut_birds
    from ..models import train_classifier
    from ..networks import build_backbone, pooled_classifier
    from ..protopnet import ProtoPNet, fit, pretrain_backbone, push, seed_prototypes

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    kw = {"image_size": p["image_size"], "classes": p["n_classes"],
          "difficulty": p["difficulty"], "marker_size": p["marker_size"]}  # fmt: skip
    raw = {
        "train": shortcut_birds(p["n_per_class"], seed=p["seed"], correlation=p["correlation"], **kw),
        "val": shortcut_birds(p["val_per_class"], seed=p["seed"] + 1000,
                              correlation=p["correlation"], **kw),
        "test": shortcut_birds(p["test_per_class"], seed=p["seed"] + 2000, correlation=None, **kw),
    }  # fmt: skip
    data = {}
    for k, d in raw.items():
        idx = mask_index(d.masks)
        idx[d.marker] = 8
        data[k] = {
            "images": to_u8(d.images),
            "labels": d.labels,
            "mask_index": idx,
            "marker_class": d.marker_class,
            "marker_position": d.marker_position,
        }
    info = {k: raw["train"].info[k] for k in ("part_names", "class_names", "class_parts")}
    info.update(correlation=p["correlation"], marker_size=p["marker_size"])
    x_train = data["train"]["images"].float() / 255
    mean, std = x_train.mean((0, 2, 3)), x_train.std((0, 2, 3))
    ds = _splits({"data": data, "mean": mean, "std": std, "info": info})
    train_n, val_n = (TensorDataset(ds[k].transform(ds[k].images), ds[k].labels)
                      for k in ("train", "val"))  # fmt: skip
    augment = RandomAffine(degrees=p["degrees"], shift=p["shift"], shear=p["shear"])
    seconds["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    schedule = schedule_of({**p, "schedule": p["schedule"]})
    backbone_kwargs = {"widths": tuple(p["widths"]), "pool_last": p["pool_last"]}
    cnn, _ = pretrain_backbone(
        "small_cnn", AugmentedDataset(train_n, augment, seed=p["seed"]),
        n_classes=p["n_classes"], epochs=p["warm_epochs"], lr=p["cnn_lr"],
        batch_size=p["batch_size"], val=val_n, seed=p["seed"], device="cpu", progress=False,
        backbone_kwargs=backbone_kwargs, channels_last=p["channels_last"],
    )  # fmt: skip
    warm = {k: v.detach().clone().contiguous() for k, v in cnn.state_dict().items()}
    train_classifier(
        cnn, AugmentedDataset(train_n, augment, seed=p["seed"] + 2), test=val_n,
        epochs=schedule.epochs, lr=p["cnn_lr"], batch_size=p["batch_size"],
        seed=p["seed"] + 1, device="cpu", progress=False,
        lr_milestones=list(schedule.lr_drop_epochs()), lr_gamma=float(schedule.lr_gamma),
        restore_best=True, channels_last=p["channels_last"],
    )  # fmt: skip
    cnn.eval()
    seconds["cnn"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    warm_net = pooled_classifier(build_backbone("small_cnn", **backbone_kwargs),
                                 p["n_classes"], "max")  # fmt: skip
    warm_net.load_state_dict(warm)
    torch.manual_seed(p["seed"])
    model = ProtoPNet(
        copy.deepcopy(warm_net.features), n_classes=p["n_classes"],
        n_prototypes_per_class=p["n_prototypes_per_class"], prototype_dim=p["prototype_dim"],
        image_size=p["image_size"],
    )  # fmt: skip
    push_loader = DataLoader(train_n, batch_size=128, shuffle=False)
    seed_prototypes(model, push_loader, warm_net.head)
    train_loader = DataLoader(
        AugmentedDataset(train_n, augment, seed=p["seed"] + 1), batch_size=p["batch_size"],
        shuffle=True, generator=torch.Generator().manual_seed(p["seed"]),
    )  # fmt: skip
    fit(model, train_loader, val_loader=DataLoader(val_n, batch_size=256),
        push_loader=push_loader, schedule=schedule, device="cpu", progress=False,
        seed=p["seed"], channels_last=p["channels_last"])  # fmt: skip
    model.eval()
    result = push(model, push_loader, progress=False)
    seconds["protopnet"] = time.perf_counter() - t0

    test = ds["test"]
    acc: dict[str, dict[str, float]] = {"cnn": {}, "protopnet": {}}
    for cond in TEST_CONDITIONS:
        images, _, _ = _test_images(test, p, cond, 0, paint_markers)
        x = test.transform(images)
        acc["cnn"][cond] = _accuracy(cnn, x, test.labels)
        acc["protopnet"][cond] = _accuracy(model, x, test.labels)
    return {
        "data": data, "info": info, "mean": mean, "std": std,
        "cnn": {k: v.contiguous() for k, v in cnn.state_dict().items()},
        "protopnet": model.state_dict(), "push": _push_state(result),
        "cnn_test_accuracy": acc["cnn"], "protopnet_test_accuracy": acc["protopnet"],
        "train_seconds": seconds,
    }  # fmt: skip


def _rebuild(p: dict[str, Any], payload: dict[str, Any], hit: bool) -> ShortcutModels:
    model, cnn, push_result = rebuild_models(p, payload)
    ds = _splits(payload)
    return ShortcutModels(
        cnn=cnn, protopnet=model, train=ds["train"], val=ds["val"], test=ds["test"],
        mean=payload["mean"], std=payload["std"], push=push_result,
        cnn_test_accuracy={k: float(v) for k, v in payload["cnn_test_accuracy"].items()},
        protopnet_test_accuracy={k: float(v)
                                 for k, v in payload["protopnet_test_accuracy"].items()},
        recipe=dict(p), train_seconds=dict(payload["train_seconds"]), from_cache=hit,
    )  # fmt: skip


def shortcut_birds_models(
    correlation: float | None = 1.0,
    seed: int = 0,
    *,
    recipe: ShortcutRecipe | None = None,
    retrain: bool = False,
    **changes: Any,
) -> ShortcutModels:
    """A CNN and a ProtoPNet trained on birds with a planted marker (cached).

    Parameters
    ----------
    correlation : float in [0, 1] or None
        How often a training marker names the bird's class; ``None``: plain birds (no
        marker), the same recipe otherwise.
    seed : int
        Seeds data, weights and batch order.
    recipe : ShortcutRecipe, optional
        Default ``ShortcutRecipe()``; ``correlation``, ``seed`` and ``changes`` override it.
    retrain : bool
        Train again and overwrite the cached entry.
    **changes
        Other fields of :class:`ShortcutRecipe`.

    Returns
    -------
    ShortcutModels
    """
    recipe = (recipe or ShortcutRecipe()).replace(correlation=correlation, seed=seed, **changes)
    p = recipe.asdict()

    def build() -> dict[str, Any]:
        with torch_threads(p["threads"]), torch.random.fork_rng(devices=[]):
            torch.manual_seed(p["seed"])
            return _build(p)

    out, _ = cached("shortcut_birds", p, build, sources=SOURCES, retrain=retrain,
                    load=lambda payload, hit: _rebuild(p, payload, hit))  # fmt: skip
    return out
