"""What a prototype's box shows, and the chance level of every part count made from it.

ProtoPNet draws two boxes for a prototype, and they say different things:

* the **receptive-field box** of the patch the prototype was pushed onto
  (``PushResult.box``; :func:`interp_lib.protopnet.receptive_field_box`): every pixel that
  can influence that patch, so the prototype *is* a function of this crop;
* the paper's **95th-percentile box** of the upsampled similarity map
  (``PushResult.activation_box``): where the map is high after bicubic upsampling, which
  on a coarse grid can be most of the image.

:func:`box_area_share` states both sizes. The part counts of the book (which part lies
under the centre of a prototype's box, how many of its nearest patches show the same
part) get their chance level from boxes of the same size at random positions
(:func:`random_box_centre_parts`), and the class purity of a part prototype gets its
ceiling from the class definitions of the procedural birds (:func:`variant_sharing`): a
prototype that encodes one part variant cannot be purer than the share of classes that
have that variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .._validation import check_int, check_tensor_ndim, make_generator

__all__ = [
    "VariantSharing",
    "box_area_share",
    "mode_count",
    "parts_at_box_centres",
    "random_box_centre_parts",
    "variant_sharing",
]


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size}.")
    return int(h), int(w)


def _boxes(boxes: object) -> torch.Tensor:
    boxes = torch.as_tensor(boxes)
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(
            f"boxes must have shape (..., 4) as (x0, y0, x1, y1), got {tuple(boxes.shape)}."
        )
    return boxes


def box_area_share(boxes: torch.Tensor, image_size: int | tuple[int, int]) -> torch.Tensor:
    """Area of each box ``(x0, y0, x1, y1)`` (end exclusive) as a share of the image.

    Parameters
    ----------
    boxes : Tensor, shape (..., 4)
    image_size : int or (H, W)

    Returns
    -------
    Tensor, shape (...), float
        ``(x1 - x0) (y1 - y0) / (H W)``, each side clipped at 0.
    """
    boxes = _boxes(boxes).double()
    h, w = _size(image_size)
    width = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    height = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    return (width * height / (h * w)).float()


def parts_at_box_centres(
    part_masks: torch.Tensor, sample_index: torch.Tensor, boxes: torch.Tensor
) -> torch.Tensor:
    """The part under the centre pixel of each box (``-1``: background).

    Parameters
    ----------
    part_masks : Tensor of bool, shape (N, J, H, W)
        Visible pixels of each part (at most one part per pixel, as the birds' masks).
    sample_index : Tensor of long, shape (...)
        The image of each box.
    boxes : Tensor, shape (..., 4)
        ``(x0, y0, x1, y1)``; the centre pixel is ``((x0 + x1) // 2, (y0 + y1) // 2)``.

    Returns
    -------
    Tensor of long, shape (...)
        Index into the part axis, or ``-1`` where no part covers the centre.
    """
    part_masks = check_tensor_ndim(part_masks, "part_masks", "(N, parts, H, W)")
    boxes = _boxes(boxes).long()
    sample_index = torch.as_tensor(sample_index).long()
    if tuple(sample_index.shape) != tuple(boxes.shape[:-1]):
        raise ValueError(
            f"sample_index {tuple(sample_index.shape)} must have the shape of boxes without "
            f"its last axis {tuple(boxes.shape[:-1])}."
        )
    h, w = part_masks.shape[-2:]
    cx = ((boxes[..., 0] + boxes[..., 2]) // 2).clamp(0, w - 1)
    cy = ((boxes[..., 1] + boxes[..., 3]) // 2).clamp(0, h - 1)
    at = part_masks[sample_index, :, cy, cx]  # (..., J)
    return torch.where(at.any(-1), at.long().argmax(-1), torch.full_like(cx, -1))


def random_box_centre_parts(
    part_masks: torch.Tensor,
    sample_index: torch.Tensor,
    boxes: torch.Tensor,
    *,
    n_draws: int = 20,
    seed: int | torch.Generator | None = 0,
) -> torch.Tensor:
    """:func:`parts_at_box_centres` for boxes of the same sizes at random positions.

    Each box keeps its width and height and its image; its position is drawn uniformly
    among those that fit inside the image (independently per box and per draw). This is
    the chance level of any count made from box centres: what a box of that size would
    score if it ignored the image.

    Returns
    -------
    Tensor of long, shape (n_draws, ...)
    """
    part_masks = check_tensor_ndim(part_masks, "part_masks", "(N, parts, H, W)")
    boxes = _boxes(boxes).long()
    n_draws = check_int(n_draws, "n_draws")
    g = make_generator(seed)
    h, w = part_masks.shape[-2:]
    bw = (boxes[..., 2] - boxes[..., 0]).clamp(1, w)
    bh = (boxes[..., 3] - boxes[..., 1]).clamp(1, h)
    shape = (n_draws, *boxes.shape[:-1])
    x0 = (torch.rand(shape, generator=g) * (w - bw + 1).float()).long()
    y0 = (torch.rand(shape, generator=g) * (h - bh + 1).float()).long()
    drawn = torch.stack((x0, y0, x0 + bw, y0 + bh), dim=-1)
    index = torch.as_tensor(sample_index).long().expand(shape)
    return parts_at_box_centres(part_masks, index, drawn)


def mode_count(parts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The most common value along the last axis and how often it occurs.

    Parameters
    ----------
    parts : Tensor of long, shape (..., K)
        E.g. the part under each of a prototype's ``K`` nearest patches.

    Returns
    -------
    mode, count : Tensor of long, shape (...)
        The smallest of the most common values, and its count.
    """
    parts = torch.as_tensor(parts).long()
    if parts.ndim < 1 or parts.shape[-1] == 0:
        raise ValueError(f"parts must have shape (..., K) with K >= 1, got {tuple(parts.shape)}.")
    mode = parts.mode(dim=-1).values
    return mode, (parts == mode[..., None]).sum(-1)


@dataclass
class VariantSharing:
    """For each prototype, the variant of its part in its class and who else has it.

    Attributes
    ----------
    part : list of str
        The part under the prototype (``"background"`` or a part name).
    variant : list of str
        Its class's variant of that part (``""`` for a part without variants or the
        background).
    n_sharing : Tensor of long, shape (P,)
        Classes whose birds have that variant (the prototype's class included; all
        classes for the background and for parts without variants).
    own_share_ceiling : Tensor, shape (P,)
        ``1 / n_sharing`` (classes of equal size): the expected share of own-class images
        among the nearest patches of a prototype that responds to that variant alone.
    """

    part: list[str]
    variant: list[str]
    n_sharing: torch.Tensor
    own_share_ceiling: torch.Tensor


def variant_sharing(
    prototype_parts: torch.Tensor,
    prototype_classes: torch.Tensor,
    class_parts: Sequence[Mapping[str, str]],
    part_names: Sequence[str],
) -> VariantSharing:
    """How many classes share the part variant each prototype sits on.

    Parameters
    ----------
    prototype_parts : Tensor of long, shape (P,)
        Index into ``part_names`` of the part under each prototype (``-1``: background),
        e.g. :func:`parts_at_box_centres` of ``PushResult.box``.
    prototype_classes : Tensor of long, shape (P,)
    class_parts : sequence of dict
        ``{part: variant}`` per class (``dataset.info["class_parts"]`` of the birds).
    part_names : sequence of str
        The part axis of the masks (``interp_lib.datasets.birds.PARTS``).

    Returns
    -------
    VariantSharing
    """
    prototype_parts = torch.as_tensor(prototype_parts).long().flatten()
    prototype_classes = torch.as_tensor(prototype_classes).long().flatten()
    if prototype_parts.shape != prototype_classes.shape:
        raise ValueError(
            f"prototype_parts ({prototype_parts.numel()}) and prototype_classes "
            f"({prototype_classes.numel()}) must have one entry per prototype."
        )
    n_classes = len(class_parts)
    if n_classes == 0:
        raise ValueError("class_parts is empty; give one {part: variant} dict per class.")
    if bool((prototype_classes < 0).any() | (prototype_classes >= n_classes).any()):
        raise ValueError(f"prototype_classes must lie in [0, {n_classes}).")
    parts, variants, counts = [], [], []
    for j, c in zip(prototype_parts.tolist(), prototype_classes.tolist(), strict=True):
        if j < -1 or j >= len(part_names):
            raise ValueError(f"part index {j} is outside [-1, {len(part_names)}).")
        name = "background" if j < 0 else str(part_names[j])
        variant = class_parts[c].get(name, "") if j >= 0 else ""
        shared = (
            sum(1 for spec in class_parts if spec.get(name) == variant) if variant else n_classes
        )
        parts.append(name)
        variants.append(variant)
        counts.append(shared)
    n_sharing = torch.tensor(counts, dtype=torch.long)
    return VariantSharing(parts, variants, n_sharing, 1.0 / n_sharing.float())
