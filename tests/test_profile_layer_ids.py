"""layer_ids(), LayerProfile, default checkpoints and relative depth."""

from __future__ import annotations

import itertools
import math

import matplotlib
import pytest
import torch
import torchvision
from torch import nn

from interp_lib.profile import (
    LayerProfile,
    collect_activations,
    default_checkpoints,
    layer_ids,
    relative_depth,
)

matplotlib.use("Agg")


def rank_k_linear(k: int, d_in: int = 20, d_out: int = 40) -> nn.Linear:
    g = torch.Generator().manual_seed(k)
    a = torch.linalg.qr(torch.randn(d_out, k, generator=g)).Q
    b = torch.linalg.qr(torch.randn(d_in, k, generator=g)).Q.T
    lin = nn.Linear(d_in, d_out)
    with torch.no_grad():
        lin.weight.copy_(a @ b)
        lin.bias.copy_(torch.randn(d_out, generator=g))
    return lin


@pytest.mark.parametrize("k", [2, 5])
def test_linear_layer_of_rank_k_has_pc_id_k(k):
    net = nn.Sequential(rank_k_linear(k), nn.Tanh(), nn.Linear(40, 3))
    x = torch.randn(400, 20, generator=torch.Generator().manual_seed(0))
    prof = layer_ids(
        net,
        x,
        ["input", "0"],
        estimator="pca",
        estimator_kwargs={"variance": 0.99},
        n_resamples=3,
        progress=False,
    )
    assert prof.dimensions == (20.0, float(k))
    assert prof.errors[1] == 0.0  # every subsample has rank k too
    assert prof.n_features == (20, 40)


def test_twonn_profile_of_a_known_manifold():
    # points on a 2-D plane in 10-D, pushed through an invertible linear map
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 2, generator=g) @ torch.randn(2, 10, generator=g)
    net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
    prof = layer_ids(net, x, n_resamples=4, progress=False, label="plane")
    assert prof.layers == ("input", "0", "1")
    for d in prof.dimensions:
        assert abs(d - 2) < 0.25
    assert all(0 < e < 0.3 for e in prof.errors)
    assert all(len(r) == 4 for r in prof.resamples)
    mle = layer_ids(net, x, ["output"], estimator="mle", n_resamples=0, progress=False)
    assert abs(mle.dimensions[0] - 2) < 0.25 and math.isnan(mle.errors[0])


def test_seeded_error_bars_and_callable_estimator():
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(3))
    a = layer_ids(net, x, n_resamples=3, seed=1, progress=False)
    b = layer_ids(net, x, n_resamples=3, seed=1, progress=False)
    c = layer_ids(net, x, n_resamples=3, seed=2, progress=False)
    assert a == b and a.errors != c.errors

    def width(X: torch.Tensor) -> float:
        return float(X.shape[1])

    prof = layer_ids(
        net, x, {"input": "x", "2": "logits"}, estimator=width, n_resamples=2, progress=False
    )
    assert prof.layers == ("x", "logits") and prof.modules == ("input", "2")
    assert prof.dimensions == (6.0, 2.0) and prof.estimator == "width"
    with pytest.raises(ValueError, match="estimator must be one of"):
        layer_ids(net, x, estimator="gauss", progress=False)


def test_profile_exports_and_plot():
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 4))
    prof = layer_ids(net, torch.randn(100, 5), n_resamples=2, progress=False)
    records = prof.to_records()
    assert [r["layer"] for r in records] == list(prof.layers)
    table = prof.to_dict()
    assert table["relative_depth"] == [0.0, 0.5, 1.0]
    assert table["n_features"] == [5, 8, 4]
    df = prof.to_pandas()
    assert list(df.index) == ["input", "0", "2"] and "dimension" in df
    fig = prof.plot()
    (ax,) = fig.axes
    assert ax.get_xlabel() == "relative depth" and len(ax.containers) == 1
    from interp_lib.viz import plot_profile

    fig = plot_profile({"a": prof, "b": prof}, annotate=True)
    assert len(fig.axes[0].containers) == 2
    with pytest.raises(TypeError):
        plot_profile([records])
    assert isinstance(prof, LayerProfile)


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 16),
        nn.ReLU(),
        nn.Linear(16, 10),
        nn.LogSoftmax(1),
    )


