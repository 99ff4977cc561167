"""Explanations against a known cause: the planted shortcut and the part interventions.

Known answers: a hand-built network that reads only the marker (a perfect explanation,
the marker mask, must rank first on the marker, a random map last; Grad-CAM and
occlusion of that network must find the marker); a hand-built network that reads only
one "part" (an image quadrant): the perfect map is counterfactually faithful, a random
map is not.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interp_lib.datasets.shortcut import (
    MARKER_COLOURS,
    marker_classes,
    marker_positions,
    paint_markers,
    shortcut_birds,
)
from interp_lib.studies.interventions import (
    InterventionRecords,
    faithfulness_table,
    intervention_records,
    logit_effects,
    part_interventions,
    prototype_response,
    prototype_response_table,
)
from interp_lib.studies.shortcut import (
    box_coverage,
    explanation_maps,
    marker_prototypes,
    marker_reliance,
    proxy_scores,
    shortcut_scores,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 4


class MarkerReader(nn.Module):
    """Logit k = 10 x the best match of a SIZE x SIZE square of colour k (images in
    [0, 1]): reads the marker and nothing else."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.register_buffer("colours", MARKER_COLOURS[:n_classes].clone())
        self.features = nn.Identity()  # the layer that layer methods explain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = (x[:, None] - self.colours[None, :, :, None, None]).square().sum(2)
        match = F.avg_pool2d(torch.exp(-d / 0.01), SIZE, stride=1)  # (N, K, h, w)
        match = self.features(match)
        return 10 * F.adaptive_max_pool2d(match, 1).flatten(1)


@pytest.fixture(scope="module")
def marked():
    ds = shortcut_birds(4, correlation=1.0, marker_size=SIZE, image_size=32, classes=3,
                        seed=0, difficulty=0.0)  # fmt: skip
    return ds


def test_markers_avoid_the_bird_and_name_their_class(marked):
    ds = marked
    assert not bool((ds.marker & ds.masks.any(1)).any())
    assert bool((ds.marker.flatten(1).sum(1) == SIZE * SIZE).all())
    assert torch.equal(ds.marker_class, ds.labels)
    for i in range(len(ds)):
        pix = ds.images[i][:, ds.marker[i]]  # (3, SIZE * SIZE)
        assert torch.allclose(pix, MARKER_COLOURS[ds.labels[i]][:, None].expand_as(pix))
    # outside the marker, the birds of a plain set with the same seed are the same pixels
    plain = shortcut_birds(4, correlation=None, marker_size=SIZE, image_size=32, classes=3,
                           seed=0, difficulty=0.0)  # fmt: skip
    assert not bool(plain.marker.any())
    keep = ~ds.marker[:, None].expand_as(ds.images)
    assert torch.equal(ds.images[keep], plain.images[keep])


def test_marker_positions_keep_the_margin():
    bird = torch.zeros(2, 10, 10, dtype=torch.bool)
    bird[:, :, :5] = True  # the left half is bird
    pos = marker_positions(bird, 2, margin=1, seed=0)
    assert bool((pos[:, 1] >= 6).all())
    with pytest.raises(ValueError, match="no room"):
        marker_positions(torch.ones(1, 10, 10, dtype=torch.bool), 2)


def test_marker_classes_follow_the_correlation():
    labels = torch.arange(4).repeat(500)
    assert torch.equal(marker_classes(labels, 4, 1.0), labels)
    agree = float((marker_classes(labels, 4, 0.0, seed=1) == labels).double().mean())
    assert abs(agree - 0.25) < 0.05  # independent: P(marker = label) = 1 / K
    agree = float((marker_classes(labels, 4, 0.6, seed=1) == labels).double().mean())
    assert abs(agree - (0.6 + 0.4 / 4)) < 0.05
    with pytest.raises(ValueError, match="correlation"):
        marker_classes(labels, 4, 1.5)


def test_paint_markers_minus_one_paints_nothing():
    x = torch.rand(2, 3, 8, 8)
    out, m = paint_markers(x, torch.tensor([[0, 0], [2, 3]]), torch.tensor([-1, 1]), size=2)
    assert torch.equal(out[0], x[0]) and not bool(m[0].any())
    assert int(m[1].sum()) == 4 and bool(m[1, 2:4, 3:5].all())


