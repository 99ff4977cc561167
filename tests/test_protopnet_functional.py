"""Exact anchors of REFERENCE.md section 3 for the pure math of ProtoPNet."""

from __future__ import annotations

import math

import pytest
import torch

from interp_lib.protopnet import functional as PF
from interp_lib.protopnet.losses import (
    LossWeights,
    average_separation,
    cluster_cost,
    l1_cost,
    protopnet_loss,
    separation_cost,
)


def brute_l2(z, protos):
    n, _, h, w = z.shape
    p, _, s, _ = protos.shape
    out = torch.empty(n, p, h - s + 1, w - s + 1, dtype=z.dtype)
    for i in range(n):
        for j in range(p):
            for a in range(h - s + 1):
                for b in range(w - s + 1):
                    out[i, j, a, b] = ((z[i, :, a : a + s, b : b + s] - protos[j]) ** 2).sum()
    return out


@pytest.mark.parametrize(
    ("d", "expected"),
    [(0.0, 9.210340), (1e-4, 8.517293), (1.0, 0.693047), (2.0, 0.405415), (10.0, 0.095300)],
)
def test_log_similarity_anchor_values(d, expected):
    got = PF.similarity(torch.tensor([d], dtype=torch.float64), "log", eps=1e-4)
    assert abs(got.item() - expected) < 5e-7


def test_linear_and_cosine_similarity():
    d = torch.tensor([0.0, 0.5, 3.0])
    assert torch.equal(PF.similarity(d, "linear"), -d)
    assert torch.equal(PF.similarity(d, "cosine"), 1 - d)
    with pytest.raises(ValueError, match="kind must be one of"):
        PF.similarity(d, "rbf")


@pytest.mark.parametrize("size", [1, 2])
def test_l2_patch_distances_match_brute_force(size):
    g = torch.Generator().manual_seed(0)
    z = torch.rand(3, 5, 4, 6, generator=g, dtype=torch.float64)
    protos = torch.rand(7, 5, size, size, generator=g, dtype=torch.float64) * 3 - 1
    got = PF.l2_patch_distances(z, protos)
    assert got.shape == (3, 7, 5 - size, 7 - size)
    torch.testing.assert_close(got, brute_l2(z, protos), rtol=0, atol=1e-12)


def test_l2_distance_of_a_patch_to_itself_is_zero():
    g = torch.Generator().manual_seed(1)
    z = torch.rand(2, 16, 5, 5, generator=g)
    protos = z[1, :, 3:4, 2:3].unsqueeze(0).clone()
    d = PF.l2_patch_distances(z, protos)
    assert d[1, 0, 3, 2].item() < 1e-5
    assert d.min().item() >= 0.0  # the ReLU removes negative rounding


def test_cosine_distances_match_brute_force():
    g = torch.Generator().manual_seed(2)
    z = torch.rand(2, 4, 3, 3, generator=g, dtype=torch.float64)
    protos = torch.randn(5, 4, 1, 1, generator=g, dtype=torch.float64)
    got = PF.cosine_patch_distances(z, protos)
    flat = z.permute(0, 2, 3, 1)  # (N, H, W, D)
    cos = torch.nn.functional.cosine_similarity(
        flat[:, None], protos.flatten(1)[None, :, None, None], dim=-1
    )
    torch.testing.assert_close(got, 1 - cos, rtol=0, atol=1e-12)


def test_min_pool_and_argmin_location():
    d = torch.rand(2, 3, 4, 5)
    d[1, 2, 3, 1] = -1.0
    torch.testing.assert_close(PF.min_pool(d), d.flatten(2).min(2).values)
    values, loc = PF.argmin_location(d)
    assert values[1, 2].item() == -1.0 and loc[1, 2].tolist() == [3, 1]


def test_gather_patches_cuts_the_right_patch():
    z = torch.randn(3, 4, 6, 6)
    sample = torch.tensor([2, 0])
    loc = torch.tensor([[1, 3], [4, 0]])
    patches = PF.gather_patches(z, sample, loc, 2)
    assert torch.equal(patches[0], z[2, :, 1:3, 3:5])
    assert torch.equal(patches[1], z[0, :, 4:6, 0:2])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="channels"):
        PF.l2_patch_distances(torch.rand(1, 3, 4, 4), torch.rand(2, 4, 1, 1))
    with pytest.raises(ValueError, match=r"\(N, D, H, W\)"):
        PF.l2_patch_distances(torch.rand(3, 4, 4), torch.rand(2, 3, 1, 1))


def _direct_costs(min_d, labels, classes):
    clst, sep, avg = [], [], []
    for i in range(min_d.shape[0]):
        own = [min_d[i, j].item() for j in range(min_d.shape[1]) if classes[j] == labels[i]]
        other = [min_d[i, j].item() for j in range(min_d.shape[1]) if classes[j] != labels[i]]
        clst.append(min(own))
        sep.append(min(other))
        avg.append(sum(other) / len(other))
    return [sum(v) / len(v) for v in (clst, sep, avg)]


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cluster_and_separation_match_direct_formula(scale):
    # scale=1000 puts distances far above D, where the original masking trick breaks
    g = torch.Generator().manual_seed(3)
    classes = torch.tensor([0, 0, 1, 1, 2, 2])
    ident = torch.nn.functional.one_hot(classes, 3).double()
    min_d = torch.rand(8, 6, generator=g, dtype=torch.float64) * scale
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 0])
    clst, sep, avg = _direct_costs(min_d, labels.tolist(), classes.tolist())
    assert math.isclose(cluster_cost(min_d, labels, ident).item(), clst, rel_tol=1e-12)
    assert math.isclose(separation_cost(min_d, labels, ident).item(), sep, rel_tol=1e-12)
    assert math.isclose(average_separation(min_d, labels, ident).item(), avg, rel_tol=1e-12)


def test_l1_cost_counts_off_class_connections_only():
    ident = torch.nn.functional.one_hot(torch.tensor([0, 0, 1]), 2).float()
    w = torch.tensor([[5.0, -7.0, 2.0], [-3.0, 0.5, 11.0]])
    assert l1_cost(w, ident).item() == 2.0 + 3.0 + 0.5
    with pytest.raises(ValueError, match="last_layer_weight"):
        l1_cost(w.t(), ident)


def test_protopnet_loss_combines_terms_with_paper_weights(make_protopnet):
    model = make_protopnet(0, prototype_dim=8)
    x, y = torch.rand(5, 3, 16, 16), torch.tensor([0, 1, 2, 1, 0])
    out = model.forward_all(x)
    loss, terms = protopnet_loss(out, y, model)
    w = LossWeights()
    assert (w.ce, w.clst, w.sep, w.l1) == (1.0, 0.8, -0.08, 1e-4)
    expected = terms["ce"] + 0.8 * terms["clst"] - 0.08 * terms["sep"] + 1e-4 * terms["l1"]
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    assert math.isclose(terms["l1"], 0.5 * 6 * 2, rel_tol=1e-6)  # 6 protos x 2 other classes
    assert set(terms) == {"ce", "clst", "sep", "avg_sep", "l1", "loss", "accuracy"}
    loss.backward()
    assert model.prototypes.grad is not None
