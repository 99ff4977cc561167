"""Zoo recipe: a ProtoPNet and its same-trunk CNN on the procedural birds.

The recipe (all seeded by ``seed``):

1. **Data**: :func:`interp_lib.datasets.birds` at ``image_size`` pixels: ``n_per_class``
   training, ``val_per_class`` validation and ``test_per_class`` test images per class
   (seeds ``seed``, ``seed + 1000``, ``seed + 2000``), stored as 8-bit images (as a
   photograph would be) and normalised with the training set's channel mean and std.
2. **Augmentation**: every training image read is passed through
   ``interp_lib.datasets.augment.RandomAffine`` (flip, +-``shift`` px, +-15 degree
   rotation, +-10 degree shear, reflected border), for both networks alike. Seeding,
   push, validation and test read the un-augmented images.
3. **CNN** (the baseline, and the warm start that stands in for ImageNet pretraining):
   the small CNN trunk (:func:`interp_lib.networks.small_cnn`; by default without the max-pool
   of its last stage, ``pool_last=False``: a 20 x 20 map with an 18-pixel receptive field
   and a 4-pixel stride at 80 pixels) under a global max pool and a linear head
   (:func:`interp_lib.networks.pooled_classifier`), Adam lr ``cnn_lr``, trained for
   ``warm_epochs`` epochs; its trunk is copied into the ProtoPNet at that point, and the
   CNN itself goes on for as many epochs as the ProtoPNet trains, so both networks see the
   same number of augmented images from the same starting trunk. Those CNN epochs get the
   ProtoPNet's learning-rate drops (:meth:`Schedule.lr_drop_epochs`) and the epoch with
   the best validation accuracy is kept, as ``fit`` keeps the ProtoPNet's best pushed
   state: the same schedule and the same model selection for both.
4. **ProtoPNet**: ``ProtoPNet(trunk, n_prototypes_per_class=..., prototype_dim=...)``,
   prototypes seeded where the warm CNN's head sees the class
   (:func:`interp_lib.protopnet.seed_prototypes`), then
   :func:`interp_lib.protopnet.fit` with :meth:`Schedule.cpu_birds` (model selection on
   the validation split), and a final :func:`interp_lib.protopnet.push` for the
   provenance of every prototype.

Test accuracies are measured once, at the end; nothing is selected on them.

Budget and measurements
-----------------------
Default budget: 1500 training images of 80 x 80 pixels, batches of 32 (47 steps per
epoch); CNN 18 warm epochs + 10 more (28 epochs, 1316 Adam steps, the last 47 at a tenth
of the learning rate); ProtoPNet 1 warm-up + 9 joint epochs (470 Adam steps, the last 47
at a tenth of the learning rates) with pushes after epochs 0, 2, 4, 6, 8 and 9, each
followed by the convex last-layer solve (``DEFAULT_SCHEDULE``).
Why this split: the CNN learns slowly under the augmentation, and a ProtoPNet branched
off a weak trunk stays far below it, so the CNN trains most of its epochs before the
branch, and the ProtoPNet needs most of its own epochs to build a classifier around its
prototypes. The first push and solve come right after the warm-up epoch because joint
epochs under the fixed +1/-0.5 last layer barely raise accuracy. Why 80 pixels and no
last pool: a 20 x 20 grid of patches 4 px apart instead of 8 x 8 patches 8 px apart (64
px with the pool) narrows the gap to the CNN and centres more prototypes on the bird,
for a longer training. Cropping the birds to their bounding boxes as ProtoPNet crops CUB
(``crop=True``) did not help.
``bench/protopnet_birds.py`` measures the recipe over seeds: both test accuracies and
their paired difference, prototype placement and training times
(``result.train_seconds``). Its summary, ``bench/summaries/protopnet_variants.json``, is
what the book shows (:func:`load_variants_summary`, :func:`variants_table`); its
docstring keeps the experiments behind the choices above.
The thread count is part of the cache key (``threads``, default 1): it changes the
order of floating-point sums, and the same seed then ends as far off as another seed
would. At one thread an entry is the same run on every machine of the same kind, so the
book's numbers are the bench's.
A cached entry loads in a few seconds (about 40 MB: images stored as 8-bit, masks as a
part index per pixel).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._plumbing import require
from .._validation import check_choice, check_int
from ..datasets import TensorImageDataset
from ._birds_cnn import splits
from ._birds_protopnet import LAST_LAYER_SCHEDULE, PROTOTYPE_INITS, Recipe, entry, rebuild_models

__all__ = [
    "DEFAULT_LAST_LAYER",
    "DEFAULT_SCHEDULE",
    "VARIANTS_SUMMARY",
    "BirdsModels",
    "BirdsRecipe",
    "load_variants_summary",
    "protopnet_birds",
    "variants_table",
]

#: The bench's summary of the birds recipe's variants (last-layer rule x prototype start,
#: 5 seeds), tracked in the repository.
VARIANTS_SUMMARY = (
    Path(__file__).resolve().parents[2] / "bench" / "summaries" / "protopnet_variants.json"
)

#: Overrides of :meth:`interp_lib.protopnet.Schedule.cpu_birds` in the default recipe:
#: 10 epochs (1 warm-up, 9 joint), a push and convex last-layer solve after epochs 0, 2,
#: 4, 6, 8 and 9 (the first one right after warm-up, so that joint training starts from a
#: solved last layer rather than the fixed +1/-0.5 one), the CNN's learning rate (2e-3)
#: for the trunk, which is only warm-started, not ImageNet-trained, and the joint
#: learning rates divided by 10 for the last epoch (``lr_step_size=8``; the CNN gets the
#: same drop, see :meth:`~interp_lib.protopnet.Schedule.lr_drop_epochs`).
#: The default last-layer rule: the convex optimum with off-class weights ``<= 0``.
#: Chosen by the rule declared in ``bench/protopnet_birds.py`` (own-class positive
#: evidence >= 90 % on correct test decisions and the gap to the CNN within 3 points,
#: over 5 seeds); the measured table of the three rules is
#: ``bench/summaries/protopnet_variants.json`` (:func:`variants_table`).
DEFAULT_LAST_LAYER = "convex_nonpositive"

DEFAULT_SCHEDULE: dict[str, Any] = {
    "epochs": 10,
    "warmup_epochs": 1,
    "push_start": 0,
    "push_every": 2,
    "joint_lr_features": 2e-3,
    "lr_step_size": 8,
}


class _ReadOnlyDict(dict):
    """A dict that refuses changes: a frozen recipe's ``schedule``."""

    def _refuse(self, *args: Any, **kwargs: Any):
        raise TypeError("a BirdsRecipe's schedule is read-only; use recipe.replace(schedule=...).")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return type(self), (dict(self),)