def test_marker_reader_relies_on_the_marker(marked):
    ds = marked
    model = MarkerReader(3).eval()
    swapped, _ = paint_markers(ds.images, ds.marker_position, (ds.labels + 1) % 3, size=SIZE)
    removed, _ = paint_markers(ds.images, ds.marker_position, torch.full_like(ds.labels, -1),
                               size=SIZE)  # fmt: skip
    # "removed" = no marker painted over the already marked images is still marked:
    # repaint the birds without any marker from the plain set
    plain = shortcut_birds(4, correlation=None, marker_size=SIZE, image_size=32, classes=3,
                           seed=0, difficulty=0.0)  # fmt: skip
    acc = marker_reliance(model, {"as_trained": ds.images, "swapped": swapped,
                                  "removed": plain.images}, ds.labels)  # fmt: skip
    assert acc["as_trained"] == 1.0 and acc["swapped"] == 0.0
    assert removed.shape == ds.images.shape


@pytest.mark.slow  # attributions and bootstrapped rank correlations: seconds
def test_a_perfect_map_ranks_first_and_a_random_map_last(marked):
    ds = marked
    model = MarkerReader(3).eval()
    bird = ds.masks.any(1)
    maps = explanation_maps(model, ds.images, ["grad_cam", "occlusion", "random"])
    maps["perfect"] = ds.marker.float()[:, None]
    maps["bird only"] = bird.float()[:, None]  # a plausible but wrong explanation
    summary = shortcut_scores(maps, bird, ds.marker, model="reader").summary(over="index")
    order = list(summary.index.get_level_values("method"))
    assert order[0] == "perfect" and summary.loc[("reader", "perfect"), "marker"] == 1.0
    assert summary.loc[("reader", "perfect"), "top on marker"] == 1.0
    assert order[-1] == "bird only"
    assert order.index("random") > order.index("grad_cam")
    assert order.index("random") > order.index("occlusion")
    # the model reads only the marker: its faithful maps put most of their mass there
    assert summary.loc[("reader", "grad_cam"), "marker - bird low"] > 0
    assert summary.loc[("reader", "occlusion"), "top on marker"] >= 0.75  # window edges
    rnd = summary.loc[("reader", "random")]
    assert abs(rnd["marker"] - rnd["marker area"]) < 0.02  # chance: the area share
    over_seeds = (
        shortcut_scores(maps, bird, ds.marker, model="reader", seed=0)
        + shortcut_scores(maps, bird, ds.marker, model="reader", seed=1)
    ).summary()
    assert int(over_seeds["n"].iloc[0]) == 2


def test_proxy_metrics_of_the_marker_reader(marked):
    """Deleting (or imputing) the marker first is what the reader needs: the marker mask
    beats the bird mask under deletion and ROAD alike."""
    ds = marked
    model = MarkerReader(3).eval()
    maps = {"perfect": ds.marker.float()[:, None], "bird only": ds.masks.any(1).float()[:, None]}
    df = proxy_scores(model, ds.images, maps, step=32, percentages=(10, 30), model_name="r")
    mean = df.groupby("method")[["deletion", "road_morf", "road_combined"]].mean()
    assert len(df) == 2 * len(ds)
    assert mean.loc["perfect", "deletion"] < mean.loc["bird only", "deletion"]
    assert mean.loc["perfect", "road_morf"] < mean.loc["bird only", "road_morf"]
    assert mean.loc["perfect", "road_combined"] > mean.loc["bird only", "road_combined"]


def test_box_coverage():
    region = torch.zeros(2, 8, 8, dtype=torch.bool)
    region[0, 2:4, 2:4] = True
    boxes = torch.tensor([[[0, 0, 3, 3], [0, 0, 8, 8]], [[0, 0, 8, 8], [0, 0, 1, 1]]])
    out = box_coverage(boxes, region)
    assert out[0].tolist() == [0.25, 1.0]
    assert bool(out[1].isnan().all())  # no region in image 1
    with pytest.raises(ValueError, match="boxes"):
        box_coverage(boxes[0], region)


def test_shortcut_scores_refuse_bad_masks(marked):
    ds = marked
    maps = {"perfect": ds.marker.float()[:, None]}
    with pytest.raises(ValueError, match="overlaps"):
        shortcut_scores(maps, ds.marker, ds.marker)
    with pytest.raises(ValueError, match="needs a marker"):
        shortcut_scores(maps, ds.masks.any(1), torch.zeros_like(ds.marker))


