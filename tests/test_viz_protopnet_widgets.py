"""Part II's static-page explorers: decisions of a ProtoPNet, the image x method grid."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import itertools

import matplotlib.pyplot as plt
import pytest
import torch
from _helpers import labelled_images, require_module, tiny_protopnet
from torch.utils.data import DataLoader

from interp_lib.protopnet import explain, push
from interp_lib.viz.protopnet_widgets import (
    attribution_explorer,
    attribution_row,
    decision_explorer,
    decision_figure,
)

require_module("ipywidgets")
pytestmark = pytest.mark.slow  # pushes a tiny ProtoPNet and renders a dozen figures


@pytest.fixture(scope="module")
def pushed():
    model = tiny_protopnet().eval()
    data = labelled_images(6)
    result = push(model, DataLoader(data, batch_size=6), progress=False)
    x = data.tensors[0][:3]
    return model, data, result, x, explain(model, x, top_k=4)


def test_decision_figure_shows_the_top_prototypes_and_their_points(pushed):
    _model, data, result, x, expl = pushed
    fig = decision_figure(x[0], expl[0], result, data.tensors[0], label=1, top_k=2)
    axes = fig.axes
    assert len(axes) == 2 * 3  # image + 2 prototypes, two rows
    ev = expl[0].evidence[:2]
    labels = [ax.get_xlabel() for ax in axes[4:6]]
    assert labels == [f"{e.similarity:.2f} x {e.weight:.2f}\n= {e.points:.2f} points" for e in ev]
    assert axes[1].get_title().startswith(f"p{ev[0].index}\n")
    title = axes[0].get_title()
    assert ("correct" in title) == (expl[0].predicted_class == 1)
    plt.close(fig)


def test_decision_figure_rejects_a_batch(pushed):
    _model, data, result, x, expl = pushed
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        decision_figure(x, expl[0], result, data.tensors[0])


def test_decision_explorer_has_one_page_per_image(pushed):
    _model, data, result, x, expl = pushed
    box = decision_explorer(x, expl, result, data.tensors[0], labels=[0, 1, 2], top_k=2)
    (slider,) = box.controls
    (stack,) = box.stacks
    assert len(stack.children) == 3
    assert len(slider.options) == 3
    pngs = [child.value for child in stack.children]
    assert all(p[:4] == b"\x89PNG" for p in pngs)
    assert len(set(pngs)) == 3  # each image its own figure
    with pytest.raises(ValueError, match="2 explanations for 3 images"):
        decision_explorer(x, expl[:2], result, data.tensors[0])


def test_attribution_explorer_pages_models_and_images():
    x = torch.rand(2, 3, 8, 8)
    maps = {
        "cnn": {"a": torch.rand(2, 1, 8, 8), "b": torch.rand(2, 1, 8, 8)},
        "protopnet": {"a": torch.rand(2, 1, 8, 8)},
    }
    box = attribution_explorer(x, maps, masks=torch.rand(2, 8, 8) > 0.5, titles=["u", "v"])
    dropdown, *sliders = box.controls
    assert [o[0] for o in dropdown.options] == ["cnn", "protopnet"]
    assert len(sliders) == 2
    outer, *inner = box.stacks
    assert len(outer.children) == 2
    assert [len(s.children) for s in inner] == [2, 2]
    with pytest.raises(ValueError, match="'cnn'/'b' has shape"):
        attribution_explorer(x, {"cnn": {"b": torch.rand(3, 1, 8, 8)}})
    with pytest.raises(ValueError, match="maps is empty"):
        attribution_explorer(x, {})


def test_attribution_row_has_a_panel_per_method():
    fig = attribution_row(torch.rand(3, 8, 8), {"a": torch.rand(8, 8), "b": torch.rand(1, 8, 8)})
    assert [ax.get_title() for ax in fig.axes] == ["image", "a", "b"]
    plt.close(fig)


def test_decision_figure_titles_stay_apart_with_long_class_names(pushed):
    """Long hyphenated class names are wrapped so that neighbouring panel titles do not
    overlap (they did in the book's widget)."""
    model, data, result, x, expl = pushed
    names = [f"long-stripes-forked-spike-long-{c}" for c in range(model.n_classes)]
    fig = decision_figure(x[0], expl[0], result, data.tensors[0], label=1, class_names=names,
                          top_k=3)  # fmt: skip
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes[:4]]  # the top row
    for left, right in itertools.pairwise(boxes):
        assert left.x1 <= right.x0, (left, right)
    plt.close(fig)
