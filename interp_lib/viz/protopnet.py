"""ProtoPNet figures: "this looks like that", the scoring sheet, nearest training patches.

Images are passed as tensors ``(C, H, W)`` (normalised inputs are min-max scaled for
display). Source images of prototypes come from ``images``: a tensor ``(N, C, H, W)`` in
the push loader's order, a dataset whose items are ``(image, label, ...)``, or a function
``index -> image``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .._plumbing import require
from ._image import draw_box, image_getter, show_image, to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..protopnet.explain import Explanation, NearestPatches
    from ..protopnet.push import PushResult

__all__ = ["plot_explanation", "plot_nearest_patches", "plot_scoring_sheet"]


# Old private names, still imported by viz.protopnet_widgets; new code imports viz._image.
_getter, _box, _show = image_getter, draw_box, show_image


def _class_label(c: int, class_names: Sequence[str] | None) -> str:
    """``class_names[c]`` (a readable name), or ``"class c"`` without names."""
    return str(class_names[c]) if class_names is not None else f"class {c}"


def plot_explanation(
    image: torch.Tensor,
    explanation: Explanation,
    push_result: PushResult,
    images: Any,
    *,
    max_rows: int = 3,
    heatmap_alpha: float = 0.45,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """The paper's "this looks like that" figure for one image, with both boxes.

    One row per top prototype: the test image with the prototype's similarity heat map,
    its 95th-percentile box (yellow) and the receptive field of its most similar patch
    (cyan); the prototype itself, i.e. the receptive-field crop of the patch it was
    pushed onto (the pixels the prototype is a function of); the source image with both
    boxes, their areas given as a share of the image; and ``similarity x weight =
    points``. The paper draws only the 95th-percentile box, which on a coarse patch grid
    can cover most of the image (see :mod:`interp_lib.protopnet.boxes_eval`).

    Parameters
    ----------
    image : Tensor, shape (C, H, W)
        The explained image.
    explanation : Explanation
        From :func:`interp_lib.protopnet.explain` for this image.
    push_result : PushResult
        From the last push: where each prototype comes from. Any object with
        ``sample_index`` (P,) and ``box`` (P, 4) serves (e.g. the nearest patches of
        :func:`~interp_lib.protopnet.nearest_patches` with ``k=1``, columns taken); its
        ``activation_box`` (the yellow box on the source image) may be missing or
        ``None``.
    images : tensor, dataset or callable
        Source images in the push loader's order (see module docstring).
    max_rows : int
        Prototypes shown (at most ``len(explanation.evidence)``).
    heatmap_alpha : float
        Opacity of the similarity heat map.
    class_names : sequence of str, optional
        Names of the classes (default ``"class k"``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "plot_explanation")
    from ..protopnet.boxes_eval import box_area_share

    get = image_getter(images)
    rows = explanation.evidence[: max(1, int(max_rows))]
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.7 * len(rows)), squeeze=False)
    test_rgb = to_rgb(image)
    size = tuple(test_rgb.shape[:2])
    for r, ev in enumerate(rows):
        ax = axes[r]
        show_image(ax[0], test_rgb, "this (test image)" if r == 0 else None)
        ax[0].imshow(ev.similarity_map.numpy(), cmap="jet", alpha=heatmap_alpha)
        draw_box(ax[0], ev.box)
        draw_box(ax[0], ev.rf_box, color="cyan")
        src = to_rgb(get(int(push_result.sample_index[ev.index])))
        rf = push_result.box[ev.index]
        pct_boxes = getattr(push_result, "activation_box", None)
        pct = None if pct_boxes is None else pct_boxes[ev.index]
        x0, y0, x1, y1 = rf.tolist()
        show_image(
            ax[1], src[y0:y1, x0:x1], "looks like that\n(receptive field)" if r == 0 else None
        )
        show_image(ax[2], src, "prototype's source image" if r == 0 else None)
        if pct is not None:
            draw_box(ax[2], pct.tolist())
        draw_box(ax[2], rf.tolist(), color="cyan")
        shares = box_area_share(torch.stack((rf, rf if pct is None else pct)), size).tolist()
        ax[2].set_xlabel(
            f"cyan: receptive field {100 * shares[0]:.0f} %"
            + ("" if pct is None else f"\nyellow: 95th pct. box {100 * shares[1]:.0f} %"),
            fontsize=9,
        )
        ax[3].axis("off")
        ax[3].text(
            0.0,
            0.5,
            f"prototype {ev.index} ({_class_label(ev.prototype_class, class_names)})\n"
            f"similarity {ev.similarity:.3f}\nx weight {ev.weight:.3f}\n"
            f"= {ev.points:.3f} points",
            va="center",
            fontsize=11,
        )
    target = _class_label(explanation.target_class, class_names)
    predicted = _class_label(explanation.predicted_class, class_names)
    fig.suptitle(
        f"{target}: logit {explanation.logit:.3f} "
        f"(predicted: {predicted}); box areas as a share of the image"
    )
    fig.tight_layout()
    return fig


