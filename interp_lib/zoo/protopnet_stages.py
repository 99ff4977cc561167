"""Zoo entry: a small birds ProtoPNet with a checkpoint after every training stage.

:func:`interp_lib.zoo.protopnet_birds` keeps only the selected, pushed end state of a run.
Part III of the book follows the geometry of the representations *through* training:
after the warm-up, after every joint epoch, after every push and after every last-layer
solve. ``protopnet_birds_stages`` trains the recipe of
:func:`~interp_lib.zoo.protopnet_birds` (the same data, warm-started trunk, prototype
seeding and :func:`interp_lib.protopnet.fit`) and keeps the model's state dict at every
step of the schedule, through ``fit``'s ``callback``; the states are cached as one entry
(``protopnet_birds_stages``), keyed by the recipe and the code that trains it (this
module and the modules of the birds recipe). The data and the CNN come from the birds
recipe's own CNN entry (shared with :func:`~interp_lib.zoo.protopnet_birds` for the same
recipe).

The default recipe (``STAGES_RECIPE``) is smaller than the book's default birds recipe,
so that the entry (with its CNN entry) trains in well under a CPU-minute: 4 classes, 120
training images per class at 64 pixels, a 12-epoch warm start, 3 prototypes per class of
depth 32, 1 warm-up and 5 joint epochs with a push and a convex last-layer solve after
epochs 0, 2, 4 and 5. Smaller (60 images per class, an 8-epoch warm start) the network
stayed at chance.

The entry also keeps the **untrained twin**: the same architecture as built from the
recipe's seed before any training (a random trunk, random add-on, prototypes drawn as
ProtoPNet draws them), the reference of the ID chapters.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._plumbing import torch_threads
from ..datasets import TensorImageDataset
from ._birds_cnn import cnn_entry, normalised, splits
from ._birds_protopnet import SOURCES as BIRDS_SOURCES
from ._birds_protopnet import schedule_of
from ._cache import cached
from .birds import BirdsRecipe

__all__ = ["STAGES_RECIPE", "BirdsStages", "protopnet_birds_stages"]

SOURCES = (*BIRDS_SOURCES, "interp_lib.zoo.protopnet_stages")

#: The default recipe of :func:`protopnet_birds_stages` (see the module docstring).
STAGES_RECIPE = BirdsRecipe(
    n_classes=4,
    n_per_class=120,
    val_per_class=20,
    test_per_class=40,
    image_size=64,
    warm_epochs=12,
    n_prototypes_per_class=3,
    prototype_dim=32,
    schedule={
        "epochs": 6,
        "warmup_epochs": 1,
        "push_start": 0,
        "push_every": 2,
        "joint_lr_features": 2e-3,
        "lr_step_size": 5,
    },
)


@dataclass
class BirdsStages:
    """A ProtoPNet's state after every training step, with its data and untrained twin.

    Attributes
    ----------
    stages : list of str
        One label per kept state, in training order: ``"start"`` (warm trunk, seeded
        prototypes, before the first epoch), then one per step of the schedule, e.g.
        ``"warm-up 0"``, ``"joint 1"``, ``"push 2"``, ``"last layer 2"``.
    kinds : list of str
        The stage of each state: ``"start"``, ``"warmup"``, ``"joint"``, ``"push"`` or
        ``"last_layer"``.
    epochs : list of int
        The epoch each state belongs to (-1 for ``"start"``).
    states : list of dict
        The model's state dict after each step (CPU tensors).
    untrained : dict
        The state dict of the untrained twin.
    val_accuracy : list of float
        Validation accuracy after each step (NaN for ``"start"``).
    train, val, test : TensorImageDataset
        The recipe's splits (``dataset[i]`` is the normalised image and its label).
    recipe : dict
        The recipe (:meth:`~interp_lib.zoo.BirdsRecipe.asdict`).
    train_seconds : float
        CPU seconds of the ProtoPNet's training when the entry was made (the CNN entry's
        are not included).
    from_cache : bool
    """

    stages: list[str]
    kinds: list[str]
    epochs: list[int]
    states: list[dict[str, torch.Tensor]]
    untrained: dict[str, torch.Tensor]
    val_accuracy: list[float]
    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset
    recipe: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    from_cache: bool = False

    def model(self, stage: int | str) -> nn.Module:
        """The ProtoPNet at ``stage`` (an index or a label of ``stages``), eval mode.

        ``"untrained"`` gives the untrained twin.
        """
        net = _architecture(self.recipe)
        if stage == "untrained":
            state = self.untrained
        else:
            if isinstance(stage, str):
                if stage not in self.stages:
                    raise ValueError(f"stage must be one of {self.stages}, got {stage!r}.")
                stage = self.stages.index(stage)
            state = self.states[stage]
        net.load_state_dict(state)
        return net.eval()


def _architecture(p: dict[str, Any], trunk: nn.Module | None = None) -> nn.Module:
    from ..networks import build_backbone
    from ..protopnet import ProtoPNet

    if trunk is None:
        trunk = build_backbone("small_cnn", widths=tuple(p["widths"]), pool_last=p["pool_last"])
    return ProtoPNet(
        trunk, n_classes=p["n_classes"], n_prototypes_per_class=p["n_prototypes_per_class"],
        prototype_dim=p["prototype_dim"], image_size=p["image_size"],
    )  # fmt: skip


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}


def _build(p: dict[str, Any], progress: bool, retrain: bool) -> dict[str, Any]:
    from ..datasets.augment import AugmentedDataset, RandomAffine
    from ..networks import build_backbone, pooled_classifier
    from ..protopnet import fit, seed_prototypes

    cpu0 = time.process_time()
    schedule = schedule_of(p)
    base, _ = cnn_entry(p, schedule, progress, retrain)
    ds = splits(base)
    train_n, val_n = normalised(ds["train"]), normalised(ds["val"])
    augment = RandomAffine(degrees=p["degrees"], shift=p["shift"], shear=p["shear"])

    torch.manual_seed(p["seed"])  # the untrained twin: the architecture as first built
    untrained = _snapshot(_architecture(p))

    warm = pooled_classifier(
        build_backbone("small_cnn", widths=tuple(p["widths"]), pool_last=p["pool_last"]),
        p["n_classes"], "max",
    )  # fmt: skip
    warm.load_state_dict(base["warm_cnn"])
    torch.manual_seed(p["seed"])
    model = _architecture(p, copy.deepcopy(warm.features))
    push_loader = DataLoader(train_n, batch_size=128, shuffle=False)
    if p["prototype_init"] == "cnn":
        seed_prototypes(model, push_loader, warm.head)
    train_loader = DataLoader(
        AugmentedDataset(train_n, augment, seed=p["seed"] + 1),
        batch_size=p["batch_size"], shuffle=True,
        generator=torch.Generator().manual_seed(p["seed"]),
    )  # fmt: skip
    stages = ["start"]
    kinds = ["start"]
    epochs = [-1]
    states = [_snapshot(model)]
    val_accuracy = [float("nan")]

    def keep(rec) -> None:
        kind = rec.stage.value
        name = {"warmup": "warm-up", "last_layer": "last layer"}.get(kind, kind)
        stages.append(f"{name} {rec.epoch}")
        kinds.append(kind)
        epochs.append(int(rec.epoch))
        states.append(_snapshot(model))
        val_accuracy.append(float(rec.val["accuracy"]) if rec.val else float("nan"))

    fit(
        model, train_loader, val_loader=DataLoader(val_n, batch_size=256),
        push_loader=push_loader, schedule=schedule, device="cpu", progress=progress,
        seed=p["seed"], channels_last=p["channels_last"], restore_best=False, callback=keep,
    )  # fmt: skip
    return {
        "stages": stages,
        "kinds": kinds,
        "epochs": epochs,
        "states": states,
        "untrained": untrained,
        "val_accuracy": val_accuracy,
        "train_seconds": time.process_time() - cpu0,
    }


def protopnet_birds_stages(
    seed: int | None = None,
    *,
    recipe: BirdsRecipe | None = None,
    progress: bool = False,
    retrain: bool = False,
    **changes: Any,
) -> BirdsStages:
    """A small birds ProtoPNet with its state after every training step (cached).

    Parameters
    ----------
    seed : int, optional
        Shorthand for the recipe field.
    recipe : BirdsRecipe, optional
        Default ``STAGES_RECIPE`` (see the module docstring).
    progress : bool
        Progress bars while training.
    retrain : bool
        Train again and overwrite the cached entry.
    **changes
        Other fields of :class:`~interp_lib.zoo.BirdsRecipe` to change.

    Returns
    -------
    BirdsStages

    Raises
    ------
    TypeError
        A keyword that is not a recipe field, or a ``recipe`` that is not a BirdsRecipe.
    """
    if recipe is None:
        recipe = STAGES_RECIPE
    elif not isinstance(recipe, BirdsRecipe):
        raise TypeError(f"recipe must be a BirdsRecipe, got {type(recipe).__name__}.")
    if seed is not None:
        changes["seed"] = seed
    p = recipe.replace(**changes).asdict()

    def build() -> dict[str, Any]:
        with torch_threads(p["threads"]), torch.random.fork_rng(devices=[]):
            return _build(p, progress, retrain)

    payload, hit = cached("protopnet_birds_stages", p, build, sources=SOURCES, retrain=retrain)
    base, _ = cnn_entry(p, schedule_of(p), progress, False)
    ds = splits(base)
    return BirdsStages(
        stages=list(payload["stages"]),
        kinds=list(payload["kinds"]),
        epochs=[int(e) for e in payload["epochs"]],
        states=list(payload["states"]),
        untrained=payload["untrained"],
        val_accuracy=[float(a) for a in payload["val_accuracy"]],
        train=ds["train"],
        val=ds["val"],
        test=ds["test"],
        recipe=dict(p),
        train_seconds=float(payload["train_seconds"]),
        from_cache=hit,
    )
