"""Push (prototype projection): replace each prototype by its nearest own-class patch.

One pass over the un-augmented training images in a fixed order. For every batch all
prototypes are handled at once (a masked arg-min over samples and locations), so the cost
is that of one inference pass plus a few tensor reductions; there is no Python loop over
prototypes and no file I/O. Images and files are the caller's business: ``sample_index``
in the result indexes the loader's dataset order.

Deliberate differences from the original code (``push.py`` of cfchen-duke/ProtoPNet)
------------------------------------------------------------------------------------
* **Activation box.** ``PushResult.activation_box`` and ``similarity_map`` come from the
  similarity map of the *pushed* prototype on its source image (its maximum is at the
  source patch, distance 0). The original computes them from the distances of the
  prototype *before* the push. The choice of the source patch is the same.
* **A class without push images.** If the loader has no image of a class that owns
  prototypes, :func:`push` raises a ``ValueError`` and leaves the prototypes unchanged.
  The original silently overwrites those prototypes with zero vectors.
* **linear similarity.** The boxes use ``-d`` (the original uses ``D s^2 - d``); bicubic
  upsampling is shift-equivariant, so the boxes are the same.
* Boxes are torchvision's ``(x0, y0, x1, y1)`` (end exclusive); the original stores
  ``(y0, y1, x0, x1)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import RandomSampler, SubsetRandomSampler, WeightedRandomSampler

from .._plumbing import check_device, evaluating, to_device, unpack_batch
from .._plumbing import progress as progress_bar
from .._validation import check_labels
from . import functional as PF
from .boxes import similarity_boxes
from .model import ProtoPNet, is_protopnet
from .receptive_field import receptive_field_box


@dataclass
class PushResult:
    """Provenance of every prototype after a push.

    Attributes
    ----------
    sample_index : Tensor, shape (P,), long
        Position of the source image in the loader's order.
    location : Tensor, shape (P, 2), long
        ``(h, w)`` of the source patch in the similarity map.
    distance : Tensor, shape (P,)
        Distance from the prototype before the push to its source patch (how far it
        moved).
    box : Tensor, shape (P, 4), long
        Receptive-field box of the source patch in image space, ``(x0, y0, x1, y1)``
        (end exclusive).
    activation_box : Tensor, shape (P, 4), long
        95th-percentile box ``(x0, y0, x1, y1)`` of the pushed prototype's upsampled
        similarity map on its source image (the original code uses the map before the
        push; see the module docstring).
    similarity_map : Tensor, shape (P, H', W')
        Similarity of the pushed prototype to every patch of its source image.
    prototype_classes : Tensor, shape (P,), long
    image_size : tuple of int
        ``(H, W)`` of the images.
    """

    sample_index: torch.Tensor
    location: torch.Tensor
    distance: torch.Tensor
    box: torch.Tensor
    activation_box: torch.Tensor
    similarity_map: torch.Tensor
    prototype_classes: torch.Tensor
    image_size: tuple[int, int]

    def duplicates(self) -> list[list[int]]:
        """Groups of prototypes that were pushed onto the same patch."""
        keys = torch.cat((self.sample_index[:, None], self.location), dim=1)
        _, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
        groups: dict[int, list[int]] = {}
        for proto, group in enumerate(inverse.tolist()):
            if counts[group] > 1:
                groups.setdefault(group, []).append(proto)
        return list(groups.values())


def check_ordered_loader(loader: Iterable) -> None:
    """Refuse a loader that visits samples in a random order.

    Push (and the other passes that report ``sample_index``) must see the training images
    in a fixed order, un-augmented, so that indices mean something.
    """
    sampler = getattr(loader, "sampler", None)
    random_kinds = (RandomSampler, SubsetRandomSampler, WeightedRandomSampler)
    if isinstance(sampler, random_kinds) or getattr(sampler, "shuffle", False):
        raise ValueError(
            f"the loader draws samples in random order ({type(sampler).__name__}); "
            "sample indices would be meaningless. Build it with shuffle=False (and "
            "without augmentation), e.g. DataLoader(train_set_no_aug, batch_size=..., "
            "shuffle=False)."
        )


def labelled_batch(
    batch, n_classes: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(B, C, H, W)`` and labels ``(B,)`` of one batch of a labelled loader, on
    ``device``; the labels are checked against the model's ``n_classes``
    (:func:`interp_lib._validation.check_labels`). Items after the labels (masks, file
    names, ids) are ignored."""
    if isinstance(batch, tuple | list):
        batch = tuple(batch[:2])
    b = to_device(unpack_batch(batch, need_labels=True), device)
    return b.x, check_labels(b.y, n_classes, n_images=b.x.shape[0])


