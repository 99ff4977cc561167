"""Side-by-side attribution maps: one row per image, one column per method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from .._plumbing import require
from ._image import check_image_tensor, to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["plot_attributions"]


def plot_attributions(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    *,
    masks: torch.Tensor | None = None,
    row_titles: Sequence[str] | None = None,
    overlay: bool = True,
    alpha: float = 0.55,
    cell: float = 1.9,
) -> Figure:
    """A grid: the image, then each method's map, for every image.

    Parameters
    ----------
    images : Tensor, shape (N, C, H, W)
        Images (normalised inputs are min-max scaled for display).
    maps : {method name: Tensor (N, 1, H, W)}
        Attribution maps, e.g. from :func:`interp_lib.baselines.attribute`. Maps with
        negative values are drawn with a diverging colour map centred at 0 (red positive,
        blue negative); non-negative maps with ``inferno`` from 0 to their maximum.
    masks : Tensor of bool, shape (N, H, W) or (N, 1, H, W), optional
        Ground-truth region outlined in white on every panel.
    row_titles : sequence of str, optional
        One label per image (e.g. the class).
    overlay : bool
        Draw maps over a grey copy of the image (else the map alone).
    alpha : float
        Opacity of an overlaid map.
    cell : float
        Size in inches of one panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "plot_attributions")
    check_image_tensor(images, "images", "(N, C, H, W)")
    n, _, h, w = images.shape
    for name, m in maps.items():
        if tuple(m.shape) not in ((n, 1, h, w), (n, h, w)):
            raise ValueError(
                f"map {name!r} has shape {tuple(m.shape)}; expected ({n}, 1, {h}, {w})."
            )
    if masks is not None:
        masks = masks.reshape(n, h, w).detach().cpu().bool()
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(cell * cols, cell * n), squeeze=False)
    for i in range(n):
        rgb = to_rgb(images[i])
        grey = rgb.mean(-1)
        axes[i, 0].imshow(rgb.numpy())
        if row_titles is not None:
            axes[i, 0].set_ylabel(str(row_titles[i]), fontsize=8)
        for j, (name, m) in enumerate(maps.items(), start=1):
            ax = axes[i, j]
            a = m.reshape(n, h, w)[i].detach().float().cpu()
            if float(a.min()) < 0:
                lim = max(float(a.abs().max()), 1e-12)
                cmap, vmin, vmax = "bwr", -lim, lim
            else:
                cmap, vmin, vmax = "inferno", 0.0, max(float(a.max()), 1e-12)
            if overlay:
                ax.imshow(grey.numpy(), cmap="gray", vmin=0, vmax=1)
                ax.imshow(a.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha)
            else:
                ax.imshow(a.numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
            if i == 0:
                ax.set_title(name, fontsize=9)
        if masks is not None:
            for ax in axes[i]:
                ax.contour(masks[i].float().numpy(), levels=[0.5], colors="white", linewidths=0.8)
        axes[i, 0].set_title("image" if i == 0 else "", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
