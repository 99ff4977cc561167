"""Figures of the image sets."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import itertools

import pytest
import torch

from interp_lib.viz.datasets import PART_COLORS, overlay_masks, sample_grid


def test_overlay_colours_only_masked_pixels():
    img = torch.full((3, 8, 8), 0.5)
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :2] = True
    masks[1, 6:] = True
    out = overlay_masks(img, masks, alpha=1.0, grey=False)
    assert out.shape == (8, 8, 3)
    assert torch.allclose(out[0, 0], torch.tensor(PART_COLORS[0]))
    assert torch.allclose(out[7, 3], torch.tensor(PART_COLORS[1]))
    assert torch.allclose(out[3:6], torch.full((3, 8, 3), 0.5))
    half = overlay_masks(img, masks, alpha=0.5, grey=False)
    assert torch.allclose(half[0, 0], 0.25 + 0.5 * torch.tensor(PART_COLORS[0]))
    with pytest.raises(ValueError, match="masks must have shape"):
        overlay_masks(img, masks[:, :4])


def test_sample_grid_with_and_without_masks():
    import matplotlib.pyplot as plt

    from interp_lib.datasets import birds, digits

    ds = birds(1, classes=3, image_size=32, seed=0)
    fig = sample_grid(ds.images, ds.labels, masks=ds.masks, part_names=ds.part_names, n=3, ncols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 6  # each sample twice: image and overlay
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 7
    plt.close(fig)
    d = digits("test", normalize=True)
    fig = sample_grid(d.images, d.labels, n=5, ncols=5, class_names=d.class_names)
    assert [ax.get_title() for ax in fig.axes if ax.images] == [str(int(y)) for y in d.labels[:5]]
    plt.close(fig)


def test_sample_grid_titles_of_long_class_names_do_not_overlap():
    import matplotlib.pyplot as plt

    from interp_lib.datasets import birds
    from interp_lib.viz.datasets import wrap_label

    assert wrap_label("long-stripes-forked-spike-long") == "long-stripes-\nforked-spike-long"
    assert wrap_label("gull") == "gull"
    assert (
        wrap_label("averyveryverylongwordwithouthyphens") == "averyveryverylongwordwithouthyphens"
    )
    ds = birds(1, classes=5, image_size=32, seed=0)
    names = ds.info["class_names"]
    fig = sample_grid(ds.images, ds.labels, class_names=names, n=5, ncols=5)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.images]
    assert len(boxes) == 5
    for left, right in itertools.pairwise(boxes):  # neighbouring titles stay apart
        assert left.x1 <= right.x0, (left, right)
    plt.close(fig)
