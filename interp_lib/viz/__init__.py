"""Figures and ipywidgets explorers used by the book (imports matplotlib).

Each submodule holds the figures of one part of the library; their public names are
re-exported here. Every figure function returns a matplotlib object and never calls
``plt.show()``; the explorers return ipywidgets that also work in static HTML.
"""

from .baselines import plot_attributions
from .datasets import PART_COLORS, overlay_masks, sample_grid
from .geometry import stage_explorer, stage_figure
from .id import (
    plot_mu_histogram,
    plot_scaling,
    plot_spectrum,
    plot_twonn_fit,
    twonn_explorer,
    twonn_figure,
)
from .layers import layer_explorer, layer_figure
from .profile import plot_profile
from .protopnet import plot_explanation, plot_nearest_patches, plot_scoring_sheet
from .protopnet_training import (
    plot_architecture,
    plot_history,
    plot_log_similarity,
    plot_prototype_gallery,
)
from .protopnet_widgets import (
    attribution_explorer,
    attribution_row,
    decision_explorer,
    decision_figure,
)
from .widgets import figure_png, live_explorer, precomputed_explorer

__all__ = [
    "PART_COLORS",
    "attribution_explorer",
    "attribution_row",
    "decision_explorer",
    "decision_figure",
    "figure_png",
    "layer_explorer",
    "layer_figure",
    "live_explorer",
    "overlay_masks",
    "plot_architecture",
    "plot_attributions",
    "plot_explanation",
    "plot_history",
    "plot_log_similarity",
    "plot_mu_histogram",
    "plot_nearest_patches",
    "plot_profile",
    "plot_prototype_gallery",
    "plot_scaling",
    "plot_scoring_sheet",
    "plot_spectrum",
    "plot_twonn_fit",
    "precomputed_explorer",
    "sample_grid",
    "stage_explorer",
    "stage_figure",
    "twonn_explorer",
    "twonn_figure",
]
