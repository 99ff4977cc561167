"""Figures of :mod:`interp_lib.studies.protopnet_geometry`: ID profiles through training.

The functions read a :class:`~interp_lib.studies.protopnet_geometry.StageStudy` by its
attributes (``stages``, ``layers``, ``gride_ranks``, ``test_accuracy``, ``grid(rank)``,
``twin(rank)``), so that drawing it does not import the studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._plumbing import require

__all__ = ["stage_explorer", "stage_figure"]


def _scale_label(rank: int | None) -> str:
    return "TwoNN" if rank is None else f"Gride, n2 = {rank}"


def stage_figure(study: Any, stage: int | str, rank: int | None = None, *, ax=None, ymax=None):
    """The ID profile of one training stage over the others and the untrained twin.

    Parameters
    ----------
    study : StageStudy
    stage : int or str
        Index or label of the highlighted stage.
    rank : int, optional
        Gride rank ``n2`` (a value of ``study.gride_ranks``); ``None`` for TwoNN.
    ax : matplotlib Axes, optional
    ymax : float, optional
        Upper limit of the ID axis (default: the largest value of any stage or the twin,
        so that every page of an explorer shares the axis).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = require("matplotlib.pyplot", "interp_lib.viz.stage_figure")
    i = study.stages.index(stage) if isinstance(stage, str) else int(stage)
    i %= len(study.stages)
    grid, twin = study.grid(rank).numpy(), study.twin(rank).numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
    else:
        fig = ax.figure
    xs = list(range(len(study.layers)))
    for j, row in enumerate(grid):
        if j != i:
            ax.plot(xs, row, color="0.8", lw=1, zorder=1)
    ax.plot(xs, twin, color="0.3", ls="--", marker="s", ms=4, label="untrained twin", zorder=2)
    ax.plot(xs, grid[i], color="C0", lw=2.2, marker="o", label=study.stages[i], zorder=3)
    ax.set_xticks(xs)
    ax.set_xticklabels(study.layers, rotation=30, ha="right", fontsize=8)
    top = ymax if ymax is not None else 1.05 * float(max(grid.max(), twin.max()))
    ax.set_ylim(0, top)
    ax.set_ylabel(f"ID ({_scale_label(rank)}), mean over classes")
    acc = study.test_accuracy[i]
    ax.set_title(f"stage {i + 1}/{len(study.stages)}: {study.stages[i]} (test accuracy {acc:.2f})",
                 fontsize=10)  # fmt: skip
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    return fig


def stage_explorer(study: Any, ranks: Sequence[int | None] | None = None, *, dpi: int = 80):
    """A precomputed explorer: a slider over the training stages, a menu over the scales.

    Works in static HTML (:func:`interp_lib.viz.precomputed_explorer`): one figure per
    (scale, stage), drawn once.

    Parameters
    ----------
    study : StageStudy
    ranks : sequence of int or None, optional
        The scales of the menu: ``None`` (TwoNN) and Gride ranks; default TwoNN and up to
        two Gride ranks of the study (the middle one and the largest).
    dpi : int, default 80

    Returns
    -------
    ipywidgets.VBox
    """
    plt = require("matplotlib.pyplot", "interp_lib.viz.stage_explorer")
    from .widgets import precomputed_explorer

    if ranks is None:
        g = list(study.gride_ranks)
        ranks = [None, *dict.fromkeys((g[len(g) // 2], g[-1]))] if g else [None]
    labels = {_scale_label(r): r for r in ranks}
    tops = {}
    for label, r in labels.items():
        tops[label] = 1.05 * float(max(study.grid(r).max(), study.twin(r).max()))

    def render(label: str, stage: str):
        fig = stage_figure(study, stage, labels[label], ymax=tops[label])
        plt.close(fig)
        return fig

    return precomputed_explorer(
        render, slider=("stage", list(study.stages)), menu=("scale", list(labels)), dpi=dpi
    )