@dataclass(frozen=True)
class BirdsRecipe(Recipe):
    """The arguments of :func:`protopnet_birds`: what is trained, and the zoo's cache key.

    Frozen and checked when made (:meth:`replace` checks a changed copy again; the
    ``schedule`` is a read-only dict). :meth:`asdict` (or ``dataclasses.asdict``) is the
    cache key of the ``protopnet_birds`` entry (with a hash of the
    code that trains it): two equal recipes read the same entry, and a change of any
    field trains a new one.

    Parameters
    ----------
    n_classes : int
        Bird classes (:func:`interp_lib.datasets.bird_classes`).
    seed : int
        Seeds the data, augmentation, weights and batch order.
    n_per_class, val_per_class, test_per_class : int
        Images per class in each split.
    image_size : int
        Image side in pixels.
    difficulty : float
        Pose range and clutter of the birds (see :func:`interp_lib.datasets.birds`).
    crop : bool
        Crop every image to its bird's bounding box, as ProtoPNet crops CUB-200-2011
        (:func:`interp_lib.datasets.crop_to_birds`). Off by default: tried with the
        default recipe and with 64 px and the last pool, it gave no more prototypes on
        the bird and no smaller gap to the CNN (see ``bench/protopnet_birds.py``).
    widths : tuple of int
        Channels of the small CNN trunk's stages (one max-pool each).
    pool_last : bool
        Whether the trunk's last stage ends with its max-pool
        (:func:`interp_lib.networks.small_cnn`); ``False`` gives ProtoPNet a grid of patches
        twice as fine. The CNN computes the same function either way (a global max pool
        after a max-pool is the global max).
    n_prototypes_per_class, prototype_dim : int
        ProtoPNet's prototypes per class and latent depth.
    batch_size, cnn_lr : training settings
        Batch size of both networks; Adam learning rate of the CNN.
    warm_epochs : int
        CNN epochs before the ProtoPNet branches off.
    degrees, shift, shear : float
        Augmentation ranges (``interp_lib.datasets.augment.RandomAffine``).
    schedule : mapping, optional
        Overrides of :meth:`interp_lib.protopnet.Schedule.cpu_birds` (default
        ``DEFAULT_SCHEDULE``; ``{}`` for the preset itself), except the last-layer
        solver and passes, which ``last_layer`` sets.
    last_layer : {"convex_nonpositive", "convex", "adam"}
        The last-layer rule after every push (:mod:`interp_lib.protopnet.last_layer`):
        the convex optimum with every off-class weight kept ``<= 0`` (default, see
        ``DEFAULT_LAST_LAYER``), the unconstrained convex optimum, or the released code's
        20 Adam passes (lr 1e-4, from ``+1`` / ``-0.5``, L1 1e-4), run on the push
        images' similarities in batches of ``batch_size``.
    prototype_init : {"cnn", "random"}
        Where the prototypes start: ``"cnn"`` (default) on the latent patch where the
        warm CNN's head sees the class (:func:`interp_lib.protopnet.seed_prototypes`, a
        CAM-like rule: the on-bird share partly comes from it); ``"random"``: uniform in
        ``[0, 1)`` as the original draws them (``torch.rand``).
    channels_last : bool
        Train both networks in the channels-last memory format (the same functions,
        faster on CPU; the float rounding differs, so it is part of the cache key).
    threads : int or None, default 1
        ``torch.set_num_threads`` while training (restored afterwards); ``None``: the
        setting when the recipe is made (the recipe holds that number). Part of the cache key: the thread count changes the order of
        floating-point sums, and the run then ends as far from the same run at another
        thread count as from another seed. One thread gives the same entry on every
        machine of the same CPU kind and torch version, the bench's and the book's.

    Examples
    --------
    >>> recipe = BirdsRecipe(seed=1)
    >>> recipe.replace(n_classes=4).asdict()["n_classes"], recipe.widths
    (4, (16, 32, 64))
    """

    n_classes: int = 10
    seed: int = 0
    n_per_class: int = 150
    val_per_class: int = 20
    test_per_class: int = 50
    image_size: int = 80
    difficulty: float = 0.5
    crop: bool = False
    widths: tuple[int, ...] = (16, 32, 64)
    pool_last: bool = False
    n_prototypes_per_class: int = 5
    prototype_dim: int = 64
    batch_size: int = 32
    cnn_lr: float = 2e-3
    warm_epochs: int = 18
    degrees: float = 15.0
    shift: float = 5.0
    shear: float = 10.0
    schedule: Mapping[str, Any] | None = None
    last_layer: str = DEFAULT_LAST_LAYER
    prototype_init: str = "cnn"
    channels_last: bool = True
    threads: int | None = 1

    def __post_init__(self) -> None:
        ints = ("n_classes n_per_class val_per_class test_per_class image_size "
                "n_prototypes_per_class prototype_dim batch_size warm_epochs").split()  # fmt: skip
        checked = self._checked_fields(ints, ("crop", "pool_last", "channels_last"),
                                      minimum={"n_classes": 2, "image_size": 32})  # fmt: skip
        schedule = DEFAULT_SCHEDULE if self.schedule is None else self.schedule
        if not isinstance(schedule, Mapping) or not all(isinstance(k, str) for k in schedule):
            raise TypeError(
                f"schedule must be a mapping of Schedule field names, got {schedule!r:.80}."
            )
        checked["schedule"] = _ReadOnlyDict(schedule)
        checked["last_layer"] = check_choice(
            self.last_layer, "last_layer", tuple(LAST_LAYER_SCHEDULE)
        )
        checked["prototype_init"] = check_choice(
            self.prototype_init, "prototype_init", PROTOTYPE_INITS
        )
        threads = torch.get_num_threads() if self.threads is None else self.threads
        checked["threads"] = check_int(threads, "threads")
        self._set_checked(checked)

    def asdict(self) -> dict[str, Any]:
        """The recipe in plain JSON-able values (``widths`` a list, ``schedule`` a dict):
        the cache key."""
        return self._key()

    def replace(self, **changes: Any) -> BirdsRecipe:
        """A copy with ``changes`` (fields of the recipe), checked again.

        Raises
        ------
        TypeError
            For a name that is not a field of the recipe (the fields are named).
        """
        names = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise TypeError(f"{unknown} are not fields of BirdsRecipe; its fields are {names}.")
        return dataclasses.replace(self, **changes)


