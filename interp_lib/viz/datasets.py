"""Figures of the image sets: a grid of samples, with part masks overlaid for the birds."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._plumbing import require
from ._image import to_rgb, wrap_label

__all__ = ["PART_COLORS", "overlay_masks", "sample_grid"]

# one distinct colour per part (tab10), used for overlays and legends
PART_COLORS = (
    (0.12, 0.47, 0.71),
    (1.00, 0.50, 0.05),
    (0.17, 0.63, 0.17),
    (0.84, 0.15, 0.16),
    (0.58, 0.40, 0.74),
    (0.55, 0.34, 0.29),
    (0.89, 0.47, 0.76),
    (0.50, 0.50, 0.50),
    (0.74, 0.74, 0.13),
    (0.09, 0.75, 0.81),
)


#: Old private name, still imported by :mod:`interp_lib.viz.protopnet_widgets`; new code
#: imports :func:`interp_lib.viz._image.to_rgb`.
_to_rgb = to_rgb


def overlay_masks(
    image: torch.Tensor, masks: torch.Tensor, *, alpha: float = 0.7, grey: bool = True
) -> torch.Tensor:
    """Blend part masks, each in its colour from ``PART_COLORS``, over an image.

    Parameters
    ----------
    image : torch.Tensor, shape (C, H, W)
        Image with 1 or 3 channels.
    masks : torch.Tensor, shape (P, H, W), bool
        One mask per part (P <= 10); a pixel in several masks takes the last one.
    alpha : float in [0, 1]
        Opacity of the overlay.
    grey : bool
        Show the image in grey underneath, so that the part colours stand out.

    Returns
    -------
    torch.Tensor, shape (H, W, 3), float in [0, 1]
        Pixels outside every mask keep the (grey) image.
    """
    rgb = to_rgb(image).clone()
    if grey:
        rgb = (rgb @ torch.tensor([0.299, 0.587, 0.114])).unsqueeze(-1).repeat(1, 1, 3)
    if masks.ndim != 3 or masks.shape[1:] != rgb.shape[:2]:
        raise ValueError(
            f"masks must have shape (P, {rgb.shape[0]}, {rgb.shape[1]}), got {tuple(masks.shape)}."
        )
    if masks.shape[0] > len(PART_COLORS):
        raise ValueError(f"at most {len(PART_COLORS)} parts can be shown, got {masks.shape[0]}.")
    for p in range(masks.shape[0]):
        m = masks[p].bool().cpu()
        col = torch.tensor(PART_COLORS[p])
        rgb[m] = (1 - alpha) * rgb[m] + alpha * col
    return rgb


def sample_grid(
    images: torch.Tensor,
    labels: torch.Tensor | Sequence[int] | None = None,
    *,
    masks: torch.Tensor | None = None,
    part_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    n: int = 16,
    ncols: int = 8,
    alpha: float = 0.7,
    cell: float = 1.3,
):
    """A grid of the first ``n`` samples, titled by class, with optional part overlays.

    With ``masks`` every sample is shown twice, side by side: the image and the image with
    its part masks overlaid (a legend names the parts).

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W)
        Images (1 or 3 channels; normalised images are min-max scaled for display).
    labels : torch.Tensor or sequence of int, shape (N,), optional
        Class of each image, used in titles.
    masks : torch.Tensor, shape (N, P, H, W), bool, optional
        Part masks (e.g. ``birds(...).masks``).
    part_names, class_names : sequence of str, optional
        Names for the legend and the titles.
    n, ncols : int
        Number of samples and columns of the grid.
    alpha : float
        Opacity of the mask overlay.
    cell : float
        Size of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "interp_lib.viz.sample_grid")
    Patch = require("matplotlib.patches", "interp_lib.viz.sample_grid").Patch

    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}.")
    if masks is not None and masks.shape[0] != images.shape[0]:
        raise ValueError(f"masks has {masks.shape[0]} samples, images has {images.shape[0]}.")
    n = min(int(n), images.shape[0])
    per = 2 if masks is not None else 1
    ncols = max(per, (int(ncols) // per) * per)
    panels = n * per
    nrows = max(1, -(-panels // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.4),
                             squeeze=False)  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i * per]
        ax.imshow(to_rgb(images[i]).numpy())
        if labels is not None:
            y = int(labels[i])
            title = wrap_label(class_names[y]) if class_names is not None else str(y)
            ax.set_title(title, fontsize=7)
        if masks is not None:
            axes.flat[i * per + 1].imshow(overlay_masks(images[i], masks[i], alpha=alpha).numpy())
    if masks is not None:
        names = part_names or [f"part {p}" for p in range(masks.shape[1])]
        handles = [Patch(color=PART_COLORS[p], label=nm) for p, nm in enumerate(names)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7,
                   frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0.06 if masks is not None else 0, 1, 1))
    return fig