def plot_scoring_sheet(
    explanation: Explanation, *, ax=None, class_names: Sequence[str] | None = None
) -> Figure:
    """Bar chart of the points of the top prototypes, plus the rest, summing to the logit.

    Parameters
    ----------
    explanation : Explanation
    ax : matplotlib Axes, optional
        Draw into it; a new figure otherwise.
    class_names : sequence of str, optional
        Names of the classes (default ``"class k"``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "plot_scoring_sheet")

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(explanation.evidence) + 2.0))
    else:
        fig = ax.figure
    labels = [f"p{ev.index} ({_class_label(ev.prototype_class, class_names)})"
              for ev in explanation.evidence]  # fmt: skip
    values = [ev.points for ev in explanation.evidence]
    colors = [
        "tab:green" if ev.prototype_class == explanation.target_class else "tab:gray"
        for ev in explanation.evidence
    ]
    labels.append("all other prototypes")
    values.append(explanation.rest_points)
    colors.append("tab:blue")
    Patch = require("matplotlib.patches", "interp_lib.viz.plot_scoring_sheet").Patch

    # The legend goes below the axis, clear of the bars.
    ax.legend(
        handles=[Patch(color="tab:green", label="own-class prototype"),
                 Patch(color="tab:gray", label="other class's prototype"),
                 Patch(color="tab:blue", label="sum of the rest")],
        fontsize=9, loc="upper center", bbox_to_anchor=(0.4, -0.16), ncol=2, frameon=False,
    )  # fmt: skip
    pos = list(range(len(values)))[::-1]
    ax.barh(pos, values, color=colors)
    ax.set_yticks(pos)
    ax.set_yticklabels(labels, fontsize=10)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("points = similarity x weight")
    ax.set_title(
        f"{_class_label(explanation.target_class, class_names)}: points sum to logit "
        f"{explanation.logit:.3f}"
    )
    fig.tight_layout()
    return fig


def plot_nearest_patches(
    nearest: NearestPatches,
    images: Any,
    *,
    prototypes: Sequence[int] | None = None,
    prototype_classes: torch.Tensor | None = None,
    max_prototypes: int = 6,
) -> Figure:
    """The global view: each prototype's nearest training patches, nearest first.

    Parameters
    ----------
    nearest : NearestPatches
        From :func:`interp_lib.protopnet.nearest_patches`.
    images : tensor, dataset or callable
        The images of the loader ``nearest`` was computed on, in its order.
    prototypes : sequence of int, optional
        Which prototypes to show (default: the first ``max_prototypes``).
    prototype_classes : Tensor, shape (P,), optional
        To mark patches of another class (red titles).
    max_prototypes : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "plot_nearest_patches")

    get = image_getter(images)
    num_p, k = nearest.sample_index.shape
    if prototypes is None:
        chosen = list(range(min(num_p, max(1, int(max_prototypes)))))
    else:
        chosen = [int(p) for p in prototypes]
    fig, axes = plt.subplots(len(chosen), k, figsize=(1.6 * k, 1.8 * len(chosen)), squeeze=False)
    for r, p in enumerate(chosen):
        for c in range(k):
            rgb = to_rgb(get(int(nearest.sample_index[p, c])))
            x0, y0, x1, y1 = nearest.box[p, c].tolist()
            label = int(nearest.label[p, c])
            show_image(axes[r, c], rgb[y0:y1, x0:x1], f"y={label} d={nearest.distance[p, c]:.2f}")
            if prototype_classes is not None and label != int(prototype_classes[p]):
                axes[r, c].title.set_color("red")
        axes[r, 0].set_ylabel(f"prototype {p}", fontsize=9)
    fig.suptitle("nearest training patches (receptive fields), nearest first")
    fig.tight_layout()
    return fig
