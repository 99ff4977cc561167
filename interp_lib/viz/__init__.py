"""Figures and ipywidgets explorers used by the book (imports matplotlib).

Each submodule holds the figures of one part of the library; their public names are
re-exported here.
"""

from .id import (  # noqa: E402
    plot_mu_histogram,
    plot_scaling,
    plot_spectrum,
    plot_twonn_fit,
    twonn_explorer,
    twonn_figure,
)
from .layers import layer_explorer, layer_figure  # noqa: E402
from .widgets import figure_png, live_explorer, precomputed_explorer  # noqa: E402
from .datasets import PART_COLORS, overlay_masks, sample_grid
from .profile import plot_profile  # noqa: E402
from .protopnet import plot_explanation, plot_nearest_patches, plot_scoring_sheet  # noqa: F401
from .baselines import plot_attributions  # noqa: F401
