"""Image-space boxes: bicubic upsampling, the percentile box, boxes to masks.

The paper's visual box for a prototype or a test activation: upsample the similarity map
to the image size (bicubic), keep the pixels at or above its 95th percentile, take their
tight bounding box. Boxes are torchvision's ``(x0, y0, x1, y1)`` (``xyxy``) in pixels with
exclusive ends, so ``image[..., y0:y1, x0:x1]`` is the crop, everywhere in the library.
The original ProtoPNet code stores ``(y0, y1, x0, x1)``; only tests that compare with it
convert (``box[..., [1, 3, 0, 2]]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import check_int

__all__ = [
    "INTERPOLATE_MODES",
    "boxes_to_masks",
    "percentile_box",
    "percentile_threshold",
    "similarity_boxes",
    "upsample_maps",
]

#: ``F.interpolate`` modes that resize a map to the image (``upsample_maps``'s ``mode``).
INTERPOLATE_MODES = ("bilinear", "bicubic", "nearest")


def upsample_maps(
    maps: torch.Tensor, image_size: int | tuple[int, int], mode: str = "bicubic"
) -> torch.Tensor:
    """Resize maps to the image size.

    Parameters
    ----------
    maps : Tensor, shape (..., h, w)
    image_size : int or (int, int)
        Output ``(H, W)``.
    mode : str
        ``F.interpolate`` mode; ``"bicubic"`` (default) as the paper's ``cv2.INTER_CUBIC``.

    Returns
    -------
    Tensor, shape (..., H, W)
    """
    if maps.ndim < 2:
        raise ValueError(f"maps must have shape (..., h, w), got {tuple(maps.shape)}.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    if not flat.is_floating_point():
        flat = flat.float()
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(flat, size=size, mode=mode, **kwargs)
    return out.reshape(*lead, *size)


def percentile_threshold(maps: torch.Tensor, q: float = 95.0) -> torch.Tensor:
    """The ``q``-th percentile of each map, with numpy's default (linear) interpolation.

    Parameters
    ----------
    maps : Tensor, shape (..., H, W)
    q : float
        Percentile in ``[0, 100]``.

    Returns
    -------
    Tensor, shape (...)
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must lie in [0, 100], got {q}.")
    flat = maps.flatten(-2)
    n = flat.shape[-1]
    pos = q / 100.0 * (n - 1)
    lo = int(pos)
    frac = pos - lo
    low = torch.kthvalue(flat, lo + 1, dim=-1).values
    if frac == 0.0 or lo + 1 >= n:
        return low
    high = torch.kthvalue(flat, lo + 2, dim=-1).values
    return low + frac * (high - low)


def _first_last(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = mask.shape[-1]
    m = mask.to(torch.uint8)
    first = m.argmax(dim=-1)
    last = n - m.flip(-1).argmax(dim=-1)
    return first, last


def percentile_box(maps: torch.Tensor, q: float = 95.0) -> torch.Tensor:
    """Tight box around the pixels at or above the ``q``-th percentile of each map.

    Parameters
    ----------
    maps : Tensor, shape (..., H, W)
        Image-sized maps (upsample them first with :func:`upsample_maps`).
    q : float
        Percentile; 95 in the paper.

    Returns
    -------
    Tensor, shape (..., 4), long
        ``(x0, y0, x1, y1)``, exclusive ends. When fewer than ``100 - q`` % of the
        pixels stand out, the threshold equals the background and the box is the whole
        map, as in the original code.
    """
    if maps.ndim < 2:
        raise ValueError(f"maps must have shape (..., H, W), got {tuple(maps.shape)}.")
    thr = percentile_threshold(maps, q)
    mask = maps >= thr[..., None, None]
    y0, y1 = _first_last(mask.any(dim=-1))
    x0, x1 = _first_last(mask.any(dim=-2))
    return torch.stack((x0, y0, x1, y1), dim=-1)


def similarity_boxes(
    maps: torch.Tensor,
    image_size: int | tuple[int, int],
    q: float = 95.0,
    chunk_size: int = 64,
) -> torch.Tensor:
    """Upsample latent-resolution similarity maps and take their percentile boxes.

    Works in blocks of ``chunk_size`` maps to bound memory.

    Parameters
    ----------
    maps : Tensor, shape (M, h, w)
    image_size : int or (int, int)
        Image ``(H, W)``.

    Returns
    -------
    Tensor, shape (M, 4), long
        ``(x0, y0, x1, y1)``, exclusive ends.
    """
    chunk_size = check_int(chunk_size, "chunk_size")
    out = [
        percentile_box(upsample_maps(part, image_size), q) for part in maps.split(chunk_size, dim=0)
    ]
    if not out:
        return torch.zeros(0, 4, dtype=torch.long, device=maps.device)
    return torch.cat(out)


def boxes_to_masks(boxes: torch.Tensor, image_size: int | tuple[int, int]) -> torch.Tensor:
    """Boolean masks of boxes: the one box-to-mask function of the library.

    A pixel ``(i, j)`` is inside when its centre ``(j + 0.5, i + 0.5)`` is: ``x0 <= j + 0.5
    < x1`` and ``y0 <= i + 0.5 < y1``. For integer boxes this is exactly the crop
    ``image[..., y0:y1, x0:x1]``; fractional boxes (e.g. CUB's) follow the same rule.

    Parameters
    ----------
    boxes : Tensor, shape (..., 4)
        ``(x0, y0, x1, y1)`` in pixels, end exclusive (integer or float).
    image_size : int or (int, int)
        ``(H, W)`` of the masks.

    Returns
    -------
    Tensor of bool, shape (..., H, W)
        On the device of ``boxes``.
    """
    boxes = torch.as_tensor(boxes)
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(
            f"boxes must have shape (..., 4) as (x0, y0, x1, y1), got {tuple(boxes.shape)}."
        )
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    dtype = torch.float64 if boxes.dtype == torch.float64 else torch.float32
    b = boxes.to(dtype)  # integer pixel coordinates are exact in float32
    rows = torch.arange(h, dtype=dtype, device=b.device) + 0.5
    cols = torch.arange(w, dtype=dtype, device=b.device) + 0.5
    x0, y0, x1, y1 = (b[..., i, None] for i in range(4))
    in_r = (rows >= y0) & (rows < y1)  # (..., H)
    in_c = (cols >= x0) & (cols < x1)  # (..., W)
    return in_r[..., :, None] & in_c[..., None, :]