@dataclass
class BirdsModels:
    """A trained ProtoPNet, its same-trunk CNN, their data and their logs.

    Attributes
    ----------
    protopnet : ProtoPNet
        The trained, pushed model (eval mode, CPU). Takes normalised images.
    cnn : nn.Sequential
        The CNN baseline: ``features`` (same architecture as ``protopnet.features``),
        ``pool`` (global max), ``flatten``, ``head``. Takes normalised images.
    train, val, test : TensorImageDataset
        ``images`` (N, 3, H, W) float in [0, 1] (for display), ``labels`` (N,), ``masks``
        (N, 7, H, W) bool (visible part pixels, ``interp_lib.datasets.PARTS``);
        ``dataset[i]`` is the *normalised* image and its label (what the models take).
    mean, std : Tensor, shape (3,)
        Channel statistics of the training images used to normalise.
    push : PushResult
        Provenance of every prototype (final push over the un-augmented training set,
        in ``train``'s order: ``push.sample_index`` indexes ``train``).
    protopnet_history : interp_lib.protopnet.History
        Every ``fit`` step with its validation accuracy.
    cnn_history : interp_lib.models.TrainHistory
        The CNN's loss and training accuracy per epoch; its ``test_accuracy`` list holds
        the *validation* accuracy per epoch (the first ``warm_epochs`` are the warm start).
    protopnet_test_accuracy, cnn_test_accuracy : float
        Accuracy on ``test``.
    recipe : dict
        The recipe's arguments (part of the cache key).
    train_seconds : dict
        Wall time of each phase when the entry was made (``data``, ``warm_start``,
        ``protopnet``, ``cnn``, ``push``, ``total``) and the process's CPU time over all
        threads (``cpu_total``; on a loaded machine closer to the work than wall time).
    from_cache : bool
        Whether this call read the models from the disk cache.
    """

    protopnet: nn.Module
    cnn: nn.Module
    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset
    mean: torch.Tensor
    std: torch.Tensor
    push: Any
    protopnet_history: Any
    cnn_history: Any
    protopnet_test_accuracy: float
    cnn_test_accuracy: float
    recipe: dict[str, Any] = field(default_factory=dict)
    train_seconds: dict[str, float] = field(default_factory=dict)
    from_cache: bool = False

    @property
    def schedule(self):
        """The :class:`~interp_lib.protopnet.Schedule` the ProtoPNet was trained with
        (``recipe["schedule"]`` over :meth:`~interp_lib.protopnet.Schedule.cpu_birds`, and
        the last-layer rule of ``recipe["last_layer"]``)."""
        from ._birds_protopnet import schedule_of

        return schedule_of(self.recipe)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 3, H, W)`` in [0, 1] -> the models' input."""
        return (images - self.mean.view(-1, 1, 1)) / self.std.view(-1, 1, 1)

    def prototype_placement(self):
        """Where the pushed prototypes landed on their source images, per part.

        Returns
        -------
        interp_lib.protopnet.Placement
            For each prototype the part (``interp_lib.datasets.PARTS``, or background)
            under the centre of its receptive field on its source image, the share of
            prototypes per part against the part's pixel share of the source images
            (chance), the on-bird share (target 80 %), the share within 2 pixels of the
            bird (a diagnostic: centres lie on a grid of ``rf.jump`` pixels, so a patch
            over a thin leg or a tail tip is often centred just beside it) and the share
            of distinct source patches. Readable by key as the dict it replaces
            (``["on_bird_fraction"]``, ``["part"]``, ``["chance"]``...).
        """
        from ..protopnet import prototype_placement

        return prototype_placement(
            self.push,
            self.train.masks,
            self.protopnet.prototype_receptive_field,
            part_names=self.train.info["part_names"],
        )


