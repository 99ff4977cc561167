"""Explorers of Part II that stay interactive in a static page.

Two widgets, both built on :func:`interp_lib.viz.precomputed_explorer` (every figure
rendered up front, switched in the browser by a ``jslink``):

- :func:`decision_explorer`: a slider over test images; each page shows the image, its
  top prototypes (where they fire on the image, the prototype patch, its points) and the
  class scores.
- :func:`attribution_explorer`: an image x method grid; a drop-down chooses the model, a
  slider the image, each page shows every method's map of that image.

The figure functions (:func:`decision_figure`, :func:`attribution_row`) are usable on
their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .._plumbing import require
from .._validation import check_tensor_ndim
from ._image import draw_box, image_getter, show_image, to_rgb, wrap_label
from .widgets import precomputed_explorer

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..protopnet.explain import Explanation
    from ..protopnet.push import PushResult

__all__ = ["attribution_explorer", "attribution_row", "decision_explorer", "decision_figure"]


def _name(names: Sequence[str] | None, c: int) -> str:
    return str(names[c]) if names is not None else f"class {c}"


def decision_figure(
    image: torch.Tensor,
    explanation: Explanation,
    push_result: PushResult,
    source_images: Any,
    *,
    label: int | None = None,
    class_names: Sequence[str] | None = None,
    top_k: int = 3,
) -> Figure:
    """One decision at a glance: the image, its ``top_k`` prototypes and the class scores.

    Top row: the image (title: prediction and true label), then for each of the top
    prototypes the image with that prototype's similarity heat map and 95th-percentile
    box. Bottom row: the class logits by class index (the explained class highlighted),
    then each prototype, the receptive-field crop of its patch in its source image, with
    ``similarity x weight = points``. Text is at least 9 pt (9 px at the widget's 72 dpi).

    Parameters
    ----------
    image : Tensor, shape (C, H, W)
        The explained image (normalised inputs are min-max scaled for display).
    explanation : Explanation
        From :func:`interp_lib.protopnet.explain` for this image.
    push_result : PushResult
        Where each prototype comes from.
    source_images : tensor, dataset or callable
        The push loader's images, in its order (see ``interp_lib.viz.protopnet``).
    label : int, optional
        The true class, shown in the title.
    class_names : sequence of str, optional
    top_k : int
        Prototypes shown (at most ``len(explanation.evidence)``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "decision_figure")
    check_tensor_ndim(image, "image", "(C, H, W)")
    if not explanation.evidence:
        raise ValueError("the explanation lists no prototype; call explain() with top_k >= 1.")
    get = image_getter(source_images)
    rows = explanation.evidence[: max(1, int(top_k))]
    cols = 1 + len(rows)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 5.8), squeeze=False)
    rgb = to_rgb(image)
    pred = explanation.predicted_class
    title = f"predicted: {wrap_label(_name(class_names, pred))}"
    if label is not None:
        mark = "correct" if int(label) == pred else "WRONG"
        title += f"\ntrue: {wrap_label(_name(class_names, int(label)))} ({mark})"
    show_image(axes[0, 0], rgb, title)
    axes[0, 0].title.set_fontsize(10)
    for c, ev in enumerate(rows, start=1):
        name = wrap_label(_name(class_names, ev.prototype_class))
        show_image(axes[0, c], rgb, f"p{ev.index}\n{name}")
        axes[0, c].title.set_fontsize(10)
        axes[0, c].imshow(ev.similarity_map.numpy(), cmap="jet", alpha=0.45)
        draw_box(axes[0, c], ev.box)
        src = to_rgb(get(int(push_result.sample_index[ev.index])))
        x0, y0, x1, y1 = push_result.box[ev.index].tolist()  # its receptive field
        show_image(axes[1, c], src[y0:y1, x0:x1], "prototype" if c == 1 else None)
        axes[1, c].title.set_fontsize(10)
        axes[1, c].set_xlabel(
            f"{ev.similarity:.2f} x {ev.weight:.2f}\n= {ev.points:.2f} points", fontsize=10
        )
    logits = explanation.logits.detach().float().cpu()
    ax = axes[1, 0]
    colors = ["tab:green" if k == explanation.target_class else "0.7" for k in range(len(logits))]
    ax.barh(range(len(logits))[::-1], logits.tolist(), color=colors)
    ax.set_yticks(list(range(len(logits)))[::-1])
    ax.set_yticklabels([str(k) for k in range(len(logits))], fontsize=10)
    ax.tick_params(axis="x", labelsize=9)
    ax.set_ylabel("class", fontsize=10)
    ax.set_title("logits", fontsize=10)
    top = sum(e.points for e in rows)
    fig.suptitle(
        f"class {_name(class_names, explanation.target_class)}: top {len(rows)} prototypes "
        f"give {top:.2f} of the logit {explanation.logit:.2f} "
        f"(all the others: {explanation.logit - top:+.2f})",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def decision_explorer(
    images: torch.Tensor,
    explanations: Sequence[Explanation],
    push_result: PushResult,
    source_images: Any,
    *,
    labels: Sequence[int] | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    top_k: int = 3,
    dpi: int = 72,
):
    """A slider over test images, each with its :func:`decision_figure` (static-page safe).

    Parameters
    ----------
    images : Tensor, shape (N, C, H, W)
        The explained images.
    explanations : sequence of N Explanation
        ``explain(model, normalised_images)``, in the same order.
    push_result, source_images, class_names, top_k
        As in :func:`decision_figure`.
    labels : sequence of N ints, optional
        True classes.
    dpi : int
        Resolution of the stored figures (they are embedded in the page).

    Returns
    -------
    ipywidgets.VBox
        See :func:`interp_lib.viz.precomputed_explorer`.
    """
    check_tensor_ndim(images, "images", "(N, C, H, W)")
    if len(explanations) != images.shape[0]:
        raise ValueError(
            f"got {len(explanations)} explanations for {images.shape[0]} images; pass one "
            "per image, in the same order."
        )
    if labels is not None and len(labels) != images.shape[0]:
        raise ValueError(f"got {len(labels)} labels for {images.shape[0]} images.")

    def render(i: int):
        lab = None if labels is None else int(labels[i])
        return decision_figure(
            images[i], explanations[i], push_result, source_images, label=lab,
            class_names=class_names, top_k=top_k,
        )  # fmt: skip

    return precomputed_explorer(render, slider=("test image", list(range(len(images)))), dpi=dpi)


def _check_maps(maps: Mapping[str, Mapping[str, torch.Tensor]], n: int, h: int, w: int) -> None:
    if not maps:
        raise ValueError("maps is empty; pass {model name: {method name: (N, 1, H, W)}}.")
    for model, per_method in maps.items():
        if not per_method:
            raise ValueError(f"model {model!r} has no maps.")
        for method, m in per_method.items():
            if not isinstance(m, torch.Tensor) or tuple(m.shape) not in ((n, 1, h, w), (n, h, w)):
                got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
                raise ValueError(
                    f"map {model!r}/{method!r} has shape {got}; expected ({n}, 1, {h}, {w})."
                )


def attribution_row(
    image: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    *,
    mask: torch.Tensor | None = None,
    title: str | None = None,
    cell: float = 2.5,
    max_cols: int = 4,
) -> Figure:
    """One image and each method's map of it, ``max_cols`` panels per row.

    A thin wrapper of :func:`interp_lib.viz.plot_attributions` for one image. Panels of
    ``cell`` inches wrap after ``max_cols`` so that each stays at least 128 pixels wide
    in a page column (a 2.5-in cell at 72 dpi leaves about 135 px of image; four of them
    fit a 720-px column unscaled).

    Parameters
    ----------
    image : Tensor, shape (C, H, W)
    maps : {method name: Tensor (1, H, W) or (H, W)}
    mask : Tensor of bool, shape (H, W), optional
        Ground-truth region, outlined.
    title : str, optional
    cell : float
        Side of one panel in inches.
    max_cols : int
        Panels per row.
    """
    from .baselines import plot_attributions

    h, w = image.shape[-2:]
    fig = plot_attributions(
        image[None],
        {k: v.reshape(1, 1, h, w) for k, v in maps.items()},
        masks=None if mask is None else mask.reshape(1, h, w),
        cell=cell,
        max_cols=max_cols,
    )
    if title:
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
    return fig


def attribution_explorer(
    images: torch.Tensor,
    maps: Mapping[str, Mapping[str, torch.Tensor]],
    *,
    masks: torch.Tensor | None = None,
    titles: Sequence[str] | None = None,
    dpi: int = 72,
):
    """The image x method grid as a widget: a drop-down for the model, a slider for the
    image; each page shows every method's map of that image (static-page safe).

    Parameters
    ----------
    images : Tensor, shape (N, C, H, W)
    maps : {model name: {method name: Tensor (N, 1, H, W)}}
    masks : Tensor of bool, shape (N, H, W), optional
        Ground-truth regions, outlined.
    titles : sequence of N str, optional
        A title per image (e.g. true and predicted class).
    dpi : int

    Returns
    -------
    ipywidgets.VBox
        See :func:`interp_lib.viz.precomputed_explorer`.
    """
    check_tensor_ndim(images, "images", "(N, C, H, W)")
    n, _, h, w = images.shape
    _check_maps(maps, n, h, w)
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images.")

    def render(model: str, i: int):
        per = {k: v.reshape(n, 1, h, w)[i] for k, v in maps[model].items()}
        mask = None if masks is None else masks.reshape(n, h, w)[i]
        t = f"{model}" + (f": {titles[i]}" if titles is not None else "")
        return attribution_row(images[i], per, mask=mask, title=t)

    return precomputed_explorer(
        render, slider=("image", list(range(n))), menu=("model", list(maps)), dpi=dpi
    )