def test_marker_prototypes_from_the_source_boxes(make_protopnet):
    model = make_protopnet(n_classes=2, n_prototypes_per_class=2, image_size=16).eval()
    marker = torch.zeros(3, 16, 16, dtype=torch.bool)
    marker[0, 2:6, 2:6] = True
    marker[1, 10:14, 10:14] = True
    marker[2, 0:4, 12:16] = True
    push = SimpleNamespace(
        sample_index=torch.tensor([0, 1, 2, 0]),
        box=torch.tensor([[0, 0, 8, 8],      # covers image 0's marker: a marker patch
                          [0, 0, 8, 8],      # image 1's marker is elsewhere
                          [12, 0, 14, 4],    # half of image 2's marker: at the threshold
                          [4, 4, 8, 8]]),    # a quarter of image 0's marker
    )  # fmt: skip
    res = marker_prototypes(model, push, marker, torch.rand(5, 3, 16, 16))
    assert res.is_marker.tolist() == [True, False, True, False]
    assert res.covered.tolist() == pytest.approx([1.0, 0.0, 0.5, 0.25])
    assert res.n_marker == 2 and res.classes_with_marker == 2
    share = res.evidence_share[torch.isfinite(res.evidence_share)]
    assert bool(((share >= 0) & (share <= 1)).all())
    none = marker_prototypes(model, push, marker, torch.rand(5, 3, 16, 16), min_fraction=1.0)
    assert none.is_marker.tolist() == [True, False, False, False]


# ------------------------------------------------------------------ part interventions


def test_part_interventions_change_only_the_part():
    s = part_interventions(2, classes=3, image_size=32, seed=3)
    assert s.counterfactuals.shape == (6, 5, 3, 32, 32)
    for j, part in enumerate(s.parts):
        changed = (s.images - s.counterfactuals[:, j]).abs().sum(1) > 0
        assert not bool((changed & ~s.regions[:, j]).any()), part
        assert bool(changed.flatten(1).any(1).all()), part  # every bird changed
        assert bool((s.new_variants[:, j] != s.variants[:, j]).all())


class QuadrantReader(nn.Module):
    """Logit 0 = the sum of the top-left quadrant; logit 1 = its negative / 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        s = x[:, :, : h // 2, : w // 2].sum((1, 2, 3))
        return torch.stack([s, -s / 2], 1)


def _quadrants(n: int = 40, side: int = 8, seed: int = 0):
    """Images with 4 quadrant "parts"; counterfactual j sets quadrant j to 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, side, side, generator=g) * torch.rand(n, 1, 1, 1, generator=g)
    h = side // 2
    regions = torch.zeros(n, 4, side, side, dtype=torch.bool)
    for j, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        regions[:, j, r * h : (r + 1) * h, c * h : (c + 1) * h] = True
    cf = x[:, None].repeat(1, 4, 1, 1, 1)
    cf = cf.masked_fill(regions[:, :, None], 0.0)
    return x, cf, regions


@pytest.mark.slow  # attributions and bootstrapped rank correlations: seconds
def test_counterfactual_faithfulness_ranks_the_perfect_map_first():
    x, cf, regions = _quadrants()
    model = QuadrantReader().eval()
    effects, target = logit_effects(model, x, cf)
    assert bool((target == 0).all())
    assert torch.allclose(effects[:, 0], x[:, :, :4, :4].sum((1, 2, 3)))
    assert bool((effects[:, 1:] == 0).all())
    maps = explanation_maps(model, x, ["input_x_gradient", "random"])
    maps["perfect"] = (x.sum(1, keepdim=True) * regions[:, :1]).float()
    maps["wrong part"] = regions[:, 3:4].float()
    parts = ["q0", "q1", "q2", "q3"]
    recs = intervention_records(maps, effects, regions, parts, model="reader", seed=0)
    recs = recs + intervention_records(maps, effects, regions, parts, model="reader", seed=1)
    table = faithfulness_table(recs, n_resamples=200)
    order = list(table.index.get_level_values("method"))
    assert order[0] in ("perfect", "input_x_gradient")
    assert table.loc[("reader", "perfect"), "low"] > 0.5
    assert order[-1] == "wrong part"
    assert abs(table.loc[("reader", "random"), "spearman"]) < 0.3
    assert table.loc[("reader", "random"), "spearman"] < table.loc[("reader", "perfect"), "low"]
    assert int(table.loc[("reader", "perfect"), "images"]) == 2 * len(x)
    assert isinstance(recs, InterventionRecords)
    dens = faithfulness_table(recs, importance="density", n_resamples=200)
    assert dens.loc[("reader", "perfect"), "low"] > 0.5
    assert abs(dens.loc[("reader", "random"), "spearman"]) < 0.3
    with pytest.raises(ValueError, match="importance"):
        faithfulness_table(recs, importance="mass")