def _rebuild(p: dict[str, Any], payload: dict[str, Any], hit: bool) -> BirdsModels:
    from ..models import TrainHistory
    from ..protopnet import History

    model, cnn, push_result = rebuild_models(p, payload)
    mean, std = payload["mean"], payload["std"]
    ds = splits(payload)
    return BirdsModels(
        protopnet=model,
        cnn=cnn,
        train=ds["train"],
        val=ds["val"],
        test=ds["test"],
        mean=mean,
        std=std,
        push=push_result,
        protopnet_history=History.from_state(payload["protopnet_history"]),
        cnn_history=TrainHistory(**payload["cnn_history"]),
        protopnet_test_accuracy=float(payload["protopnet_test_accuracy"]),
        cnn_test_accuracy=float(payload["cnn_test_accuracy"]),
        recipe=dict(p),
        train_seconds=dict(payload["train_seconds"]),
        from_cache=hit,
    )


def protopnet_birds(
    n_classes: int | None = None,
    seed: int | None = None,
    *,
    recipe: BirdsRecipe | None = None,
    progress: bool = True,
    retrain: bool = False,
    **changes: Any,
) -> BirdsModels:
    """A ProtoPNet and the same-trunk CNN, trained on the procedural birds (cached).

    Trained on first use (see the module docstring for the recipe) and read from the
    disk cache afterwards (:func:`interp_lib.zoo.cache_dir`; a few seconds). The cache
    key is the recipe (:meth:`BirdsRecipe.asdict`: every field; not ``progress`` or
    ``retrain``) and a hash of the library code that trains it.

    Parameters
    ----------
    n_classes, seed : int, optional
        Shorthands for the recipe fields of the same names (``protopnet_birds(seed=1)``,
        ``protopnet_birds(4, 1)``).
    recipe : BirdsRecipe, optional
        The recipe to train (default ``BirdsRecipe()``, the book's).
    progress : bool
        Progress bars while training.
    retrain : bool
        Train again and overwrite the cached entry.
    **changes
        Other fields of :class:`BirdsRecipe` to change (``last_layer="adam"``,
        ``pool_last=True``...).

    Returns
    -------
    BirdsModels
        Its ``recipe`` is the recipe's :meth:`BirdsRecipe.asdict`.

    Raises
    ------
    TypeError
        A keyword that is not a recipe field, or a ``recipe`` that is not a
        :class:`BirdsRecipe`.
    """
    if recipe is None:
        recipe = BirdsRecipe()
    elif not isinstance(recipe, BirdsRecipe):
        raise TypeError(f"recipe must be a BirdsRecipe, got {type(recipe).__name__}.")
    given = {"n_classes": n_classes, "seed": seed}
    recipe = recipe.replace(**{k: v for k, v in given.items() if v is not None}, **changes)
    p = recipe.asdict()
    # an entry that _rebuild cannot read (a missing key, wrong shapes) is warned about and
    # retrained by the cache, as a corrupt one is
    return entry(p, progress, retrain, load=lambda payload, hit: _rebuild(p, payload, hit))[0]