def labelled_batches(
    loader: Iterable,
    n_classes: int,
    device: torch.device,
    *,
    show_progress: bool = False,
    desc: str = "",
    same_size: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The non-empty batches of ``loader`` as checked ``(images, labels)`` on ``device``
    (:func:`labelled_batch`), all of one image size when ``same_size``.

    Raises
    ------
    ValueError
        If a batch has another image size than the first one (``same_size``).
    """
    size = None
    for batch in progress_bar(loader, show_progress, desc):
        x, y = labelled_batch(batch, n_classes, device)
        if x.shape[0] == 0:
            continue
        if same_size and x.ndim == 4:
            if size is None:
                size = tuple(x.shape[-2:])
            elif tuple(x.shape[-2:]) != size:
                raise ValueError(
                    f"every image must have the same size, got {size} and then "
                    f"{tuple(x.shape[-2:])}; resize the data set (e.g. with a fixed "
                    "Resize/CenterCrop)."
                )
        yield x, y


def push(
    model: ProtoPNet,
    loader: Iterable,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    percentile: float = 95.0,
) -> PushResult:
    """Project every prototype onto its nearest latent patch of its own class.

    Parameters
    ----------
    model : ProtoPNet
        Modified in place: ``model.prototypes`` is overwritten. Run in eval mode (the
        previous mode is restored) and in full precision.
    loader : iterable of (x, y, ...)
        The un-augmented training images ``x`` (N, C, H, W) with labels ``y`` (N,), in a
        fixed order (a ``DataLoader`` with ``shuffle=False``).
    device : torch.device or str, optional
        Where batches go; defaults to the model's device (it must be the model's device
        type, see the device policy in ``interp_lib._plumbing``).
    progress : bool
        Show a progress bar.
    percentile : float
        Percentile of the activation boxes (95 in the paper).

    Returns
    -------
    PushResult

    Raises
    ------
    ValueError
        If the loader shuffles, yields no images, has labels outside the model's classes,
        or has no image of a class that owns prototypes (the original code would set
        those prototypes to zero; here nothing is changed).
    TypeError
        If ``model`` is not a ProtoPNet or the images are not floating point.

    Notes
    -----
    Deliberate differences from the original code are listed in the module docstring
    (``interp_lib/protopnet/push.py``): the activation box comes from the pushed
    prototype's map, and a class without push images is an error.

    Warns
    -----
    UserWarning
        When several prototypes of a class land on the same patch.
    """
    return _push(model, loader, device=device, progress=progress, percentile=percentile)[0]


#: Most bytes of latent maps a push keeps for the last-layer solve that follows it.
KEEP_LATENTS_BYTES = 2**30


def _push(
    model: ProtoPNet,
    loader: Iterable,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    percentile: float = 95.0,
    keep_latents: bool = False,
) -> tuple[PushResult, list[torch.Tensor] | None, torch.Tensor | None]:
    """:func:`push`, and with ``keep_latents`` the latent map of every batch and all
    labels, in the loader's order (``None`` if the maps would take more than
    ``KEEP_LATENTS_BYTES``): what the convex last-layer solve after a push needs,
    without a second pass over the images."""
    if not is_protopnet(model):
        raise TypeError(f"model must be a ProtoPNet, got {type(model).__name__}.")
    check_ordered_loader(loader)
    device = check_device(model, device)
    protos = model.prototypes.detach()
    num_p, s = model.n_prototypes, model.prototype_size
    classes = model.prototype_classes
    best_d = torch.full((num_p,), float("inf"), device=protos.device)
    best_sample = torch.full((num_p,), -1, dtype=torch.long, device=protos.device)
    best_loc = torch.zeros(num_p, 2, dtype=torch.long, device=protos.device)
    best_patch = protos.clone()
    best_map: torch.Tensor | None = None
    offset, image_size = 0, None
    kept: list[torch.Tensor] | None = [] if keep_latents else None
    labels: list[torch.Tensor] = []
    kept_bytes = 0
    arange_p = torch.arange(num_p, device=protos.device)
    with evaluating(model), torch.no_grad(), torch.autocast(device.type, enabled=False):
        for x, y in labelled_batches(
            loader, model.n_classes, device, show_progress=progress, desc="push"
        ):
            image_size = tuple(x.shape[-2:])
            z = model.latent(x)
            if kept is not None:
                kept.append(z)
                labels.append(y)
                kept_bytes += z.numel() * z.element_size()
                if kept_bytes > KEEP_LATENTS_BYTES:
                    kept = None
            values, loc = PF.argmin_location(model.distances(z))  # (n, P), (n, P, 2)
            own = y[:, None] == classes[None, :]  # (n, P): image of the prototype's class
            values = values.masked_fill(~own, float("inf"))
            batch_d, batch_sample = values.min(dim=0)  # first minimum
            batch_loc = loc[batch_sample, arange_p]
            improved = batch_d < best_d
            patches = PF.gather_patches(z, batch_sample, batch_loc, s)
            src_map = PF.paired_patch_distances(z[batch_sample], patches, model.similarity)
            if best_map is None:
                best_map = torch.full_like(src_map, float("inf"))
            best_patch = torch.where(improved[:, None, None, None], patches, best_patch)
            best_map = torch.where(improved[:, None, None], src_map, best_map)
            best_d = torch.where(improved, batch_d, best_d)
            best_sample = torch.where(improved, batch_sample + offset, best_sample)
            best_loc = torch.where(improved[:, None], batch_loc, best_loc)
            offset += x.shape[0]
    missing = best_sample < 0
    if offset == 0:
        raise ValueError("the push loader yielded no images.")
    if bool(missing.any()):
        lost = sorted(set(classes[missing].tolist()))
        raise ValueError(
            f"the push loader has no images of classes {lost}, which own prototypes; "
            "pass the whole (un-augmented) training set whose labels match the model's "
            "classes."
        )
    with torch.no_grad():
        model.prototypes.copy_(best_patch)
    sim_map = PF.similarity(best_map, model.similarity, model.eps)
    result = PushResult(
        sample_index=best_sample,
        location=best_loc,
        distance=best_d,
        box=receptive_field_box(model.prototype_receptive_field, best_loc, image_size),
        activation_box=similarity_boxes(sim_map, image_size, percentile),
        similarity_map=sim_map,
        prototype_classes=classes.clone(),
        image_size=image_size,
    )
    groups = result.duplicates()
    if groups:
        shown = ", ".join(f"{g} (class {int(classes[g[0]])})" for g in groups[:5]) + (
            " ..." if len(groups) > 5 else ""
        )
        warnings.warn(
            f"{sum(len(g) for g in groups)} prototypes share a source patch with another "
            f"prototype of their class: {shown}. They are now duplicates; consider "
            "pruning them or more prototype diversity.",
            stacklevel=3,
        )
    return result, kept, (torch.cat(labels) if kept is not None else None)
