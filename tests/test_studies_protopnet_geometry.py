"""The geometry of a prototype network (interp_lib.studies.protopnet_geometry): known answers.

- the wrapper computes the ProtoPNet's own distance map, similarity vector and logits;
- a CNN that shares the ProtoPNet's trunk has the same ID at every trunk layer (ProtoPNet
  minus CNN exactly 0 there);
- a linear CNN cannot raise the ID above the input's;
- a ProtoPNet fed images that vary along 2 parameters has similarity vectors of ID 2;
- a stage run whose first stage is the untrained twin differs from the twin by exactly 0.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from _helpers import single_thread, tiny_protopnet
from torch import nn

from interp_lib.networks import pooled_classifier
from interp_lib.studies.protopnet_geometry import (
    LAST_HIDDEN,
    ProtoPNetLayers,
    cnn_layers,
    geometry_study,
    protopnet_layers,
    prototype_space_study,
    stage_study,
)

pytestmark = pytest.mark.slow

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


def _split(images: torch.Tensor, labels: torch.Tensor) -> SimpleNamespace:
    """A stand-in for a zoo split: ``transform`` (identity), ``images``, ``labels``."""
    return SimpleNamespace(transform=lambda x: x, images=images, labels=labels)


def _images(n_per_class: int, n_classes: int, seed: int = 0, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_per_class * n_classes, 3, size, size, generator=g)
    y = torch.arange(n_per_class * n_classes) % n_classes
    return x, y


def _pair(model, cnn, x, y, x_test=None, y_test=None, acc=(0.5, 0.5)):
    return SimpleNamespace(
        protopnet=model, cnn=cnn, train=_split(x, y),
        test=_split(x if x_test is None else x_test, y if y_test is None else y_test),
        protopnet_test_accuracy=acc[0], cnn_test_accuracy=acc[1],
    )  # fmt: skip


def test_wrapper_computes_the_protopnets_stages():
    model = tiny_protopnet(0).eval()
    x = torch.rand(5, 3, 16, 16)
    net = ProtoPNetLayers(model)
    out = model.forward_all(x)
    with torch.no_grad():
        z = net.add_on(net.features(x))
        d = net.distances(z)
        s = net.similarities(d)
        assert torch.equal(d, out.distances)
        assert torch.allclose(s, model.pooled_similarities(out.latent))
        assert torch.allclose(net(x), out.logits)
    # the ProtoPNet's modules are shared, not copied: no parameter twice
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in model.parameters() if p is not model.prototypes
    )
    layers = protopnet_layers(model)
    assert list(layers.values()) == ["input", "pool1", "pool2", "add-on", "distance map",
                                     LAST_HIDDEN, "logits"]  # fmt: skip
    with pytest.raises(TypeError, match="ProtoPNet"):
        ProtoPNetLayers(nn.Linear(2, 2))


def test_same_trunk_gives_zero_difference_on_the_trunk():
    model = tiny_protopnet(0, n_classes=2).eval()
    cnn = pooled_classifier(copy.deepcopy(model.features), 2, "max").eval()
    assert list(cnn_layers(cnn).values()) == ["input", "pool1", "pool2", LAST_HIDDEN, "logits"]
    x, y = _images(24, 2)
    study = geometry_study([_pair(model, cnn, x, y), _pair(model, cnn, x, y)],
                           n_resamples=2, max_rank=8)  # fmt: skip
    assert study.shared == ("input", "pool1", "pool2", LAST_HIDDEN, "logits")
    for layer in ("input", "pool1", "pool2"):
        diff = study.difference(layer, over="pairs")
        assert diff.mean == 0.0 and diff.sd == 0.0
    table = study.to_pandas()
    assert list(table.index) == list(study.shared)
    assert table.loc["pool1", "ProtoPNet - CNN"] == 0.0
    # the last hidden layer is the similarity vector in one, the pooled trunk in the other
    assert study.protopnet[0].n_features[study.protopnet[0].layers.index(LAST_HIDDEN)] == 4
    assert study.cnn[0].n_features[study.cnn[0].layers.index(LAST_HIDDEN)] == 8
    name, peak = study.peak("protopnet")
    assert name != "input" and peak.shape == (2, 2)
    assert study.compression("cnn").shape == (2, 2)
    with pytest.raises(ValueError, match="shared"):
        study.difference("distance map")


def test_a_linear_network_cannot_raise_the_id():
    """Images on a 3-d linear subspace of pixel space: every layer of a linear CNN is a
    linear image of them, so no layer's ID exceeds the input's (up to estimator noise)."""
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(3, 3 * 16 * 16, generator=g)
    coords = torch.randn(120, 3, generator=g)
    x = (coords @ basis).view(-1, 3, 16, 16)
    y = torch.arange(120) % 2
    torch.manual_seed(0)
    trunk = nn.Sequential()
    trunk.add_module("conv1", nn.Conv2d(3, 8, 3, padding=1))
    trunk.add_module("pool1", nn.AvgPool2d(2))
    trunk.add_module("conv2", nn.Conv2d(8, 8, 3, padding=1))
    cnn = nn.Sequential()
    cnn.add_module("features", trunk)
    cnn.add_module("pool", nn.AdaptiveAvgPool2d(4))
    cnn.add_module("flatten", nn.Flatten())
    cnn.add_module("head", nn.Linear(128, 2))
    model = tiny_protopnet(0, n_classes=2).eval()
    study = geometry_study([_pair(model, cnn.eval(), x, y)], n_resamples=0, max_rank=None)
    ids = study.cnn[0].mean()
    assert 2.4 < float(ids[0]) < 3.6  # the input: 3
    assert bool((ids[1:] <= ids[0] * 1.15).all()), ids


def _two_parameter_images(n: int, seed: int) -> torch.Tensor:
    """Constant images whose colour is a smooth function of 2 uniform parameters."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.rand(n, generator=g), torch.rand(n, generator=g)
    rgb = torch.stack([a, b, 0.5 * torch.sin(3 * a) + 0.5 * b], 1)
    return rgb[:, :, None, None].expand(n, 3, 16, 16).contiguous()


def test_similarity_vector_of_known_dimension():
    torch.manual_seed(0)
    model = tiny_protopnet(0, n_classes=2, n_prototypes_per_class=3).eval()
    cnn = pooled_classifier(copy.deepcopy(model.features), 2, "max").eval()
    x, x_te = _two_parameter_images(600, 0), _two_parameter_images(100, 1)
    y, y_te = torch.arange(600) % 2, torch.arange(100) % 2
    study = prototype_space_study(
        [_pair(model, cnn, x, y, x_te, y_te)], per_class=(1, None), class_counts=(2,),
        n_resamples=0,
    )  # fmt: skip
    rows = study.to_pandas()
    assert list(rows["n_prototypes"]) == [2, 6]
    for value in rows["id_all"]:
        assert 1.6 < value < 2.5, rows
    assert 1.6 < study.classes[0]["id_all"] < 2.5
    assert 0.0 <= rows["test_accuracy"].min() <= 1.0
    assert study.to_pandas("cnn").loc[0, "n_units"] == 8
    with pytest.raises(ValueError, match="what"):
        study.to_pandas("other")


def test_correlation_over_networks_groups_by_seed():
    rows = tuple(
        {"seed": s, "per_class": k, "n_prototypes": 2 * k, "id_all": float(k + s),
         "id_class": 1.0, "test_accuracy": 1 - 0.1 * (k + s)}
        for s in range(3) for k in (1, 2)
    )  # fmt: skip
    from interp_lib.studies.protopnet_geometry import PrototypeSpaceStudy

    res = PrototypeSpaceStudy(rows, (), ()).correlation(n_resamples=200)
    assert res.n == 6 and res.n_groups == 3
    assert math.isclose(res.spearman, 1.0)  # the error grows with the ID, exactly


def test_stage_study_against_its_twin():
    x, y = _images(12, 2, size=16)
    models = [tiny_protopnet(s, n_classes=2).eval() for s in (0, 1)]
    models.append(copy.deepcopy(models[1]))  # a last-layer solve: only the logits change
    with torch.no_grad():
        models[2].last_layer.weight.mul_(-3.0).add_(1.0)
    run = SimpleNamespace(
        stages=["start", "joint 0", "push 0"], kinds=["start", "joint", "push"],
        model=lambda i: models[0 if i == "untrained" else i],
        train=_split(x, y), test=_split(x, y),
    )  # fmt: skip
    study = stage_study(run, n_resamples=0, max_rank=8)
    assert study.stages == ("start", "joint 0", "push 0")
    diff = study.versus_twin(LAST_HIDDEN, stage="start")
    assert diff.mean == 0.0  # the first stage is the twin itself
    assert study.change("pool1", "start", "start").mean == 0.0
    one, two = study.profiles[1], study.profiles[2]
    j = one.layers.index("logits")
    assert torch.equal(one.twonn[:, :j], two.twonn[:, :j])
    fresh = stage_study(run, n_resamples=0, max_rank=8, stages=[2]).profiles[0]
    assert torch.allclose(fresh.twonn, two.twonn, equal_nan=True)  # spliced = measured
    assert not torch.equal(one.twonn[:, j], two.twonn[:, j])
    table = study.to_pandas()
    assert list(table.index) == ["start", "joint 0", "push 0", "untrained"]
    assert study.grid(8).shape == (3, len(study.layers))
    assert math.isnan(table.loc["untrained", "test accuracy"])


def test_stage_figure_and_explorer():
    import matplotlib

    matplotlib.use("Agg")
    from interp_lib.viz import stage_explorer, stage_figure

    x, y = _images(12, 2, size=16)
    models = [tiny_protopnet(s, n_classes=2).eval() for s in (0, 1)]
    run = SimpleNamespace(
        stages=["start", "joint 0"], kinds=["start", "joint"],
        model=lambda i: models[0 if i == "untrained" else i],
        train=_split(x, y), test=_split(x, y),
    )  # fmt: skip
    study = stage_study(run, n_resamples=0, max_rank=8)
    fig = stage_figure(study, -1, rank=study.gride_ranks[-1])
    assert fig.axes[0].get_title().startswith("stage 2/2: joint 0")
    assert len(fig.axes[0].lines) == 3  # the other stage, the twin, the highlighted one
    box = stage_explorer(study)
    assert len(box.controls) == 1 + 3  # the scale menu, then a stage slider per scale
    assert box.controls[0].options[0][0] == "TwoNN"
