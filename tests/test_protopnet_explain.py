"""Scoring sheets, percentile boxes (REFERENCE.md anchors) and nearest training patches."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from interp_lib.protopnet import explain, nearest_patches, push
from interp_lib.protopnet.boxes import (
    boxes_to_masks,
    percentile_box,
    percentile_threshold,
    similarity_boxes,
    upsample_maps,
)
from interp_lib.protopnet.functional import similarity


def test_box_anchor_region_above_five_percent():
    m = torch.zeros(224, 224)
    m[50:110, 100:160] = 1
    assert percentile_box(m).tolist() == [100, 50, 160, 110]  # (x0, y0, x1, y1)


def test_box_anchor_small_region_gives_whole_image():
    m = torch.zeros(224, 224)
    m[50:60, 100:120] = 1  # under 5 % of the pixels
    assert percentile_box(m).tolist() == [0, 0, 224, 224]


def test_percentile_matches_numpy_and_box_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(5, 17, 23, generator=g, dtype=torch.float64)
    for q in (95.0, 50.0, 0.0, 100.0, 37.3):
        ref = np.percentile(maps.numpy().reshape(5, -1), q, axis=1)
        np.testing.assert_allclose(percentile_threshold(maps, q).numpy(), ref, rtol=1e-12)
    boxes = percentile_box(maps, 95)
    for i in range(5):
        ys, xs = np.nonzero(maps[i].numpy() >= np.percentile(maps[i].numpy(), 95))
        assert boxes[i].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_upsampling_is_bicubic_and_chunked_boxes_agree():
    maps = torch.rand(7, 4, 4)
    up = upsample_maps(maps, 32)
    ref = torch.nn.functional.interpolate(maps[:, None], size=(32, 32), mode="bicubic")
    torch.testing.assert_close(up, ref[:, 0])
    assert torch.equal(similarity_boxes(maps, 32, chunk_size=3), percentile_box(up))


def test_scoring_sheet_points_sum_to_the_logit(make_protopnet, make_images):
    model = make_protopnet(0, n_prototypes_per_class=3).eval()
    with torch.no_grad():
        model.last_layer.weight.normal_()
    x = make_images().tensors[0][:4]
    expl = explain(model, x, top_k=4)
    with torch.no_grad():
        out = model.forward_all(x)
    act = similarity(out.min_distances, "log")
    assert len(expl) == 4
    for i, e in enumerate(expl):
        assert e.predicted_class == e.target_class == int(out.logits[i].argmax())
        pts = [ev.points for ev in e.evidence]
        assert pts == sorted(pts, reverse=True) and len(pts) == 4
        assert math.isclose(math.fsum([*pts, e.rest_points]), e.logit, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(e.logit, out.logits[i, e.target_class].item(), abs_tol=1e-5)
        for ev in e.evidence:
            w = model.last_layer.weight[e.target_class, ev.index].item()
            assert ev.similarity == act[i, ev.index].item() and ev.weight == w
            assert ev.points == ev.similarity * ev.weight  # exact in float64
            assert ev.similarity_map.shape == (16, 16)
            assert list(ev.box) == percentile_box(ev.similarity_map).tolist()
            h, w_ = ev.location
            assert out.distances[i, ev.index, h, w_] == out.min_distances[i, ev.index]


def test_explain_in_float64_matches_the_model_logit_tightly_and_target(make_protopnet, make_images):
    model = make_protopnet(1, n_prototypes_per_class=3).eval().double()
    x = make_images().tensors[0][:2].double()
    expl = explain(model, x, top_k=100, target=2)
    logits = model(x)
    for i, e in enumerate(expl):
        assert e.target_class == 2 and len(e.evidence) == model.n_prototypes
        assert e.rest_points == 0.0
        assert math.isclose(e.logit, logits[i, 2].item(), rel_tol=1e-12, abs_tol=1e-12)
    with pytest.raises(ValueError, match="target"):
        explain(model, x, target=3)


def test_nearest_patches_match_brute_force(make_protopnet, make_images):
    model = make_protopnet(2, n_prototypes_per_class=3).eval()
    ds = make_images()
    near = nearest_patches(model, DataLoader(ds, batch_size=5), k=4, progress=False)
    with torch.no_grad():
        out = model.forward_all(ds.tensors[0])
    d = out.min_distances.t()  # (P, N)
    ref_d, ref_idx = d.sort(dim=1)
    torch.testing.assert_close(near.distance, ref_d[:, :4])
    assert torch.equal(near.sample_index, ref_idx[:, :4])
    assert torch.equal(near.label, ds.tensors[1][ref_idx[:, :4]])
    assert near.box.shape == (model.n_prototypes, 4, 4)


@pytest.mark.slow
def test_after_push_each_prototype_is_nearest_to_its_source(make_protopnet, make_images):
    model = make_protopnet(3, n_prototypes_per_class=3).eval()
    loader = DataLoader(make_images(), batch_size=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicates are allowed here
        res = push(model, loader, progress=False)
    near = nearest_patches(model, loader, k=1, progress=False)
    assert (near.distance[:, 0] <= 1e-5).all()
    same = near.sample_index[:, 0] == res.sample_index
    assert same.all() or (near.distance[~same, 0] <= 1e-5).all()


@pytest.mark.slow
def test_figures_render(make_protopnet, make_images):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interp_lib.viz import plot_explanation, plot_nearest_patches, plot_scoring_sheet

    model = make_protopnet(4, n_prototypes_per_class=3).eval()
    ds = make_images()
    loader = DataLoader(ds, batch_size=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = push(model, loader, progress=False)
    e = explain(model, ds.tensors[0][:1], top_k=3)[0]
    fig = plot_explanation(ds.tensors[0][0], e, res, ds, max_rows=2)
    assert len(fig.axes) == 8
    fig2 = plot_scoring_sheet(e)
    bars = fig2.axes[0].patches
    assert len(bars) == 4
    assert math.isclose(sum(b.get_width() for b in bars), e.logit, rel_tol=1e-9)
    near = nearest_patches(model, loader, k=3, progress=False)
    fig3 = plot_nearest_patches(near, ds.tensors[0], prototype_classes=model.prototype_classes)
    assert len(fig3.axes) == 6 * 3
    plot_nearest_patches(near, lambda i: ds.tensors[0][i], prototypes=[0, 8])
    plt.close("all")


def test_top_k_must_be_a_positive_int(make_protopnet, make_images):
    model = make_protopnet(5).eval()
    x = make_images(2).tensors[0]
    with pytest.raises(ValueError, match="top_k must be at least 1, got 0"):
        explain(model, x, top_k=0)  # was silently treated as 1
    with pytest.raises(TypeError, match="top_k must be an integer"):
        explain(model, x, top_k=2.5)
    assert len(explain(model, x, top_k=100)[0].evidence) == model.n_prototypes
    with pytest.raises(ValueError, match="no image"):
        explain(model, x[:0])


def test_boxes_are_xyxy_crops(make_protopnet, make_images):
    model = make_protopnet(6).eval()
    x = make_images(1, size=16).tensors[0]
    x[..., 2:7, 9:15] += 5.0  # a bright rectangle: rows 2..6, columns 9..14
    for ev in explain(model, x, top_k=3)[0].evidence:
        x0, y0, x1, y1 = ev.box
        mask = boxes_to_masks(torch.tensor(ev.box), 16)
        assert torch.equal(mask.nonzero()[:, 1].unique(), torch.arange(x0, x1))
        assert torch.equal(mask.nonzero()[:, 0].unique(), torch.arange(y0, y1))
        assert mask.sum() == (x1 - x0) * (y1 - y0)


def test_one_box_to_mask_function():
    from interp_lib.baselines.masks import boxes_to_region_masks

    boxes = torch.tensor([[1, 2, 4, 5], [0, 0, 6, 3]])  # (x0, y0, x1, y1)
    masks = boxes_to_masks(boxes, (5, 6))
    image = torch.arange(30).reshape(5, 6)
    for box, mask in zip(boxes.tolist(), masks, strict=True):
        x0, y0, x1, y1 = box
        assert sorted(image[mask].tolist()) == sorted(image[y0:y1, x0:x1].flatten().tolist())
    assert torch.equal(boxes_to_region_masks(boxes, (5, 6), box_format="xyxy"), masks)
    xywh = torch.cat((boxes[:, :2], boxes[:, 2:] - boxes[:, :2]), dim=1)
    assert torch.equal(boxes_to_region_masks(xywh, (5, 6)), masks)
    # fractional boxes: a pixel is inside when its centre is
    frac = boxes_to_masks(torch.tensor([0.4, 0.0, 2.6, 1.0]), (1, 4))  # centres 0.5 1.5 2.5
    assert frac.tolist() == [[True, True, True, False]]
