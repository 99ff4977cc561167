"""Image helpers shared by the figures of :mod:`interp_lib.viz` (private to ``viz``).

Every figure shows images the same way: a tensor ``(C, H, W)`` becomes an ``(H, W, 3)``
RGB array in ``[0, 1]`` (:func:`to_rgb`), boxes are torchvision's ``xyxy`` with an
exclusive end (:func:`draw_box`), and axes carry no ticks (:func:`show_image`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .._plumbing import require

__all__ = ["draw_box", "image_getter", "show_image", "to_rgb"]


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) image -> (H, W, 3) float in [0, 1] (min-max scaled if outside [0, 1]).

    A 2-D ``(H, W)`` or one-channel image is repeated over the three channels; values
    outside ``[0, 1]`` (e.g. normalised inputs) are min-max scaled for display.

    Raises
    ------
    ValueError
        If the image has neither 1 nor 3 channels.
    """
    x = image.detach().float().cpu()
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.shape[0] == 1:
        x = x.repeat(3, 1, 1)
    if x.shape[0] != 3:
        raise ValueError(f"images must have 1 or 3 channels, got shape {tuple(image.shape)}.")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:  # e.g. normalised inputs
        x = (x - lo) / max(hi - lo, 1e-12)
    return x.permute(1, 2, 0)


def image_getter(images: Any) -> Callable[[int], torch.Tensor]:
    """``index -> image (C, H, W)`` from a tensor ``(N, C, H, W)``, a dataset of
    ``(image, label, ...)`` items or a function ``index -> image``."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}.")
        return lambda i: images[i]
    if callable(images) and not hasattr(images, "__getitem__"):
        return images
    if hasattr(images, "__getitem__"):

        def get(i: int) -> torch.Tensor:
            item = images[i]
            return item[0] if isinstance(item, tuple | list) else item

        return get
    raise TypeError(
        "images must be a tensor (N, C, H, W), a dataset of (image, label, ...) or a "
        f"function index -> image, got {type(images).__name__}."
    )


def draw_box(ax, box: Sequence[int], color: str = "yellow") -> None:
    """Draw a box ``(x0, y0, x1, y1)`` (end exclusive) on an image axis."""
    Rectangle = require("matplotlib.patches", "interp_lib.viz.protopnet").Rectangle

    x0, y0, x1, y1 = (int(v) for v in box)
    ax.add_patch(
        Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, lw=2)
    )


def wrap_label(name: str, width: int = 18) -> str:
    """Break a long hyphenated name (``"long-stripes-forked-spike-long"``) into lines of at
    most ``width`` characters at its hyphens, so that titles of neighbouring panels do not
    run into each other. A single word longer than ``width`` stays whole."""
    lines: list[str] = []
    for word in name.split("-"):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += "-" + word
        else:
            lines.append(word)
    return "-\n".join(lines)


def show_image(ax, rgb: torch.Tensor, title: str | None = None) -> None:
    """Show an ``(H, W, 3)`` RGB tensor (from :func:`to_rgb`) without ticks, titled."""
    ax.imshow(rgb.numpy())
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
