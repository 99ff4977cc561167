"""Figures and ipywidgets explorers used by the book (imports matplotlib).

Each submodule holds the figures of one part of the library; their public names are
re-exported here.
"""

from .datasets import PART_COLORS, overlay_masks, sample_grid
from .profile import plot_profile  # noqa: E402