def test_default_checkpoints_and_depth_of_a_small_cnn():
    net = small_cnn()
    x = torch.randn(2, 1, 8, 8)
    names = default_checkpoints(net, x)
    assert names == ["input", "2", "5", "7", "9", "output"]
    depth = relative_depth(net, x, names)
    assert [depth[n] for n in names] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    with pytest.raises(ValueError, match="Did you mean"):
        relative_depth(net, x, ["inptu"])


@pytest.fixture(scope="module")
def vgg11() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.vgg11(weights=None, num_classes=10)


TORCHVISION_CHECKPOINTS = {
    "vgg11": [
        "input",
        "features.2",
        "features.5",
        "features.10",
        "features.15",
        "features.20",
        "classifier.0",
        "classifier.3",
        "classifier.6",
    ],
    # at 32 px layer4 is 1x1, so the global avgpool is an identity and is skipped
    "resnet18": ["input", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"],
    "densenet121": [
        "input",
        "features.pool0",
        "features.denseblock1",
        "features.transition1.pool",
        "features.denseblock2",
        "features.transition2.pool",
        "features.denseblock3",
        "features.transition3.pool",
        "features.denseblock4",
        "classifier",
    ],
}


@pytest.mark.parametrize("name", list(TORCHVISION_CHECKPOINTS))
def test_torchvision_models_profile_end_to_end(name, vgg11):
    torch.manual_seed(0)
    x = torch.randn(16, 3, 32, 32)
    model = (
        vgg11
        if name == "vgg11"
        else getattr(torchvision.models, name)(weights=None, num_classes=10)
    )
    model.train()
    budget = 16 * 64 * 8 * 8 * 4 if name == "resnet18" else None  # several passes
    prof = layer_ids(model, x, n_resamples=0, batch_size=8, progress=False, max_bytes=budget)
    assert list(prof.modules) == TORCHVISION_CHECKPOINTS[name]
    depth = prof.relative_depth
    assert depth[0] == 0.0 and depth[-1] == 1.0
    assert all(a < b for a, b in itertools.pairwise(depth)), depth
    assert all(d > 0 and math.isfinite(d) for d in prof.dimensions)
    assert prof.n_features[0] == 3 * 32 * 32 and prof.n_features[-1] == 10
    assert model.training  # restored


def test_vgg_conv_output_is_read_before_its_inplace_relu(vgg11):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    vgg = vgg11.eval()
    assert vgg.features[1].inplace
    acts = collect_activations(vgg, x, ["features.0", "features.1"], progress=False)
    with torch.no_grad():
        conv = vgg.features[0](x).flatten(1)
    assert (conv < 0).any()
    torch.testing.assert_close(acts["features.0"], conv)
    torch.testing.assert_close(acts["features.1"], conv.clamp_min(0))


def test_resnet18_relative_depth_counts_conv_and_linear_layers():
    r18 = torchvision.models.resnet18(weights=None)
    x = torch.randn(1, 3, 32, 32)
    # 21 conv/linear layers: conv1, 16 block convs, 3 downsample convs, fc
    d = relative_depth(r18, x, ["maxpool", "layer1", "layer2", "fc"])
    assert d == {"maxpool": 1 / 21, "layer1": 5 / 21, "layer2": 10 / 21, "fc": 1.0}


def test_estimator_warnings_name_the_layer():
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    x[90:] = x[:10]  # 10 duplicated images
    net = nn.Sequential(nn.Linear(4, 4))
    with pytest.warns(UserWarning, match=r"layer 'pixels': TwoNN dropped 30 of 100 points"):
        layer_ids(net, x, {"input": "pixels"}, n_resamples=0, progress=False)
