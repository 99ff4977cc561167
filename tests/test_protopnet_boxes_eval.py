"""Box sizes, parts under box centres, random-position baselines, variant sharing."""

from __future__ import annotations

import pytest
import torch

from interp_lib.protopnet.boxes_eval import (
    box_area_share,
    mode_count,
    parts_at_box_centres,
    random_box_centre_parts,
    variant_sharing,
)


def test_box_area_share():
    boxes = torch.tensor([[0, 0, 10, 10], [2, 3, 7, 5], [5, 5, 5, 9]])
    torch.testing.assert_close(box_area_share(boxes, 10), torch.tensor([1.0, 0.1, 0.0]))
    torch.testing.assert_close(box_area_share(boxes[:1], (10, 20)), torch.tensor([0.5]))


def _masks():
    m = torch.zeros(2, 2, 10, 10, dtype=torch.bool)
    m[0, 0, :5, :5] = True  # image 0: part 0 top left
    m[1, 1, 5:, 5:] = True  # image 1: part 1 bottom right
    return m


def test_parts_at_box_centres_planted():
    boxes = torch.tensor([[[0, 0, 4, 4], [6, 6, 10, 10]], [[6, 6, 10, 10], [0, 0, 4, 4]]])
    index = torch.tensor([[0, 0], [1, 1]])
    assert parts_at_box_centres(_masks(), index, boxes).tolist() == [[0, -1], [1, -1]]
    with pytest.raises(ValueError, match="sample_index"):
        parts_at_box_centres(_masks(), index[0], boxes)


def test_random_box_centre_parts_hit_a_part_at_its_area_share():
    m = torch.zeros(1, 1, 20, 20, dtype=torch.bool)
    m[0, 0, :, :10] = True  # left half
    boxes = torch.tensor([[0, 0, 2, 2]])  # centres uniform over 19 x 19 positions
    parts = random_box_centre_parts(m, torch.tensor([0]), boxes, n_draws=4000, seed=0)
    assert parts.shape == (4000, 1)
    hit = (parts == 0).float().mean().item()
    assert abs(hit - 9 / 19) < 0.03  # centre column x0 + 1 < 10 for x0 in 0..8
    whole = torch.tensor([[0, 0, 20, 20]])  # a whole-image box cannot move
    fixed = random_box_centre_parts(m, torch.tensor([0]), whole, n_draws=5)
    assert (fixed == parts_at_box_centres(m, torch.tensor([0]), whole)).all()


def test_mode_count():
    mode, count = mode_count(torch.tensor([[1, 1, 2, -1], [3, 3, 3, 3]]))
    assert mode.tolist() == [1, 3] and count.tolist() == [2, 4]


def test_variant_sharing_counts_classes_with_the_same_variant():
    class_parts = [{"beak": "short", "wing": "plain"}, {"beak": "short", "wing": "bar"},
                   {"beak": "long", "wing": "plain"}, {"beak": "short", "wing": "bar"}]  # fmt: skip
    names = ("body", "beak", "wing")
    s = variant_sharing(torch.tensor([1, 2, 0, -1]), torch.tensor([0, 1, 2, 3]), class_parts,
                        names)  # fmt: skip
    assert s.part == ["beak", "wing", "body", "background"]
    assert s.variant == ["short", "bar", "", ""]
    assert s.n_sharing.tolist() == [3, 2, 4, 4]
    torch.testing.assert_close(s.own_share_ceiling, torch.tensor([1 / 3, 1 / 2, 1 / 4, 1 / 4]))
    with pytest.raises(ValueError, match="lie in"):
        variant_sharing(torch.tensor([0]), torch.tensor([4]), class_parts, names)
