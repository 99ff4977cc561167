"""ID figures and widgets: they draw what they claim, and controls change the output."""

import ipywidgets as W
import matplotlib
from ipywidgets.widgets.widget_link import Link

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from interp_lib import viz
from interp_lib.datasets import gaussian
from interp_lib.id import block_analysis, pca_spectrum, twonn
from interp_lib.id.naive import naive_twonn


def test_fit_plot_line_has_the_estimated_slope():
    res = twonn(gaussian(500, 3, seed=0))
    ax = viz.plot_twonn_fit(res)
    x, y = ax.lines[0].get_data()
    assert (y[-1] - y[0]) / (x[-1] - x[0]) == pytest.approx(res.dimension)
    assert len(ax.collections[0].get_offsets()) == 450
    viz.plot_mu_histogram(res)
    plt.close("all")


def test_spectrum_and_scaling_plots():
    X = gaussian(400, 4, 10, seed=0)
    ax = viz.plot_spectrum(pca_spectrum(X), variance=0.9)
    assert ax.lines[0].get_ydata()[-1] == pytest.approx(1.0)
    ax = viz.plot_scaling(block_analysis(X, min_size=50), true_dimension=4)
    assert ax.get_xscale() == "log"
    plt.close("all")


def test_precomputed_explorer_links_controls_to_distinct_figures():
    calls = []

    def render(m, s):
        calls.append((m, s))
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, s + 10 * m])
        return fig

    box = viz.precomputed_explorer(render, menu=("m", [0, 1]), slider=("s", [1, 2, 3]))
    assert calls == [(m, s) for m in (0, 1) for s in (1, 2, 3)]
    outer, *inner = box.stacks
    assert len(outer.children) == 2 and all(len(st.children) == 3 for st in inner)
    images = [bytes(img.value) for st in inner for img in st.children]
    assert len(set(images)) == 6  # every grid point is its own figure
    # the browser switches figures through jslinks, with no kernel
    links = [w for w in W.Widget.widgets.values() if isinstance(w, Link)]
    targets = {(id(link.source[0]), id(link.target[0])) for link in links}
    assert (id(box.controls[0]), id(outer)) in targets
    for sl, st in zip(box.controls[1:], inner, strict=True):
        assert (id(sl), id(st)) in targets


def test_live_explorer_recomputes_on_change():
    w = viz.twonn_explorer(live=True, n=400)
    before = w.image.value
    w.controls["d"].value = 6
    assert w.image.value != before
    plt.close("all")


def test_naive_baseline_agrees_on_clean_data_and_breaks_on_duplicates():
    X = gaussian(600, 5, seed=0, dtype=torch.float64)
    assert naive_twonn(X) == pytest.approx(twonn(X).dimension, rel=1e-9)
    Xd = torch.cat([X, X[:60]])
    assert not naive_twonn(Xd) == pytest.approx(twonn(Xd).dimension, rel=0.05)


def test_layer_explorer_has_one_figure_per_layer():
    from torch import nn

    from interp_lib.profile import collect_activations, layer_ids

    net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    X = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    prof = layer_ids(net, X, n_resamples=0, progress=False)
    acts = collect_activations(net, X, list(prof.modules), progress=False)
    acts = dict(zip(prof.layers, acts.values(), strict=True))
    box = viz.layer_explorer(prof, acts)
    (stack,) = box.stacks
    assert len(stack.children) == len(prof.layers)
    assert len({bytes(img.value) for img in stack.children}) == len(prof.layers)
    with pytest.raises(ValueError, match="choose one of"):
        viz.layer_figure(prof, acts, "nope")
    plt.close("all")


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (5.4012, 0.0042, "5.401 ± 0.004"),  # never "5.4 ± 0.0"
        (31.27, 2.6, "31 ± 3"),
        (3.0123, 0.14, "3.01 ± 0.14"),  # a leading 1 keeps two digits
        (120.3, 15.2, "120 ± 15"),
        (0.5, 0.3, "0.5 ± 0.3"),
    ],
)
def test_format_estimate_gives_the_error_one_significant_digit(value, error, text):
    from interp_lib.viz.id import format_estimate

    assert format_estimate(value, error) == text


def test_format_estimate_without_an_error():
    from interp_lib.viz.id import format_estimate

    assert format_estimate(5.4012, 0.0) == "5.4 ± 0"
    assert format_estimate(5.4012, float("nan")) == "5.4 ± nan"
