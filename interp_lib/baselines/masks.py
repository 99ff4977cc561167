"""Ground-truth regions as masks: CUB keypoints and boxes to the ``(N, J, H, W)`` format.

The localisation metrics (pointing game, energy inside a mask, prototype consistency,
stability and purity) take boolean masks; the procedural birds provide them directly,
CUB-200-2011 provides keypoints ``(x, y, visible)`` and bounding boxes.
"""

from __future__ import annotations

import torch

from ..protopnet.boxes import boxes_to_masks


def keypoints_to_masks(
    keypoints: torch.Tensor, size: tuple[int, int], *, radius: float = 0.0
) -> torch.Tensor:
    """One mask per keypoint: a disk of ``radius`` pixels around each visible keypoint.

    Parameters
    ----------
    keypoints : Tensor, shape (N, J, 3) or (N, J, 2)
        ``(x, y[, visible])`` in pixel coordinates of the image (as
        ``interp_lib.datasets.cub`` returns them); invisible keypoints give empty masks.
    size : (H, W)
        Image size.
    radius : float
        Disk radius; 0 marks the single pixel that holds the keypoint, which makes
        "a part is in the box" the keypoint-in-box rule of Huang et al. and PIP-Net.

    Returns
    -------
    Tensor of bool, shape (N, J, H, W)
    """
    kp = torch.as_tensor(keypoints, dtype=torch.float32)
    if kp.ndim != 3 or kp.shape[-1] not in (2, 3):
        raise ValueError(
            f"keypoints must have shape (N, J, 3) or (N, J, 2), got {tuple(kp.shape)}."
        )
    h, w = size
    visible = kp[..., 2] > 0 if kp.shape[-1] == 3 else torch.ones(kp.shape[:2], dtype=torch.bool)
    col = kp[..., 0].floor().clamp(0, w - 1)
    row = kp[..., 1].floor().clamp(0, h - 1)
    visible = (
        visible & (kp[..., 0] >= 0) & (kp[..., 0] <= w) & (kp[..., 1] >= 0) & (kp[..., 1] <= h)
    )
    rr = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    cc = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    d2 = (rr - row[..., None, None]) ** 2 + (cc - col[..., None, None]) ** 2
    return (d2 <= radius**2) & visible[..., None, None]


def boxes_to_region_masks(
    boxes: torch.Tensor, image_size: tuple[int, int], *, box_format: str = "xywh"
) -> torch.Tensor:
    """Masks ``(N, H, W)`` of one box per image (e.g. CUB's bird bounding box).

    Parameters
    ----------
    boxes : Tensor, shape (N, 4)
        ``(x, y, width, height)`` (``box_format="xywh"``, CUB's) or the library's
        ``(x0, y0, x1, y1)`` (``"xyxy"``), in pixels of the image; a pixel is inside when
        its centre is (:func:`interp_lib.protopnet.boxes_to_masks`).
    image_size : (H, W)

    Returns
    -------
    Tensor of bool, shape (N, H, W)
    """
    b = torch.as_tensor(boxes, dtype=torch.float32)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(b.shape)}.")
    if not bool(torch.isfinite(b).all()):
        bad = int((~torch.isfinite(b)).any(1).sum())
        raise ValueError(
            f"boxes contain NaN or infinity in {bad} of {b.shape[0]} rows; give finite pixel "
            "coordinates."
        )
    if box_format == "xywh":
        b = torch.cat((b[:, :2], b[:, :2] + b[:, 2:]), dim=1)
    elif box_format != "xyxy":
        raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}.")
    return boxes_to_masks(b, image_size)
