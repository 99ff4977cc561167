"""Figures of ProtoPNet training: architecture, log similarity, history, prototype gallery."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from torch.utils.data import DataLoader

from interp_lib.protopnet import Schedule, fit, push
from interp_lib.viz.protopnet_training import (
    plot_architecture,
    plot_history,
    plot_log_similarity,
    plot_prototype_gallery,
)

pytestmark = pytest.mark.slow  # trains a tiny ProtoPNet once for the module


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from _helpers import labelled_images, tiny_protopnet

    model = tiny_protopnet()
    data = labelled_images(12)
    sched = Schedule(epochs=2, warmup_epochs=1, push_start=1, push_every=1)
    history = fit(model, DataLoader(data, batch_size=6, shuffle=True),
                  val_loader=DataLoader(data, batch_size=12),
                  push_loader=DataLoader(data, batch_size=12), schedule=sched, progress=False)  # fmt: skip
    result = push(model, DataLoader(data, batch_size=12), progress=False)
    return model, history, result, data


def test_log_similarity_marks_the_exact_values():
    fig = plot_log_similarity()
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert {"9.210", "0.693", "0.405", "0.095"} <= texts  # the paper's values at d = 0, 1, 2, 10
    plt.close(fig)


def test_architecture_shows_measured_shapes(trained):
    model = trained[0]
    fig = plot_architecture(model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "3 x 16 x 16" in texts and f"{model.n_classes} logits" in texts
    assert f"{model.n_prototypes} distances" in texts
    plt.close(fig)


def test_history_marks_every_push(trained):
    history = trained[1]
    fig = plot_history(history)
    ax_acc = fig.axes[1]
    pushes = [r for r in history.rows() if r["stage"] == "push"]
    assert pushes
    vlines = [ln for ln in ax_acc.lines if ln.get_linestyle() == "--"]
    assert len(vlines) == len(pushes)
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        plot_history(type(history)([], None, None))


def test_gallery_has_one_panel_per_prototype(trained):
    model, _, result, data = trained
    fig = plot_prototype_gallery(result, data)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == model.n_prototypes
    assert all(len(ax.patches) == 2 for ax in shown)  # receptive-field and activation boxes
    plt.close(fig)
    fig = plot_prototype_gallery(result, data, classes=[1], class_names=["a", "b", "c"])
    assert len([ax for ax in fig.axes if ax.images]) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="no prototypes"):
        plot_prototype_gallery(result, data, classes=[7])
    # rows given as groups (e.g. the part each prototype sits on), empty ones left out
    groups = {"wing": [0, 3, 1], "beak": [], "background": [2]}
    fig = plot_prototype_gallery(result, data, groups=groups, max_per_row=2)
    rows = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in rows] == ["wing (3)", "background (1)"]
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert len(titles) == 3 and titles[0].startswith("#0, class ")
    plt.close(fig)
    with pytest.raises(ValueError, match="names prototypes"):
        plot_prototype_gallery(result, data, groups={"wing": [99]})
    with pytest.raises(ValueError, match="every group is empty"):
        plot_prototype_gallery(result, data, groups={"beak": []})
    # duplicates are titled as such
    result.sample_index[:] = 0
    result.location[:] = 0
    fig = plot_prototype_gallery(result, data)
    assert all("duplicate" in ax.get_title() for ax in fig.axes if ax.images)
    plt.close(fig)
    torch.testing.assert_close(result.sample_index, torch.zeros_like(result.sample_index))
