"""The attribution grid figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from interp_lib.viz import plot_attributions


def test_grid_layout_and_colour_maps() -> None:
    import matplotlib.pyplot as plt

    x = torch.rand(2, 3, 8, 8)
    signed = torch.randn(2, 1, 8, 8)
    positive = torch.rand(2, 8, 8)
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    fig = plot_attributions(
        x, {"ig": signed, "grad_cam": positive}, masks=masks, row_titles=["a", "b"]
    )
    axes = fig.axes
    assert len(axes) == 6
    assert [a.get_title() for a in axes[:3]] == ["image", "ig", "grad_cam"]
    ig_img, gc_img = axes[1].images[-1], axes[2].images[-1]
    assert ig_img.get_cmap().name == "bwr" and ig_img.get_clim()[0] == -ig_img.get_clim()[1]
    assert gc_img.get_cmap().name == "inferno" and gc_img.get_clim()[0] == 0.0
    plt.close(fig)
    with pytest.raises(ValueError, match="expected"):
        plot_attributions(x, {"bad": torch.rand(2, 1, 4, 4)})