def test_a_random_map_follows_the_part_size_and_the_density_removes_it():
    """Effects proportional to the parts' areas: a random map's share tracks them, its
    density does not."""
    g = torch.Generator().manual_seed(0)
    n, side = 30, 12
    regions = torch.zeros(n, 3, side, side, dtype=torch.bool)
    regions[:, 0, :2, :2] = True  # 4 px
    regions[:, 1, 4:8, :4] = True  # 16 px
    regions[:, 2, 4:12, 4:12] = True  # 64 px
    area = regions.flatten(2).float().sum(2)
    effects = area * (1 + 0.1 * torch.rand(n, 3, generator=g))
    maps = {"random": torch.rand(n, 1, side, side, generator=g)}
    recs = intervention_records(maps, effects, regions, ["s", "m", "l"])
    share = faithfulness_table(recs, n_resamples=100)
    dens = faithfulness_table(recs, importance="density", n_resamples=100)
    assert share.loc[("model", "random"), "spearman"] > 0.8
    assert abs(dens.loc[("model", "random"), "spearman"]) < 0.5


def test_intervention_records_check_shapes():
    with pytest.raises(ValueError, match="do not match"):
        intervention_records({"m": torch.rand(2, 1, 4, 4)}, torch.rand(2, 3),
                             torch.ones(2, 2, 4, 4, dtype=torch.bool), ["a", "b", "c"])  # fmt: skip


def test_prototype_response_reads_the_changed_part(make_protopnet):
    model = make_protopnet(n_classes=2, n_prototypes_per_class=2, image_size=16).eval()
    x = torch.rand(6, 3, 16, 16)
    cf = torch.stack([x, torch.rand(6, 3, 16, 16)], 1)  # part "a": unchanged; "b": new image
    proto_part = torch.tensor([0, 1, 0, 1])  # each class: one prototype on "a", one on "b"
    rec = prototype_response(model, x, cf, proto_part, ["a", "b"], torch.tensor([0, 1] * 3),
                             part_names=["a", "b"])  # fmt: skip
    assert len(rec) == 12 and set(rec["part"]) == {"a", "b"}
    a = rec[rec.part == "a"]
    assert a["drop on part"].abs().max() < 1e-9  # nothing changed
    assert a["drop elsewhere"].abs().max() < 1e-9
    table = prototype_response_table(rec)
    assert list(table.index) == ["a", "b", "all parts"]
    assert int(table.loc["all parts", "images"]) == 6
    with pytest.raises(ValueError, match="do not match"):
        prototype_response(model, x, cf, proto_part, ["a"], torch.zeros(6))


# ------------------------------------------------------------------ the zoo entry


@pytest.mark.slow  # trains a tiny zoo entry
def test_zoo_shortcut_entry_trains_caches_and_paints(tmp_path, monkeypatch):
    from interp_lib.zoo.shortcut import ShortcutRecipe, shortcut_birds_models

    monkeypatch.setenv("INTERP_LIB_CACHE", str(tmp_path / "cache"))
    tiny = ShortcutRecipe(
        n_classes=2, n_per_class=6, val_per_class=2, test_per_class=3, image_size=32,
        marker_size=4, widths=(4, 8), n_prototypes_per_class=1, prototype_dim=4,
        batch_size=4, warm_epochs=1,
        schedule={"epochs": 2, "warmup_epochs": 1, "push_start": 0, "push_every": 1},
    )  # fmt: skip
    net = shortcut_birds_models(1.0, 0, recipe=tiny)
    assert not net.from_cache
    assert set(net.cnn_test_accuracy) == {"as_trained", "removed", "swapped"}
    assert bool(net.train.marker.flatten(1).any(1).all())  # every training bird is marked
    assert torch.equal(net.train.marker_class, net.train.labels)  # correlation 1
    assert not bool((net.train.marker & net.train.masks.any(1)).any())
    assert not bool(net.test.marker.any())  # test birds are stored without marker
    images, marker, named = net.test_images("swapped", seed=1)
    assert bool((named != net.test.labels).all())
    assert bool(marker.flatten(1).any(1).all())
    images, marker, named = net.test_images("removed")
    assert torch.equal(images, net.test.images) and not bool(marker.any())
    with pytest.raises(ValueError, match="condition"):
        net.test_images("hidden")
    again = shortcut_birds_models(1.0, 0, recipe=tiny)
    assert again.from_cache
    assert torch.equal(again.cnn.head.weight, net.cnn.head.weight)
    plain = shortcut_birds_models(None, 0, recipe=tiny)
    assert not plain.from_cache and not bool(plain.train.marker.any())
    with pytest.raises(ValueError, match="correlation"):
        ShortcutRecipe(correlation=1.5)
