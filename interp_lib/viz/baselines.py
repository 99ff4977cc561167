"""Side-by-side attribution maps (one row per image, one column per method) and the
sanity-check curves of a model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .._plumbing import require
from .._validation import check_tensor_ndim
from ._image import to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["plot_attributions", "plot_randomisation"]


def plot_attributions(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    *,
    masks: torch.Tensor | None = None,
    row_titles: Sequence[str] | None = None,
    overlay: bool = True,
    alpha: float = 0.55,
    cell: float = 1.9,
    max_cols: int | None = None,
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
    max_cols : int, optional
        Most panels per figure row: an image's panels wrap onto further rows (so each
        stays large in a narrow page). Default: all on one row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "plot_attributions")
    check_tensor_ndim(images, "images", "(N, C, H, W)")
    n, _, h, w = images.shape
    for name, m in maps.items():
        if tuple(m.shape) not in ((n, 1, h, w), (n, h, w)):
            raise ValueError(
                f"map {name!r} has shape {tuple(m.shape)}; expected ({n}, 1, {h}, {w})."
            )
    if masks is not None:
        masks = masks.reshape(n, h, w).detach().cpu().bool()
    panels = 1 + len(maps)
    cols = panels if max_cols is None else max(1, min(int(max_cols), panels))
    per_image = -(-panels // cols)  # figure rows per image
    fig, axes = plt.subplots(
        n * per_image, cols, figsize=(cell * cols, cell * n * per_image), squeeze=False
    )
    wrapped = per_image > 1
    fontsize = 10 if wrapped else 9

    def at(i: int, k: int):
        return axes[i * per_image + k // cols, k % cols]

    for i in range(n):
        rgb = to_rgb(images[i])
        grey = rgb.mean(-1)
        at(i, 0).imshow(rgb.numpy())
        if row_titles is not None:
            at(i, 0).set_ylabel(str(row_titles[i]), fontsize=8)
        for j, (name, m) in enumerate(maps.items(), start=1):
            ax = at(i, j)
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
            if i == 0 or wrapped:
                ax.set_title(name, fontsize=fontsize)
        if masks is not None:
            for k in range(panels):
                at(i, k).contour(
                    masks[i].float().numpy(), levels=[0.5], colors="white", linewidths=0.8
                )
        at(i, 0).set_title("image" if i == 0 or wrapped else "", fontsize=fontsize)
        for k in range(panels, per_image * cols):
            at(i, k).axis("off")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_randomisation(
    results: Mapping[str, Any],
    *,
    measure: str = "spearman",
    ax=None,
    title: str | None = None,
) -> Figure:
    """The sanity-check curves of one model: similarity to the trained map after each step.

    Parameters
    ----------
    results : {method name: RandomisationResult}
        From :func:`interp_lib.baselines.model_randomisation`, all on the **same model**
        (they must list the same layers: the x-axis is read from them).
    measure : str
        The similarity measure plotted (``"spearman"`` by default).
    ax : matplotlib Axes, optional
        Draw into it; a new figure otherwise.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "plot_randomisation")
    if not results:
        raise ValueError("results is empty; pass {method: RandomisationResult}.")
    layers = None
    for name, r in results.items():
        if layers is None:
            layers = list(r.layers)
        elif list(r.layers) != layers:
            raise ValueError(
                f"the results randomise different layers ({name!r}: {list(r.layers)} vs "
                f"{layers}); plot one model's results per axis."
            )
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
    else:
        fig = ax.figure
    steps = list(range(1, len(layers) + 1))
    for name, r in results.items():
        ax.plot(steps, r.mean(measure).tolist(), marker="o", label=name)
    ax.set_xticks(steps)
    ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=9)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("randomised down to this layer (cumulative, top down)", fontsize=10)
    ax.set_ylabel(f"{measure} with the trained map", fontsize=10)
    if title:
        ax.set_title(title, fontsize=11)
    ax.legend(fontsize=9)
    return fig
