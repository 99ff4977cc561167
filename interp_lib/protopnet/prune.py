"""Prototype pruning (Chen et al. 2019, section 2.3 and supplement).

A prototype whose ``k`` nearest training patches (one per image) mostly come from other
classes is not class-specific: with ``k = 6`` and ``threshold = 3`` it is removed when
fewer than 3 of its 6 nearest patches come from its own class. Afterwards retrain the
last layer (the paper's last-layer stage: CE + L1 on the last layer only).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .._validation import check_int
from .explain import NearestPatches, nearest_patches
from .model import ProtoPNet


@dataclass
class PruneResult:
    """What :func:`prune` removed.

    Attributes
    ----------
    removed : list of int
        Indices (in the model before pruning) of the removed prototypes.
    kept : list of int
        Indices (before pruning) of the prototypes kept, in their new order.
    own_class_count : Tensor, shape (P,), long
        How many of each prototype's ``k`` nearest patches come from its class.
    nearest : NearestPatches
        The neighbours the decision was based on (indexed by the old prototype ids).
    """

    removed: list[int]
    kept: list[int]
    own_class_count: torch.Tensor
    nearest: NearestPatches


def prune(
    model: ProtoPNet,
    loader: Iterable,
    k: int = 6,
    threshold: int = 3,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> PruneResult:
    """Remove the prototypes with fewer than ``threshold`` own-class patches among their
    ``k`` nearest training patches.

    The model is modified in place (:meth:`ProtoPNet.remove_prototypes`): prototype
    vectors, ``class_identity`` and last-layer columns shrink together, and
    ``model.config`` records the new per-class counts. Build a new optimiser and retrain
    the last layer afterwards.

    Parameters
    ----------
    model : ProtoPNet
    loader : iterable of (x, y, ...)
        Un-augmented training images in a fixed order.
    k : int
        Nearest patches per prototype (6 in the paper).
    threshold : int
        Minimum number of own-class patches among them to keep a prototype (3).
    device : torch.device or str, optional
    progress : bool

    Returns
    -------
    PruneResult
    """
    k = check_int(k, "k")
    threshold = check_int(threshold, "threshold", minimum=0)
    if threshold > k:
        raise ValueError(f"threshold ({threshold}) cannot exceed k ({k}).")
    nearest = nearest_patches(model, loader, k, device=device, progress=progress)
    if nearest.label.shape[1] < k:
        raise ValueError(
            f"the loader has only {nearest.label.shape[1]} images, fewer than k = {k}."
        )
    classes = model.prototype_classes.to(nearest.label.device)
    own = (nearest.label == classes[:, None]).sum(dim=1)
    drop = own < threshold
    removed = torch.nonzero(drop).flatten().tolist()
    kept = torch.nonzero(~drop).flatten().tolist()
    if not kept:
        raise ValueError(
            f"pruning would remove all {model.num_prototypes} prototypes (none has "
            f"{threshold} own-class patches among its {k} nearest); train longer or lower "
            "the threshold."
        )
    emptied = sorted(set(classes[drop].tolist()) - set(classes[~drop].tolist()))
    if emptied:
        warnings.warn(
            f"pruning removes every prototype of classes {emptied}; the model can then "
            "only recognise them through negative evidence.",
            stacklevel=2,
        )
    if removed:
        model.remove_prototypes(removed)
    return PruneResult(removed=removed, kept=kept, own_class_count=own.cpu(), nearest=nearest)
