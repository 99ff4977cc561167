"""Figures of how a ProtoPNet is built and trained: architecture, similarity, history,
prototype gallery.

Companions of ``interp_lib.viz.protopnet`` (which shows single decisions). Every
function returns a matplotlib ``Figure`` and never calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .._plumbing import require
from .._validation import check_int
from ._image import draw_box, image_getter, show_image, to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..protopnet.history import History
    from ..protopnet.push import PushResult

__all__ = [
    "plot_architecture",
    "plot_history",
    "plot_log_similarity",
    "plot_prototype_gallery",
]

#: Loss terms of a ProtoPNet history, in the order they are drawn.
LOSS_TERMS = ("ce", "clst", "sep", "l1")


def plot_log_similarity(eps: float = 1e-4, *, d_max: float = 10.0, ax=None) -> Figure:
    """The log similarity ``log((d + 1) / (d + eps))`` against the squared distance ``d``,
    with the linear similarity ``-d`` for comparison and the exact values at
    ``d = 0, 1, 2, 10`` marked.

    Parameters
    ----------
    eps : float
        The ``eps`` of the log similarity (1e-4 in the paper).
    d_max : float
        Right end of the distance axis.
    ax : matplotlib Axes, optional
    """
    plt = require("matplotlib.pyplot", "plot_log_similarity")
    from ..protopnet.functional import similarity

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
    else:
        fig = ax.figure
    d = torch.linspace(0, d_max, 2001, dtype=torch.float64)
    ax.plot(d, similarity(d, "log", eps=eps), label=r"log: $\log\frac{d+1}{d+\epsilon}$")
    ax.plot(d, -d, ls="--", color="0.5", label=r"linear: $-d$")
    marks = torch.tensor([0.0, 1.0, 2.0, d_max], dtype=torch.float64)
    values = similarity(marks, "log", eps=eps)
    ax.scatter(marks, values, color="C3", zorder=3)
    for x, y in zip(marks.tolist(), values.tolist(), strict=True):
        ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("squared distance d between a patch and a prototype")
    ax.set_ylabel("similarity")
    ax.set_ylim(-1.0, float(values[0]) * 1.1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_architecture(model: Any, image_size: int | None = None) -> Figure:
    """A block diagram of ``model`` (a ProtoPNet) with the shape after each block.

    ``image -> trunk -> add-on -> distances to the prototypes -> min-pool -> similarity
    -> last layer -> logits``, shapes measured by one forward pass of a zero image.
    """
    plt = require("matplotlib.pyplot", "plot_architecture")
    patches = require("matplotlib.patches", "plot_architecture")

    size = int(image_size or model.image_size)
    param = next(model.parameters())
    with torch.no_grad():
        x = torch.zeros(1, 3, size, size, device=param.device, dtype=param.dtype)
        trunk = model.features(x)
        out = model.forward_all(x)
    P, D = model.prototypes.shape[:2]
    blocks = [
        ("image", f"3 x {size} x {size}"),
        ("trunk f\n(conv layers)", "{} x {} x {}".format(*trunk.shape[1:])),
        ("add-on\n1x1 convs, sigmoid", "{} x {} x {}".format(*out.latent.shape[1:])),
        (
            f"{P} prototypes\nsquared L2 to\nevery patch",
            "{} x {} x {}".format(*out.distances.shape[1:]),
        ),
        ("min-pool\nover patches", f"{P} distances"),
        ("log similarity", f"{P} similarities"),
        ("last layer\n(no bias)", f"{model.n_classes} logits"),
    ]
    # Two rows, read as a snake (left to right, then right to left), so that the text
    # stays at 11 pt in a 720-px page column (one row of seven blocks shrank it to ~7 px).
    per_row = 4
    fig, ax = plt.subplots(figsize=(9, 4.6))
    ax.set_xlim(0, per_row)
    ax.set_ylim(0, 2)
    ax.axis("off")

    def place(i: int) -> tuple[float, float]:
        row, k = divmod(i, per_row)
        col = k if row == 0 else per_row - 1 - k
        return col + 0.5, 1.55 - row  # centre of the block

    for i, (name, shape) in enumerate(blocks):
        cx, cy = place(i)
        colour = "#dbe9f6" if i in (3, 4, 5) else "#eeeeee"
        ax.add_patch(
            patches.FancyBboxPatch(
                (cx - 0.44, cy - 0.27), 0.88, 0.54, boxstyle="round,pad=0.02", fc=colour, ec="0.3"
            )
        )
        ax.text(cx, cy, name, ha="center", va="center", fontsize=11)
        ax.text(cx, cy - 0.37, shape, ha="center", va="center", fontsize=10.5, color="0.25")
        if i:
            px, py = place(i - 1)
            if py == cy:  # same row: a horizontal arrow between the blocks
                sign = 1 if cx > px else -1
                start, end = (px + sign * 0.46, py), (cx - sign * 0.46, cy)
            else:  # down to the next row
                start, end = (px, py - 0.45), (cx, cy + 0.29)
            ax.annotate("", end, start, arrowprops=dict(arrowstyle="->", lw=1.4))
    ax.set_title(
        f"ProtoPNet: {P} prototypes of depth {D} ({P // model.n_classes} per class)",
        fontsize=12,
    )
    fig.tight_layout()
    return fig


def plot_history(history: History, *, title: str | None = None) -> Figure:
    """Loss terms and accuracies of a :func:`~interp_lib.protopnet.fit` run, step by step.

    Left: the training loss terms (cross-entropy, cluster, separation, L1) of the warm-up
    and joint epochs. Right: training and validation accuracy after every step, with the
    pushes marked (a dashed line) and the accuracy right after each push as a red dot, so
    the drop a push causes and the recovery of the last-layer stage can be read off.
    """
    plt = require("matplotlib.pyplot", "plot_history")

    rows = history.rows()
    if not rows:
        raise ValueError("the history is empty: nothing to plot.")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.6))
    epochs = [r for r in rows if r["stage"] in ("warmup", "joint")]
    for term in LOSS_TERMS:
        key = f"train_{term}"
        pts = [(r["step"], r[key]) for r in epochs if key in r]
        if pts:
            ax_loss.plot(*zip(*pts, strict=True), marker="o", ms=3, label=term)
    ax_loss.set_yscale("symlog", linthresh=1e-2)  # the L1 term is 100x the others
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss term (symlog)")
    ax_loss.set_title("loss terms (warm-up and joint epochs)")
    ax_loss.legend(fontsize=8)
    for split, style in (("train", "-"), ("val", "-")):
        key = f"{split}_accuracy"
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax_acc.plot(*zip(*pts, strict=True), style, marker=".", label=split)
    pushes = [r for r in rows if r["stage"] == "push"]
    for i, r in enumerate(pushes):
        ax_acc.axvline(r["step"], color="C3", ls="--", lw=0.8, label="push" if i == 0 else None)
        if r.get("val_accuracy") is not None:
            ax_acc.plot(r["step"], r["val_accuracy"], "o", color="C3")
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.set_title("accuracy (red: right after a push)")
    ax_acc.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_prototype_gallery(
    push_result: PushResult,
    images: Any,
    *,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    groups: Mapping[str, Sequence[int]] | None = None,
    max_per_row: int | None = None,
    heatmap_alpha: float = 0.4,
) -> Figure:
    """Every prototype of the chosen classes (or groups) on its source image.

    One row per class, one column per prototype of that class: the source training image
    with the prototype's similarity heat map (upsampled), its receptive-field box (white)
    and its 95th-percentile activation box (yellow). Prototypes that share a source patch
    with another prototype are titled "duplicate". With ``groups`` the rows are those
    groups instead, e.g. the part each prototype sits on
    (:meth:`interp_lib.protopnet.Placement.by_part`), and each title gives the
    prototype's class number.

    Parameters
    ----------
    push_result : PushResult
        From :func:`interp_lib.protopnet.push`.
    images : tensor, dataset or callable
        Source images in the push loader's order (see ``interp_lib.viz.protopnet``).
    classes : sequence of int, optional
        Classes to show (default: all).
    class_names : sequence of str, optional
        Row labels (without ``groups``).
    groups : mapping str -> sequence of int, optional
        ``{row label: prototype indices}``; empty groups are left out.
    max_per_row : int, optional
        Show at most this many prototypes per row (the first ones).
    heatmap_alpha : float
        Opacity of the heat map.
    """
    plt = require("matplotlib.pyplot", "plot_prototype_gallery")
    from ..protopnet.boxes import upsample_maps

    get = image_getter(images)
    proto_classes = push_result.prototype_classes

    def class_name(c: int) -> str:
        return class_names[c] if class_names is not None else f"class {c}"

    if groups is not None:
        n = len(proto_classes)
        labels, rows = [], []
        for label, idx in groups.items():
            idx = [int(j) for j in idx]
            bad = [j for j in idx if not 0 <= j < n]
            if bad:
                raise ValueError(f"group {label!r} names prototypes {bad}; the model has {n}.")
            if idx:
                labels.append(f"{label} ({len(idx)})")
                rows.append(idx)
        if not rows:
            raise ValueError("every group is empty: there is no prototype to show.")
    else:
        all_classes = sorted(set(proto_classes.tolist()))
        classes = all_classes if classes is None else [int(c) for c in classes]
        unknown = sorted(set(classes) - set(all_classes))
        if unknown:
            raise ValueError(f"classes {unknown} have no prototypes; the model has {all_classes}.")
        rows = [torch.nonzero(proto_classes == c).flatten().tolist() for c in classes]
        labels = [class_name(c) for c in classes]
    if max_per_row is not None:
        rows = [r[: check_int(max_per_row, "max_per_row")] for r in rows]
    per_class = rows
    n_cols = max(len(p) for p in per_class)
    duplicated = {j for group in push_result.duplicates() for j in group}
    fig, axes = plt.subplots(
        len(per_class), n_cols, figsize=(1.6 * n_cols, 1.75 * len(per_class)), squeeze=False
    )
    heat = upsample_maps(push_result.similarity_map.unsqueeze(1).float(), push_result.image_size)
    for row, (name, protos) in enumerate(zip(labels, per_class, strict=True)):
        for col in range(n_cols):
            ax = axes[row, col]
            if col >= len(protos):
                ax.axis("off")
                continue
            j = protos[col]
            src = to_rgb(get(int(push_result.sample_index[j])))
            label = f"#{j}" + (" duplicate" if j in duplicated else "")
            if groups is not None:  # the class by number: species names are long
                label += f", class {int(proto_classes[j])}"
            show_image(ax, src, label)
            ax.imshow(heat[j, 0].cpu().numpy(), cmap="jet", alpha=heatmap_alpha)
            draw_box(ax, push_result.box[j].tolist(), color="white")
            draw_box(ax, push_result.activation_box[j].tolist(), color="yellow")
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig
