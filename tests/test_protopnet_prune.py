"""Pruning as in the paper: k nearest patches, own-class threshold, consistent shrinking."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from interp_lib.protopnet import ProtoPNet, prune


def loader(ds):
    return DataLoader(ds, batch_size=4)


def own_counts(model, dl, k):
    with torch.no_grad():
        xs = torch.cat([x for x, _ in dl])
        ys = torch.cat([y for _, y in dl])
        d = model.forward_all(xs).min_distances.t()  # (P, N)
    nearest = d.argsort(dim=1)[:, :k]
    return (ys[nearest] == model.prototype_classes[:, None]).sum(1)


@pytest.mark.slow
def test_prune_removes_exactly_the_prototypes_the_rule_names(make_protopnet, make_images):
    model = make_protopnet(0, n_prototypes_per_class=4).eval()
    dl = loader(make_images(15))
    counts = own_counts(model, dl, 6)
    threshold = int(counts.max())  # keeps the best ones, prunes the others
    expected = torch.nonzero(counts < threshold).flatten().tolist()
    assert 0 < len(expected) < model.n_prototypes
    protos = model.prototypes.detach().clone()
    weight = model.last_layer.weight.detach().clone()
    classes = model.prototype_classes.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some class may lose all prototypes
        result = prune(model, dl, k=6, threshold=threshold, progress=False)
    assert result.removed == expected
    kept = [p for p in range(12) if p not in expected]
    assert result.kept == kept
    assert torch.equal(result.own_class_count, counts)
    assert model.n_prototypes == len(kept)
    assert torch.equal(model.prototypes, protos[kept])
    assert torch.equal(model.last_layer.weight, weight[:, kept])
    assert torch.equal(model.prototype_classes, classes[kept])
    assert model.class_identity.shape == (len(kept), 3)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 3)
    clone = ProtoPNet.from_config(model.config)
    clone.load_state_dict(model.state_dict())  # config records the new counts


def test_paper_defaults_and_nothing_removed_when_all_pass(make_protopnet, make_images):
    model = make_protopnet(1, n_prototypes_per_class=4).eval()
    result = prune(model, loader(make_images(15)), threshold=0, progress=False)
    assert result.removed == [] and model.n_prototypes == 12
    assert result.nearest.sample_index.shape == (12, 6)  # k=6 by default


def test_warns_when_a_class_loses_every_prototype(make_protopnet, make_images):
    model = make_protopnet(2, n_prototypes_per_class=[2, 1, 1]).eval()
    with pytest.warns(UserWarning, match=r"every prototype of classes \[1, 2\]") as rec:
        result = prune(model, loader(make_images(15, labels=0)), k=6, threshold=3, progress=False)
    assert rec[0].filename == __file__
    assert result.removed == [2, 3] and model.prototype_classes.tolist() == [0, 0]


def test_errors(make_protopnet, make_images):
    model = make_protopnet(3, n_prototypes_per_class=4).eval()
    with pytest.raises(ValueError, match="cannot exceed"):
        prune(model, loader(make_images(15)), k=3, threshold=4, progress=False)
    with pytest.raises(ValueError, match="fewer than k"):
        prune(model, loader(make_images(4)), k=6, progress=False)
    only_12 = make_protopnet(4, n_prototypes_per_class=[0, 2, 2]).eval()
    with pytest.raises(ValueError, match="remove all 4 prototypes"):
        prune(only_12, loader(make_images(15, labels=0)), k=6, threshold=1, progress=False)
    assert only_12.n_prototypes == 4  # untouched on error


@pytest.mark.slow
def test_retrain_last_layer_changes_only_the_last_layer_and_lowers_the_loss(
    make_protopnet, make_images
):
    from interp_lib.protopnet import retrain_last_layer

    model = make_protopnet(5, n_prototypes_per_class=4).eval()
    model.train()
    dl = loader(make_images(12))
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "last_layer" not in k}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    history = retrain_last_layer(model, dl, epochs=8, lr=0.05, progress=False)
    assert len(history) == 8 and set(history[0]) == {"epoch", "ce", "l1", "loss", "accuracy"}
    assert history[-1]["loss"] < history[0]["loss"]
    for k, v in model.state_dict().items():
        if "last_layer" not in k:
            assert torch.equal(v, frozen[k]), k  # batch-norm statistics included
    assert flags == {k: p.requires_grad for k, p in model.named_parameters()}
    assert model.training


def test_retrain_last_layer_convex_is_the_solve_on_the_loaders_similarities(
    make_protopnet, make_images
):
    from interp_lib.protopnet import retrain_last_layer
    from interp_lib.protopnet.last_layer import solve_last_layer

    model = make_protopnet(3, n_prototypes_per_class=2).eval()
    dl = loader(make_images(12))
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "last_layer" not in k}
    w0 = model.last_layer.weight.detach().clone()
    xs = torch.cat([x for x, _ in dl])
    ys = torch.cat([y for _, y in dl])
    with torch.no_grad():
        sims = model.pooled_similarities(model.latent(xs))
    expected = solve_last_layer(sims, ys, w0, 1 - model.class_identity.t(), l1=1e-3, l2=1e-2)
    history = retrain_last_layer(model, dl, solver="convex", l1=1e-3, l2=1e-2, progress=False)
    assert len(history) == 1 and set(history[0]) == {"epoch", "ce", "l1", "loss", "accuracy"}
    torch.testing.assert_close(model.last_layer.weight, expected.weight, atol=1e-5, rtol=1e-4)
    assert history[0]["loss"] == pytest.approx(expected.objective, rel=1e-4)
    with torch.no_grad():
        acc = (model(xs).argmax(1) == ys).float().mean().item()
    assert history[0]["accuracy"] == pytest.approx(acc)
    for k, v in model.state_dict().items():
        if "last_layer" not in k:
            assert torch.equal(v, frozen[k]), k
    with pytest.raises(ValueError, match="solver"):
        retrain_last_layer(model, dl, solver="lbfgs", progress=False)
    retrain_last_layer(model, dl, solver="convex_nonpositive", l1=1e-3, progress=False)
    off = model.last_layer.weight[(1 - model.class_identity.t()).bool()]
    assert float(off.max()) <= 1e-6  # every off-class weight <= 0
