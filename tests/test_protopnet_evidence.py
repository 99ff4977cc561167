"""Own-class positive evidence share: hand-built last layers with known shares."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import tiny_protopnet
from torch.utils.data import DataLoader, TensorDataset

from interp_lib.protopnet import evidence_share, off_class_weight_stats
from interp_lib.protopnet.evidence import own_class_share

# 2 classes, prototypes 0, 1 of class 0 and 2, 3 of class 1
IDENT = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])


def test_share_by_hand():
    s = torch.tensor(
        [
            [1.0, 2.0, 3.0, 0.5],  # class 0: points 1, 2, 1.5, -0.5 -> own 3 / 4.5
            [0.0, 0.0, 1.0, 1.0],  # class 1: points 0, 0, 0.5, 2 -> own 1
            [1.0, 0.0, 0.0, 0.0],  # class 0: point 1 from its own prototype -> 1
        ]
    )
    w = torch.tensor([[1.0, 1.0, 0.5, -1.0], [-0.5, -0.5, 0.5, 2.0]])
    share, predicted = own_class_share(s, w, IDENT)
    assert predicted.tolist() == [0, 1, 0]
    assert share.tolist() == pytest.approx([2 / 3, 1.0, 1.0])
    # no positive points at all: undefined
    share, _ = own_class_share(torch.zeros(1, 4), w, IDENT)
    assert math.isnan(float(share[0]))
    # off-class weights <= 0: every positive point is the predicted class's own
    g = torch.Generator().manual_seed(0)
    s = torch.rand(50, 4, generator=g)
    w = torch.where(IDENT.t().bool(), torch.rand(2, 4, generator=g), -torch.rand(2, 4, generator=g))
    share, _ = own_class_share(s, w, IDENT)
    assert (share == 1).all()


def _model_with_weight(weight):
    model = tiny_protopnet(0, n_classes=2, n_prototypes_per_class=2)
    with torch.no_grad():
        model.last_layer.weight.copy_(weight)
    return model.eval()


def test_evidence_share_of_a_model_against_brute_force():
    w = torch.tensor([[1.0, 0.8, 0.6, -0.2], [0.3, -0.4, 1.2, 0.9]])
    model = _model_with_weight(w)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 3, 16, 16, generator=g)
    y = torch.tensor([0, 1] * 6)
    ev = evidence_share(model, x, y, batch_size=5)
    with torch.no_grad():
        sims = model.pooled_similarities(model.latent(x)).double()
    for i in range(len(x)):  # brute force, one decision at a time
        k = int((sims[i] @ w.double().t()).argmax())
        pts = [float(sims[i, j]) * float(w[k, j]) for j in range(4)]
        own = sum(p for j, p in enumerate(pts) if p > 0 and IDENT[j, k] == 1)
        pos = sum(p for p in pts if p > 0)
        assert ev.predicted[i] == k
        assert float(ev.share[i]) == pytest.approx(own / pos, rel=1e-5)
    correct = ev.predicted == y
    assert ev.mean_correct == pytest.approx(float(ev.share[correct].mean()), rel=1e-6)
    # the same from a dataset and from a loader
    ds = TensorDataset(x, y)
    torch.testing.assert_close(evidence_share(model, ds).share, ev.share)
    torch.testing.assert_close(evidence_share(model, DataLoader(ds, batch_size=4)).share, ev.share)
    table = ev.to_pandas()
    assert list(table.columns) == ["label", "predicted", "correct", "own_share"]
    assert len(table) == 12
    summary = ev.summary()
    assert summary["off_positive"] == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="need labels"):
        evidence_share(model, x)


def test_off_class_weight_stats_by_hand():
    w = torch.tensor([[1.0, 0.5, 0.05, -0.2], [0.35, -0.4, 2.0, 1.0]])
    st = off_class_weight_stats(_model_with_weight(w))
    # off-class weights: 0.05, -0.2 (row 0, prototypes of class 1), 0.35, -0.4 (row 1)
    assert st["above_0.1"] == pytest.approx(3 / 4)
    assert st["above_0.3"] == pytest.approx(2 / 4)
    assert st["positive"] == pytest.approx(2 / 4)
    assert st["max"] == pytest.approx(0.35) and st["min"] == pytest.approx(-0.4)
    assert st["own_mean"] == pytest.approx((1.0 + 0.5 + 2.0 + 1.0) / 4)
    assert st["n_off"] == 4 and st["n_own"] == 4
