"""Placement per part: planted prototypes on known parts, against part-area chance."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from interp_lib.protopnet import Placement, prototype_placement
from interp_lib.protopnet.push import PushResult

NAMES = ("legs", "tail", "body", "wing", "head", "beak", "crest")


def _masks():
    """Two 16 x 16 images: image 0 with a body (rows/cols 4..7, 16 px) and a beak
    (row 8, cols 8..9, 2 px); image 1 with a tail (rows 0..3, cols 12..15, 16 px)."""
    m = torch.zeros(2, 7, 16, 16, dtype=torch.bool)
    m[0, 2, 4:8, 4:8] = True
    m[0, 5, 8, 8:10] = True
    m[1, 1, 0:4, 12:16] = True
    return m


def _push(sample, location):
    sample, location = torch.tensor(sample), torch.tensor(location)

    def duplicates():
        keys = torch.cat((sample[:, None], location), 1)
        _, inv, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
        groups = {}
        for j, g in enumerate(inv.tolist()):
            if counts[g] > 1:
                groups.setdefault(g, []).append(j)
        return list(groups.values())

    return SimpleNamespace(sample_index=sample, location=location, duplicates=duplicates)


RF = SimpleNamespace(start=0.5, jump=4)  # centres at 0.5 + 4 * location


def test_planted_prototypes_land_on_their_parts():
    # centres (4.5, 4.5) body; (8.5, 8.5) beak; (0.5, 12.5) tail; (12.5, 0.5) background
    push = _push([0, 0, 1, 0], [[1, 1], [2, 2], [0, 3], [3, 0]])
    pl = prototype_placement(push, _masks(), RF, part_names=NAMES)
    assert isinstance(pl, Placement)
    assert pl.part.tolist() == [2, 5, 1, -1]
    assert pl.on_bird.tolist() == [True, True, True, False]
    assert pl.on_bird_fraction == 0.75 and pl["on_bird_fraction"] == 0.75
    share = dict(zip(NAMES, pl.part_share.tolist(), strict=True))
    assert share["body"] == share["beak"] == share["tail"] == 0.25 and share["wing"] == 0
    # chance: each part's pixel share of the source images, averaged over prototypes
    # (sources 0, 0, 1, 0): body 16/256 on image 0, beak 2/256, tail 16/256 on image 1
    chance = dict(zip(NAMES, pl.part_chance.tolist(), strict=True))
    assert chance["body"] == pytest.approx(3 / 4 * 16 / 256)
    assert chance["beak"] == pytest.approx(3 / 4 * 2 / 256)
    assert chance["tail"] == pytest.approx(1 / 4 * 16 / 256)
    assert pl.chance == pytest.approx((3 * 18 / 256 + 16 / 256) / 4)
    assert pl.background_chance == pytest.approx(1 - pl.chance)
    assert pl.by_part()["beak"] == [1] and pl.by_part()["background"] == [3]
    assert pl.by_part()["wing"] == []
    table = pl.to_pandas()
    assert list(table.index) == [*NAMES, "background"]
    assert table.loc["body", "prototypes"] == 1
    assert table.loc["beak", "ratio"] == pytest.approx(0.25 / (3 / 4 * 2 / 256))
    assert table["share"].sum() == pytest.approx(1.0)
    s = pl.summary()
    assert s["share_background"] == 0.25 and s["on_bird"] == 0.75
    assert pl.distinct_fraction == 1.0 and pl.target == 0.8


def test_duplicates_near_and_bad_input():
    push = _push([0, 0], [[1, 1], [1, 1]])
    pl = prototype_placement(push, _masks(), RF)
    assert pl.distinct_fraction == 0.0 and pl.part_names[0] == "part0"
    # (0.5, 0.5) on image 0 is 4 px from the body: near only from near=4
    far = _push([0], [[0, 0]])
    assert prototype_placement(far, _masks(), RF, near=3).near_bird_fraction == 0.0
    assert prototype_placement(far, _masks(), RF, near=4).near_bird_fraction == 1.0
    with pytest.raises(ValueError, match="part_names"):
        prototype_placement(push, _masks(), RF, part_names=("a",))
    with pytest.raises(ValueError, match="masks"):
        prototype_placement(push, _masks()[0], RF)


def test_with_a_real_push_result():
    # a PushResult as push() returns it (fields it declares)
    fields = PushResult.__dataclass_fields__
    assert {"sample_index", "location"} <= set(fields)
    push = _push([0, 1], [[1, 1], [0, 3]])
    out = prototype_placement(push, _masks(), RF, part_names=NAMES)
    assert out.part.tolist() == [2, 1] and out.on_bird_fraction == 1.0


def test_placement_counts_centres_on_and_near_the_bird():
    """The hand-built case of the zoo's former wrapper (zoo.birds.placement)."""
    masks = torch.zeros(2, 7, 16, 16, dtype=torch.bool)
    masks[0, 2, 4:8, 4:8] = True  # image 0: body at rows/columns 4..7
    masks[1, 0, 12, 12] = True  # image 1: one leg pixel
    rf = SimpleNamespace(start=0.5, jump=4)  # centres at 0.5 + 4 * location
    location = torch.tensor([[1, 1], [2, 2], [0, 0], [3, 3]])  # pixels 4, 8, 0, 12
    sample = torch.tensor([0, 0, 0, 1])

    def duplicates():
        return []

    push = SimpleNamespace(sample_index=sample, location=location, duplicates=duplicates)
    out = prototype_placement(push, masks, rf)
    assert out["on_bird"].tolist() == [True, False, False, True]
    assert out["part"].tolist() == [2, -1, -1, 0]
    assert out["on_bird_fraction"] == 0.5
    assert out["near_bird_fraction"] == 0.75  # (8, 8) is 1 px from the body, (0, 0) 4 px
    assert prototype_placement(push, masks, rf, near=0)["near_bird_fraction"] == 0.5
    with pytest.raises(ValueError, match="near"):
        prototype_placement(push, masks, rf, near=-1)
    assert out["distinct_fraction"] == 1.0
