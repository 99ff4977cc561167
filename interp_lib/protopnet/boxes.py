"""Image-space boxes from similarity maps: bicubic upsampling and the percentile box.

The paper's visual box for a prototype or a test activation: upsample the similarity map
to the image size (bicubic), keep the pixels at or above its 95th percentile, take their
tight bounding box. Boxes are ``(y0, y1, x0, x1)`` with exclusive ends, so
``image[..., y0:y1, x0:x1]`` is the crop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_maps(
    maps: torch.Tensor, size: int | tuple[int, int], mode: str = "bicubic"
) -> torch.Tensor:
    """Resize maps to the image size.

    Parameters
    ----------
    maps : Tensor, shape (..., h, w)
    size : int or (int, int)
        Output ``(H, W)``.
    mode : str
        ``F.interpolate`` mode; ``"bicubic"`` (default) as the paper's ``cv2.INTER_CUBIC``.

    Returns
    -------
    Tensor, shape (..., H, W)
    """
    if maps.ndim < 2:
        raise ValueError(f"maps must have shape (..., h, w), got {tuple(maps.shape)}.")
    size = (size, size) if isinstance(size, int) else tuple(size)
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
        ``(y0, y1, x0, x1)``, exclusive ends. When fewer than ``100 - q`` % of the
        pixels stand out, the threshold equals the background and the box is the whole
        map, as in the original code.
    """
    if maps.ndim < 2:
        raise ValueError(f"maps must have shape (..., H, W), got {tuple(maps.shape)}.")
    thr = percentile_threshold(maps, q)
    mask = maps >= thr[..., None, None]
    y0, y1 = _first_last(mask.any(dim=-1))
    x0, x1 = _first_last(mask.any(dim=-2))
    return torch.stack((y0, y1, x0, x1), dim=-1)


def similarity_boxes(
    maps: torch.Tensor,
    size: int | tuple[int, int],
    q: float = 95.0,
    chunk: int = 64,
) -> torch.Tensor:
    """Upsample latent-resolution similarity maps and take their percentile boxes.

    Works in chunks of ``chunk`` maps to bound memory.

    Parameters
    ----------
    maps : Tensor, shape (M, h, w)
    size : int or (int, int)
        Image ``(H, W)``.

    Returns
    -------
    Tensor, shape (M, 4), long
    """
    out = [percentile_box(upsample_maps(part, size), q) for part in maps.split(chunk, dim=0)]
    if not out:
        return torch.zeros(0, 4, dtype=torch.long, device=maps.device)
    return torch.cat(out)