def load_variants_summary(path: str | Path | None = None) -> dict[str, Any]:
    """The bench's summary of the ProtoPNet variants on the birds (a dict read from JSON).

    ``bench/protopnet_birds.py --variants all --seeds 0 1 2 3 4 --json ...`` writes it:
    for every variant (``"<last_layer>/<prototype_init>"``) the per-seed rows and their
    summary (means, standard deviations, 95 % t-intervals of the gap, the evidence share
    and the on-bird share), the declared rule that picks the default and its outcome
    (``choice``), the machine and the command.

    Parameters
    ----------
    path : str or Path, optional
        Default ``VARIANTS_SUMMARY`` (``bench/summaries/protopnet_variants.json`` of the
        source tree).

    Raises
    ------
    FileNotFoundError
        If the file is missing (an installed package without the repository's bench
        folder): says how to make it.
    """
    path = Path(path) if path is not None else VARIANTS_SUMMARY
    if not path.is_file():
        raise FileNotFoundError(
            f"no variants summary at {str(path)!r} (bench/summaries/protopnet_variants.json "
            "of the source tree): clone the repository, or make it with OMP_NUM_THREADS=1 "
            "python bench/protopnet_birds.py --seeds 0 1 2 3 4 --variants all --json PATH."
        )
    return json.loads(path.read_text())


def variants_table(summary: dict[str, Any], *, percent: bool = True):
    """One row per variant of a :func:`load_variants_summary` summary (a DataFrame).

    Columns: ``last layer``, ``prototypes start``, ``seeds``, ``gap`` and its 95 %
    t-interval (``gap low``, ``gap high``: ProtoPNet - CNN test accuracy), ``ProtoPNet``,
    ``CNN``, ``own-class evidence`` (mean share of a correct decision's positive points
    from the predicted class's prototypes), ``off-class |w| > 0.1``, ``> 0.3``,
    ``off-class w > 0``, ``on bird`` (prototype centres) and ``chance``, and ``default``
    (the variant the declared rule picked). ``percent``: accuracies, shares and gaps in
    percent (points).
    """
    pd = require("pandas", "interp_lib.zoo.variants_table")

    k = 100.0 if percent else 1.0
    chosen = (summary.get("choice") or {}).get("variant")
    rows = []
    for name, item in summary["table"].items():
        s = item["summary"]
        rule, _, init = name.partition("/")
        rows.append({
            "last layer": rule,
            "prototypes start": init,
            "seeds": s["n_seeds"],
            "gap": k * s["diff"],
            "gap low": k * s["diff_low"],
            "gap high": k * s["diff_high"],
            "ProtoPNet": k * s["protopnet"],
            "CNN": k * s["cnn"],
            "own-class evidence": k * s["evidence"],
            "off-class |w| > 0.1": k * s["off_above_0.1"],
            "off-class |w| > 0.3": k * s["off_above_0.3"],
            "off-class w > 0": k * s["off_positive"],
            "on bird": k * s["on_bird"],
            "chance": k * s["chance"],
            "default": name == chosen,
        })  # fmt: skip
    return pd.DataFrame(rows)
