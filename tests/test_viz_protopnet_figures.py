"""Part II's figures are readable: own ticks per panel, large thumbnails, no tiny text,
no empty table cells (issue 23, item 8)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from torch.utils.data import DataLoader

from interp_lib.baselines import model_randomisation
from interp_lib.protopnet import explain, push
from interp_lib.viz.baselines import plot_randomisation
from interp_lib.viz.protopnet_training import plot_architecture
from interp_lib.viz.protopnet_widgets import attribution_row, decision_figure
from interp_lib.viz.widgets import figure_png, scroll_table

DPI = 72  # the widgets' default


def _texts(fig):
    fig.canvas.draw()
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip()]


def test_each_sanity_panel_carries_its_own_models_layer_names(make_protopnet, make_images):
    from _helpers import attribution_cnn

    cnn = attribution_cnn()
    ppn = make_protopnet(0).eval()
    x_cnn = torch.rand(2, 3, 16, 16)
    x_ppn = make_images(2)[:][0]
    res = {
        "CNN": {"grad_cam": model_randomisation(cnn, x_cnn, method="grad_cam", layer="3", seed=0)},
        "ProtoPNet": {"prototype": model_randomisation(ppn, x_ppn, method="prototype", seed=0)},
    }
    assert len(res["CNN"]["grad_cam"].layers) != len(res["ProtoPNet"]["prototype"].layers)
    fig, axes = plt.subplots(1, 2)
    for ax, (name, r) in zip(axes, res.items(), strict=True):
        plot_randomisation(r, ax=ax, title=name)
    for ax, r in zip(axes, res.values(), strict=True):
        layers = next(iter(r.values())).layers
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == layers  # the old figure drew the last loop's labels on both panels
        assert len(ax.get_xticks()) == len(ax.lines[0].get_xdata())
    plt.close(fig)
    with pytest.raises(ValueError, match="different layers"):
        plot_randomisation({"a": res["CNN"]["grad_cam"], "b": res["ProtoPNet"]["prototype"]})


def test_attribution_row_thumbnails_are_at_least_128_px():
    import io

    from PIL import Image

    image = torch.rand(3, 32, 32)
    maps = {f"m{i}": torch.rand(1, 32, 32) for i in range(7)}
    fig = attribution_row(image, maps, mask=torch.rand(32, 32) > 0.5, title="t")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 8
    width_in = fig.get_size_inches()[0]
    for ax in axes:
        assert ax.get_position().width * width_in * DPI >= 128
    png = Image.open(io.BytesIO(figure_png(fig, dpi=DPI)))
    assert png.width <= 760  # fits a page column without being scaled down


@pytest.mark.slow
def test_decision_figure_text_is_at_least_9_pt(make_protopnet, make_images):
    model = make_protopnet(0).eval()
    data = make_images(6)
    result = push(model, DataLoader(data, batch_size=6), progress=False)
    x = data.tensors[0][:1]
    e = explain(model, x, top_k=3)[0]
    fig = decision_figure(x[0], e, result, data.tensors[0], label=0, class_names=["a", "b", "c"])
    assert min(t.get_fontsize() for t in _texts(fig)) >= 9
    plt.close(fig)


def test_architecture_diagram_text_is_readable(make_protopnet):
    fig = plot_architecture(make_protopnet(0).eval())
    sizes = [t.get_fontsize() for t in _texts(fig)]
    assert min(sizes) >= 10
    assert fig.get_size_inches()[0] * 90 <= 820  # 90 dpi in the book: barely scaled
    plt.close(fig)


def test_scoring_sheet_tables_have_no_empty_cells(make_protopnet, make_images):
    model = make_protopnet(0).eval()
    x = make_images(2)[:][0]
    e = explain(model, x, top_k=3)[0]
    sheet = e.to_pandas(class_names=["a", "b", "c"])
    assert not sheet.isna().any().any() and len(sheet) == 3
    sums = e.sum_table(top=2)
    assert not sums.isna().any().any()
    assert list(sums.index)[1] == f"the other {model.n_prototypes - 2}"
    assert sums.loc["sum of points", "points"] == pytest.approx(e.logit)
    assert sums.loc["sum of points", "points"] == pytest.approx(
        sums.loc["model logit (float32)", "points"], abs=1e-4
    )


def test_scroll_table_wraps_the_table_in_a_scrolling_box():
    import pandas as pd

    df = pd.DataFrame({"a long column name": [1.23456, float("nan")]})
    html = scroll_table(df, float_format=".2f")._repr_html_()
    assert "overflow-x:auto" in html and "1.23" in html and "nan" not in html.lower()
