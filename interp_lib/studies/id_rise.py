"""Why does the intrinsic dimension rise in the first layers? Controls that isolate a cause.

Ansuini et al. (2019) find that the ID of single-class image sets rises from the input to
the first layers of a trained network (the first half of the "hunchback") and leave the
cause open; so do readers of their repository. A continuous map with a bounded
derivative cannot raise the dimension of a manifold, so a rise in an *estimate* means
that the layer changes which variations are visible at the scale where the estimator
looks (TwoNN: the nearest neighbours; Gride at rank ``n2``: the ``n2``-th). The study
measures the rise of the first stage of small trained CNNs
(:func:`interp_lib.zoo.id_rise_nets.id_rise_net`, stage ``conv1-bn1-relu1-pool1``) with
:func:`~interp_lib.studies.class_profiles`, and removes one ingredient at a time:

==================  ==================================================================
control             what is measured (the rise: ID of the layer minus ID of its input)
==================  ==================================================================
``baseline``        the trained network at ``pool1``
``untrained``       its untrained twin (the same initial weights) at ``pool1``
``no_relu``         the trained network with ``relu1`` replaced by the identity, at
                    ``pool1`` (trained filters, no ReLU: :func:`without_module`)
``no_pool``         the trained network at ``relu1`` (before the pooling)
``linear``          the trained network at ``bn1``: the first stage's linear part alone
``low_pass``        a network trained on low-pass images
                    (:func:`interp_lib.datasets.filters.low_pass`), at ``pool1``, measured on
                    low-pass images against their own ID
``blurred_input``   the baseline network (trained on the sharp images) measured on the
                    low-pass images, at ``pool1``, against their own ID
``shuffled``        a network trained on shuffled labels, at ``pool1``
==================  ==================================================================

Each control's rise is paired with the baseline's over the (seed, class) pairs: the same
seed's networks and the same images of a class (for ``low_pass``, the blurred versions of
the same images), :func:`~interp_lib.studies.paired_interval`. ``relative=True``
divides each rise by the ID of its input.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .._plumbing import require
from .._validation import check_int
from .per_class import ClassProfiles, class_profiles
from .stats import PairedInterval, paired_interval

__all__ = [
    "CONTROLS",
    "RISE_LAYERS",
    "IdRiseStudy",
    "id_rise_study",
    "layer_rise",
    "without_module",
]

#: The checkpoints profiled: the input and the four operations of the first stage
#: (``conv1`` is left out: ``bn1`` in eval mode is a per-channel affine map of it).
RISE_LAYERS = ("input", "bn1", "relu1", "pool1")

#: control -> (network setting, layer): see the module's table.
CONTROLS: dict[str, tuple[str, str]] = {
    "baseline": ("trained", "pool1"),
    "untrained": ("untrained", "pool1"),
    "no_relu": ("no_relu", "pool1"),
    "no_pool": ("trained", "relu1"),
    "linear": ("trained", "bn1"),
    "low_pass": ("low_pass", "pool1"),
    "blurred_input": ("blurred_input", "pool1"),
    "shuffled": ("shuffled", "pool1"),
}

Scale = str | int

#: The settings profiled at every layer of ``RISE_LAYERS``; the others only at the input
#: and ``pool1``, the layers their controls read (the 16-channel full-resolution layers
#: ``bn1`` and ``relu1`` cost most of the neighbour searches).
_ALL_LAYERS = ("trained", "untrained", "low_pass")


def without_module(model: nn.Module, name: str = "relu1") -> nn.Module:
    """A deep copy of ``model`` with the submodule ``name`` replaced by ``nn.Identity``.

    Parameters
    ----------
    model : torch.nn.Module
    name : str, default "relu1"
        A dotted submodule name (``"features.relu1"``).

    Returns
    -------
    torch.nn.Module
        The copy, in the mode of ``model``; ``model`` itself is not changed.

    Raises
    ------
    ValueError
        ``model`` has no submodule ``name``.
    """
    names = dict(model.named_modules())
    if not name or name not in names:
        raise ValueError(f"the model has no submodule {name!r}; its modules: {list(names)[1:8]}.")
    out = copy.deepcopy(model)
    parent_name, _, child = name.rpartition(".")
    parent = out.get_submodule(parent_name) if parent_name else out
    setattr(parent, child, nn.Identity())
    return out


def layer_rise(profiles: ClassProfiles, layer: str, scale: Scale = "twonn",
               base: str = "input", *, relative: bool = False) -> torch.Tensor:  # fmt: skip
    """ID of ``layer`` minus ID of ``base``, per class, at one scale.

    Parameters
    ----------
    profiles : ClassProfiles
    layer, base : str
        Two of ``profiles.layers``.
    scale : "twonn" or int
        ``"twonn"``: the TwoNN estimate (the finest scale); an int: the Gride estimate at
        that neighbour rank ``n2`` (one of ``profiles.gride_ranks``).
    relative : bool, default False
        Divide the rise by the ID of ``base`` (0.1: a rise of 10 % of the input's ID).

    Returns
    -------
    torch.Tensor, shape (n_classes,), float64
    """
    for name in (layer, base):
        if name not in profiles.layers:
            raise ValueError(f"{name!r} is not a layer of the profiles {profiles.layers}.")
    values = profiles.twonn if scale == "twonn" else profiles.at_rank(int(scale))
    j, i = profiles.layers.index(layer), profiles.layers.index(base)
    rise = (values[:, j] - values[:, i]).to(torch.float64)
    return rise / values[:, i].to(torch.float64) if relative else rise


@dataclass(frozen=True)
class IdRiseStudy:
    """Per-class profiles of the first stage, for every network setting and seed.

    Attributes
    ----------
    seeds : tuple of int
    profiles : dict str -> tuple of ClassProfiles
        ``profiles[setting][i]``: the profiles of seed ``seeds[i]``, settings
        ``"trained"``, ``"untrained"``, ``"no_relu"``, ``"low_pass"``,
        ``"blurred_input"`` (the trained network on low-pass images), ``"shuffled"``.
    accuracy : dict str -> tuple of float
        Test accuracy (true labels) of the trained variants, per seed.
    train_accuracy : dict str -> tuple of float
        Last-epoch accuracy on the labels each variant was trained on, per seed.
    settings : dict
        The arguments of :func:`id_rise_study`.
    """

    seeds: tuple[int, ...]
    profiles: dict[str, tuple[ClassProfiles, ...]]
    accuracy: dict[str, tuple[float, ...]]
    train_accuracy: dict[str, tuple[float, ...]]
    settings: dict = field(default_factory=dict)

    @property
    def ranks(self) -> tuple[int, ...]:
        """The Gride ranks ``n2`` measured."""
        return self.profiles["trained"][0].gride_ranks

    def rise(self, control: str, scale: Scale = "twonn", *,
             relative: bool = False) -> torch.Tensor:  # fmt: skip
        """The rise of ``control`` (see ``CONTROLS``), shape (n_seeds, n_classes);
        ``relative``: divided by the input's ID (:func:`layer_rise`)."""
        if control not in CONTROLS:
            raise ValueError(f"control must be one of {list(CONTROLS)}, got {control!r}.")
        setting, layer = CONTROLS[control]
        return torch.stack(
            [layer_rise(p, layer, scale, relative=relative) for p in self.profiles[setting]]
        )

    def interval(self, control: str, scale: Scale = "twonn", *, over: str = "pairs",
                 relative: bool = False, confidence: float = 0.95) -> PairedInterval:  # fmt: skip
        """The rise of ``control`` with a Student-t interval, over the (seed, class)
        pairs (``over="pairs"``) or over the seeds (class means per seed, ``"seeds"``)."""
        r = self._over(self.rise(control, scale, relative=relative), over)
        return paired_interval(r, torch.zeros_like(r), confidence=confidence)

    def versus_baseline(self, control: str, scale: Scale = "twonn", *, over: str = "pairs",
                        relative: bool = False,
                        confidence: float = 0.95) -> PairedInterval:  # fmt: skip
        """Rise of ``control`` minus rise of ``baseline``, paired by seed and class."""
        a = self._over(self.rise(control, scale, relative=relative), over)
        b = self._over(self.rise("baseline", scale, relative=relative), over)
        return paired_interval(a, b, confidence=confidence)

    @staticmethod
    def _over(r: torch.Tensor, over: str) -> torch.Tensor:
        if over == "pairs":
            return r.flatten()
        if over == "seeds":
            return r.mean(1)
        raise ValueError(f"over must be 'pairs' or 'seeds', got {over!r}.")

    def curves(self, setting: str) -> torch.Tensor:
        """Gride ID against rank, mean over seeds and classes, (n_layers, n_ranks)."""
        return torch.stack([p.gride for p in self.profiles[setting]]).nanmean((0, 1))

    def table(self, scale: Scale = "twonn", controls: Sequence[str] | None = None):
        """One row per control: its layer, input and layer ID, the rise with its 95 %
        interval over pairs and over seeds, and its difference from the baseline's rise.

        Returns
        -------
        pandas.DataFrame
        """
        pd = require("pandas", "IdRiseStudy.table")
        rows = []
        for c in controls or CONTROLS:
            setting, layer = CONTROLS[c]
            profs = self.profiles[setting]
            values = [p.twonn if scale == "twonn" else p.at_rank(int(scale)) for p in profs]
            v = torch.stack(values)
            rise, seeds = self.interval(c, scale), self.interval(c, scale, over="seeds")
            rel = self.interval(c, scale, relative=True)
            vs = self.versus_baseline(c, scale) if c != "baseline" else None
            rows.append({
                "control": c, "network": setting, "layer": layer,
                "input ID": float(v[..., 0].mean()),
                "layer ID": float(v[..., profs[0].layers.index(layer)].mean()),
                "rise": rise.mean, "rise 95 % low": rise.low, "rise 95 % high": rise.high,
                "rise over seeds": str(seeds),
                "relative rise": rel.mean, "relative 95 % low": rel.low,
                "relative 95 % high": rel.high,
                "minus baseline": math.nan if vs is None else vs.mean,
                "minus baseline low": math.nan if vs is None else vs.low,
                "minus baseline high": math.nan if vs is None else vs.high,
            })  # fmt: skip
        return pd.DataFrame(rows).set_index("control")


def id_rise_study(
    *,
    seeds: Sequence[int] = (0, 1, 2),
    n_per_class: int = 150,
    max_rank: int = 32,
    epochs: int = 12,
    sigma: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> IdRiseStudy:
    """Train (or read from the zoo) and profile the networks of every control.

    For each seed: the three trained variants of
    :func:`interp_lib.zoo.id_rise_nets.id_rise_net` (``"true"``, ``"low_pass"``,
    ``"shuffled"``; ``n_per_class`` training images per class, ``epochs`` epochs,
    low-pass ``sigma``), the untrained twin
    (:func:`interp_lib.zoo.id_rise_nets.first_stage_net` with the seed) and the trained
    network without ``relu1`` (:func:`without_module`). Each is profiled with
    :func:`~interp_lib.studies.class_profiles` on its own training images (the low-pass
    network on the low-pass images; the trained network also on the low-pass images),
    one class at a time, at ``RISE_LAYERS`` (the trained network, its untrained twin and
    the low-pass network; the other settings at ``input`` and ``pool1`` only): TwoNN on
    all images of the class
    (``n_resamples=0``: the intervals are over seeds and classes) and Gride at ranks 2,
    4, ..., ``max_rank``.

    Returns
    -------
    IdRiseStudy
    """
    from ..datasets.filters import low_pass
    from ..zoo.id_rise_nets import first_stage_net, id_rise_net

    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed.")
    max_rank = check_int(max_rank, "max_rank", minimum=2)
    kw = {"n_resamples": 0, "pca": False, "max_rank": max_rank}
    profiles: dict[str, list[ClassProfiles]] = {
        s: [] for s in ("trained", "untrained", "no_relu", "low_pass", "blurred_input",
                        "shuffled")
    }  # fmt: skip
    acc: dict[str, list[float]] = {v: [] for v in ("true", "low_pass", "shuffled")}
    train_acc: dict[str, list[float]] = {v: [] for v in acc}
    for seed in seeds:
        nets = {v: id_rise_net(v, seed=seed, n_per_class=n_per_class, epochs=epochs,
                               sigma=sigma) for v in acc}  # fmt: skip
        for v, t in nets.items():
            acc[v].append(t.test_accuracy)
            train_acc[v].append(t.history.train_accuracy[-1])
        base = nets["true"]
        x, y = base.train.images, base.train.labels
        image_size = x.shape[-1]
        models = {
            "trained": (base.model, x),
            "untrained": (first_stage_net(5, image_size=image_size, seed=seed).eval(), x),
            "no_relu": (without_module(base.model, "relu1"), x),
            "low_pass": (nets["low_pass"].model, nets["low_pass"].train.images),
            "blurred_input": (base.model, low_pass(x, sigma)),
            "shuffled": (nets["shuffled"].model, x),
        }
        for setting, (model, images) in models.items():
            layers = RISE_LAYERS if setting in _ALL_LAYERS else ("input", "pool1")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*dropped.*")
                profiles[setting].append(
                    class_profiles(model, images, y, list(layers), label=setting, **kw)
                )
        if log is not None:
            r = profiles["trained"][-1]
            log(f"seed {seed}: test accuracy {acc['true'][-1]:.2f}; trained TwoNN "
                f"{[round(v, 1) for v in r.mean().tolist()]}")  # fmt: skip
    settings = {"seeds": list(seeds), "n_per_class": n_per_class, "max_rank": max_rank,
                "epochs": epochs, "sigma": sigma, "layers": list(RISE_LAYERS)}  # fmt: skip
    return IdRiseStudy(
        seeds=seeds,
        profiles={k: tuple(v) for k, v in profiles.items()},
        accuracy={k: tuple(v) for k, v in acc.items()},
        train_accuracy={k: tuple(v) for k, v in train_acc.items()},
        settings=settings,
    )
