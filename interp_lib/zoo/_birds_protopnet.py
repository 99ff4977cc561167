"""The ProtoPNet of the birds recipe (see :mod:`interp_lib.zoo.birds`): trained on the
warm trunk of the recipe's CNN entry (:mod:`interp_lib.zoo._birds_cnn`), cached with the
CNN, the data and the logs as one ``protopnet_birds`` entry.

The key of that entry hashes this module and the code that trains a ProtoPNet, not
:mod:`interp_lib.zoo.birds` (the public function, its defaults and documentation): every
recipe argument is in the key with its value, so changing a default there selects
another entry without retraining the others.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from .._plumbing import progress as progress_bar
from .._plumbing import torch_threads
from .._validation import check_bool, check_int, check_real, check_seed
from ._birds_cnn import CNN_SOURCES, cnn_entry, normalised, splits
from ._cache import cached

#: How the ``last_layer`` argument of the recipe sets the schedule.
LAST_LAYER_SCHEDULE: dict[str, dict[str, Any]] = {
    "convex": {"last_layer_solver": "convex"},
    "convex_nonpositive": {"last_layer_solver": "convex_nonpositive"},
    # the released code's stage: 20 Adam passes (lr 1e-4) after each push, here on the
    # push images' similarities, in batches of the training batch size
    "adam": {"last_layer_solver": "adam_push", "last_layer_passes": 20},
}

PROTOTYPE_INITS = ("cnn", "random")

SOURCES = (
    *CNN_SOURCES,
    "interp_lib.zoo._birds_protopnet",
    # the modules that train a ProtoPNet (not explain, prune, evidence, placement or the
    # command line, so that evaluation code can change without retraining)
    *(
        f"interp_lib.protopnet.{m}"
        for m in (
            "_loops _runtime boxes checkpoint functional history last_layer "
            "losses model push receptive_field stages train warmstart"
        ).split()
    ),
)


class Recipe:
    """What the birds and shortcut recipes (frozen dataclasses) share: the checks of
    their common fields, setting the checked values, and the cache key."""

    def _checked_fields(
        self, ints: Sequence[str], bools: Sequence[str], minimum: Mapping[str, int]
    ) -> dict[str, Any]:
        """The checked values of the integers ``ints`` (each at least
        ``minimum.get(name, 1)``), ``seed``, the booleans ``bools``, the floats
        ``difficulty``, ``degrees``, ``shift``, ``shear`` and ``cnn_lr`` (positive), and
        ``widths`` (a non-empty sequence of integers, as a tuple)."""
        checked: dict[str, Any] = {
            name: check_int(getattr(self, name), name, minimum=minimum.get(name, 1))
            for name in ints
        }
        checked["seed"] = check_seed(self.seed)
        for name in bools:
            checked[name] = check_bool(getattr(self, name), name)
        for name in ("difficulty", "degrees", "shift", "shear"):
            checked[name] = float(check_real(getattr(self, name), name))
        checked["cnn_lr"] = float(check_real(self.cnn_lr, "cnn_lr", positive=True))
        widths = self.widths
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
            raise TypeError(f"widths must be a sequence of ints, got {widths!r}.")
        if not widths:
            raise ValueError("widths must name at least one stage, got an empty sequence.")
        checked["widths"] = tuple(check_int(w, "each of widths") for w in widths)
        return checked

    def _set_checked(self, checked: Mapping[str, Any]) -> None:
        """Set the (frozen) fields to their ``checked`` values."""
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def _key(self) -> dict[str, Any]:
        """The fields as plain JSON-able values (``widths`` a list, ``schedule`` a dict):
        the entry's cache key."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["widths"] = list(self.widths)
        out["schedule"] = dict(self.schedule)
        return out


def schedule_of(p: dict[str, Any]):
    """The :class:`~interp_lib.protopnet.Schedule` of recipe ``p``."""
    from ..protopnet import Schedule

    overrides = dict(p["schedule"])
    clash = set(overrides) & set(LAST_LAYER_SCHEDULE[p["last_layer"]])
    if clash:
        raise ValueError(
            f"schedule sets {sorted(clash)}, which the last_layer argument "
            f"({p['last_layer']!r}) decides; pass last_layer instead."
        )
    return Schedule.cpu_birds(**{**overrides, **LAST_LAYER_SCHEDULE[p["last_layer"]]})


