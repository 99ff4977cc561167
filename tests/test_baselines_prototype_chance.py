"""Chance levels of the prototype scores and of the energy on the object (hand-built cases)."""

from __future__ import annotations

import pytest
import torch

from interp_lib.baselines import energy_in_mask, mask_share
from interp_lib.protopnet import (
    prototype_part_metrics,
    random_box_part_metrics,
    untrained_protopnet,
)


def test_mask_share_is_the_energy_of_a_uniform_map():
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, :4] = True  # half
    masks[1, :2, :2] = True  # 4 / 64
    torch.testing.assert_close(mask_share(masks), torch.tensor([0.5, 1 / 16, 0.0]))
    uniform = torch.ones(3, 1, 8, 8)
    torch.testing.assert_close(energy_in_mask(uniform, masks), mask_share(masks))
    torch.testing.assert_close(mask_share(masks[:, None]), mask_share(masks))


def _labels(n, n_classes=2):
    return torch.arange(n) % n_classes


def test_random_boxes_on_a_part_covering_the_image_score_one_and_on_no_part_zero():
    n = 20
    masks = torch.zeros(n, 2, 10, 10, dtype=torch.bool)
    masks[:, 0] = True  # part 0 everywhere, part 1 nowhere
    classes = torch.tensor([0, 0, 1])
    s = random_box_part_metrics(masks, _labels(n), classes, box_size=3, k=4, n_draws=3)
    assert {k: v.score for k, v in s.items()} == {"consistency": 1.0, "stability": 1.0,
                                                  "purity": 1.0}  # fmt: skip
    empty = torch.zeros_like(masks)
    s = random_box_part_metrics(empty, _labels(n), classes, box_size=3, k=4, n_draws=3)
    assert s["consistency"].score == 0.0 and s["purity"].score == 0.0
    assert s["stability"].score == 1.0  # two empty part sets are equal
    assert s["purity"].per_prototype.shape == (3,)


def test_random_boxes_find_a_half_image_part_half_of_the_time():
    n = 600
    masks = torch.zeros(n, 1, 10, 10, dtype=torch.bool)
    masks[:, 0, :, :5] = True  # the left half; a 1-pixel box finds it with p = 1/2
    classes = torch.tensor([0, 1])
    labels = _labels(n)
    low = random_box_part_metrics(masks, labels, classes, box_size=1, threshold=0.4, n_draws=2)
    high = random_box_part_metrics(masks, labels, classes, box_size=1, threshold=0.6, n_draws=2)
    assert low["consistency"].score == 1.0 and high["consistency"].score == 0.0
    # two independent boxes agree with p = 1/2 x 1/2 + 1/2 x 1/2
    assert s_close(low["stability"].score, 0.5, 0.06)
    # purity: top-10 among random activations, the part in each box with p = 1/2
    assert 0.3 < low["purity"].score < 0.8


def s_close(value, target, tol):
    return abs(value - target) <= tol


def test_random_box_metrics_are_reproducible_and_checked():
    masks = torch.rand(6, 2, 8, 8) > 0.5
    a = random_box_part_metrics(masks, _labels(6), torch.tensor([0, 1]), box_size=2, seed=1)
    b = random_box_part_metrics(masks, _labels(6), torch.tensor([0, 1]), box_size=2, seed=1)
    assert all(torch.equal(a[k].per_prototype, b[k].per_prototype) for k in a)
    with pytest.raises(ValueError, match="labels"):
        random_box_part_metrics(masks, _labels(5), torch.tensor([0, 1]))


def test_untrained_protopnet_reinitialises_everything_and_leaves_the_rng_alone(make_protopnet):
    model = make_protopnet(0).eval()
    with torch.no_grad():  # "trained": every parameter away from its initial value
        for p in model.parameters():
            p.add_(0.5)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    fresh = untrained_protopnet(model, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(fresh.prototype_classes, model.prototype_classes)
    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters(), strict=True):
        assert p.shape == q.shape
        assert not torch.equal(p, q), name
    again = untrained_protopnet(model, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(fresh.parameters(), again.parameters(),
                                                 strict=True))  # fmt: skip
    assert not fresh.training
    with pytest.raises(TypeError, match="ProtoPNet"):
        untrained_protopnet(torch.nn.Linear(2, 2))


def test_untrained_model_runs_through_the_part_metrics(make_protopnet, make_images):
    model = make_protopnet(0)
    x, y = make_images(8)[:]
    masks = torch.zeros(8, 2, 16, 16, dtype=torch.bool)
    masks[:, 0, :8] = True
    s = prototype_part_metrics(untrained_protopnet(model), x, masks, y, box_size=4)
    assert set(s) == {"consistency", "stability", "purity"}