def _build(p: dict[str, Any], progress: bool, retrain: bool) -> dict[str, Any]:
    from ..datasets.augment import AugmentedDataset, RandomAffine
    from ..models import accuracy
    from ..networks import build_backbone, pooled_classifier
    from ..protopnet import ProtoPNet, fit, push, seed_prototypes

    # one tick per phase; iter() because a tqdm bar is iterable but not an iterator
    bar = iter(progress_bar(range(3), progress, "zoo: ProtoPNet birds", total=3))
    t_all = time.perf_counter()
    cpu0 = time.process_time()
    schedule = schedule_of(p)
    base, cnn_hit = cnn_entry(p, schedule, progress, retrain)
    ds = splits(base)
    train_n, val_n, test_n = (normalised(ds[k]) for k in ("train", "val", "test"))
    augment = RandomAffine(degrees=p["degrees"], shift=p["shift"], shear=p["shear"])
    next(bar, None)

    # ProtoPNet on a copy of the warm trunk
    t0 = time.perf_counter()
    warm = pooled_classifier(
        build_backbone("small_cnn", widths=tuple(p["widths"]), pool_last=p["pool_last"]),
        p["n_classes"], "max",
    )  # fmt: skip
    warm.load_state_dict(base["warm_cnn"])
    torch.manual_seed(p["seed"])
    model = ProtoPNet(
        copy.deepcopy(warm.features), n_classes=p["n_classes"],
        n_prototypes_per_class=p["n_prototypes_per_class"], prototype_dim=p["prototype_dim"],
        image_size=p["image_size"],
    )  # fmt: skip
    push_loader = DataLoader(train_n, batch_size=128, shuffle=False)
    if p["prototype_init"] == "cnn":  # where the warm CNN's head sees the class
        seed_prototypes(model, push_loader, warm.head)
    # "random": the prototypes stay as ProtoPNet draws them, torch.rand (the original's)
    train_loader = DataLoader(
        AugmentedDataset(train_n, augment, seed=p["seed"] + 1),
        batch_size=p["batch_size"], shuffle=True,
        generator=torch.Generator().manual_seed(p["seed"]),
    )  # fmt: skip
    history = fit(
        model, train_loader, val_loader=DataLoader(val_n, batch_size=256),
        push_loader=push_loader, schedule=schedule, device="cpu", progress=progress,
        seed=p["seed"], channels_last=p["channels_last"],
    )  # fmt: skip
    seconds = dict(base["train_seconds"])
    seconds["protopnet"] = time.perf_counter() - t0
    next(bar, None)

    t0 = time.perf_counter()
    result = push(model, push_loader, progress=False)  # already pushed: provenance only
    seconds["push"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_all
    seconds["cpu_total"] = time.process_time() - cpu0  # CPU time of all threads
    seconds["cnn_from_cache"] = float(cnn_hit)
    for _ in bar:  # the last phase: the bar reaches 3/3 and closes
        pass
    return {
        "data": base["data"],
        "info": base["info"],
        "mean": base["mean"],
        "std": base["std"],
        "protopnet_config": _jsonable(model.config),
        "protopnet": model.state_dict(),
        "cnn": base["cnn"],
        "push": _push_state(result),
        "protopnet_history": history.to_state(),
        "cnn_history": base["cnn_history"],
        "protopnet_test_accuracy": accuracy(model, test_n),
        "cnn_test_accuracy": base["cnn_test_accuracy"],
        "train_seconds": seconds,
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _push_state(result) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(result):
        v = getattr(result, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def rebuild_models(p: dict[str, Any], payload: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The ProtoPNet, the CNN (both in eval mode, on CPU) and the push result stored in
    a birds-recipe payload (``protopnet``, ``cnn`` and ``push``), built from the
    architecture of recipe ``p`` (``widths``, ``pool_last``, ``n_classes``,
    ``n_prototypes_per_class``, ``prototype_dim``, ``image_size``); the inverse of the
    recipe's build and of :func:`_push_state`. Shared by the birds and shortcut entries."""
    from ..networks import build_backbone, pooled_classifier
    from ..protopnet import ProtoPNet, PushResult

    def trunk():
        return build_backbone("small_cnn", widths=tuple(p["widths"]), pool_last=p["pool_last"])

    model = ProtoPNet(
        trunk(), n_classes=p["n_classes"], n_prototypes_per_class=p["n_prototypes_per_class"],
        prototype_dim=p["prototype_dim"], image_size=p["image_size"],
    )  # fmt: skip
    model.load_state_dict(payload["protopnet"])
    cnn = pooled_classifier(trunk(), p["n_classes"], "max")
    cnn.load_state_dict(payload["cnn"])
    model.eval()
    cnn.eval()
    ps = dict(payload["push"])
    ps["image_size"] = tuple(ps["image_size"])
    return model, cnn, PushResult(**ps)


def entry(
    p: dict[str, Any],
    progress: bool,
    retrain: bool,
    load: Callable[[dict[str, Any], bool], Any] | None = None,
) -> tuple[Any, bool]:
    """The ``protopnet_birds`` payload of recipe ``p`` (trained under ``p["threads"]``
    torch threads, restored afterwards), or ``load(payload, from_cache)``: a cached
    payload that ``load`` cannot read (a missing key, a tensor of the wrong shape) is
    warned about and retrained (the ``load`` hook of ``_cache.cached``)."""

    def build() -> dict[str, Any]:
        with torch_threads(p["threads"]), torch.random.fork_rng(devices=[]):
            return _build(p, progress, retrain)

    return cached("protopnet_birds", p, build, sources=SOURCES, retrain=retrain, load=load)
