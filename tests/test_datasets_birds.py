"""Procedural birds: determinism, masks, balance, and that only parts reveal the class."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from _helpers import single_thread
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from interp_lib.datasets import PARTS, VARIANTS, bird_classes, birds, train_val_test_split

#: One torch thread for the whole module (its module-scoped fixtures included): many small
#: tensor ops, which a shared 2-core box runs much faster on one thread.
one_thread = pytest.fixture(scope="module", autouse=True, name="one_thread")(single_thread)


@pytest.fixture(scope="module")
def plain():
    return birds(6, image_size=64, seed=5, difficulty=0.0)


def test_same_seed_same_data_other_seed_differs():
    a = birds(3, seed=1, difficulty=0.7, classes=4)
    b = birds(3, seed=1, difficulty=0.7, classes=4)
    c = birds(3, seed=2, difficulty=0.7, classes=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    # classes never depend on the seed
    assert a.class_parts == c.class_parts


def test_shapes_types_and_balance(plain):
    n = 6 * 10
    assert plain.images.shape == (n, 3, 64, 64) and plain.images.dtype == torch.float32
    assert plain.masks.shape == (n, len(PARTS), 64, 64) and plain.masks.dtype == torch.bool
    assert float(plain.images.min()) >= 0.0 and float(plain.images.max()) <= 1.0
    assert torch.equal(torch.bincount(plain.labels), torch.full((10,), 6))
    assert plain.part_names == list(PARTS) and len(plain.class_names) == 10
    x, y = plain[0]
    assert x.shape == (3, 64, 64) and isinstance(y, int)


def test_masks_match_drawn_parts_on_plain_background(plain):
    imgs, masks = plain.images, plain.masks
    bird = masks.any(dim=1)
    # visible masks are disjoint
    assert int(masks.sum(dim=1).max()) == 1
    for i in range(len(plain)):
        bg = imgs[i, :, 0, 0]
        outside = imgs[i][:, ~bird[i]]
        inside = imgs[i][:, bird[i]]
        # every pixel outside the masks is the background colour ...
        assert torch.allclose(outside, bg[:, None], atol=1e-6)
        # ... and every pixel inside differs from it (part colours keep a distance)
        assert float((inside - bg[:, None]).norm(dim=0).min()) > 0.3
        # the bird lies inside the image: it never touches the border
        assert not bird[i, 0].any() and not bird[i, -1].any()
        assert not bird[i, :, 0].any() and not bird[i, :, -1].any()
    # body and head always visible; crest mask empty exactly for classes without a crest
    area = masks.sum(dim=(2, 3))
    assert bool((area[:, PARTS.index("body")] > 50).all())
    assert bool((area[:, PARTS.index("head")] > 20).all())
    no_crest = torch.tensor([plain.class_parts[int(y)]["crest"] == "none" for y in plain.labels])
    assert torch.equal(area[:, PARTS.index("crest")] == 0, no_crest)


def test_masks_inside_image_with_clutter():
    ds = birds(4, image_size=48, seed=0, difficulty=1.0, classes=3)
    bird = ds.masks.any(dim=1)
    assert bool(bird.any(dim=(1, 2)).all())
    assert not bird[:, 0].any() and not bird[:, -1].any()
    assert not bird[:, :, 0].any() and not bird[:, :, -1].any()


@pytest.mark.slow  # 40 images at 64 px and two cross-validated logistic regressions
def test_class_not_in_mean_colour_but_in_parts():
    ds = birds(40, image_size=64, seed=0, difficulty=0.5)
    y = ds.labels.numpy()
    mean_rgb = ds.images.mean(dim=(2, 3)).numpy()
    area = ds.masks.float().sum(dim=(2, 3)).numpy()
    area = area / area[:, [PARTS.index("body"), PARTS.index("head")]].sum(1, keepdims=True)
    clf = LogisticRegression(max_iter=2000)
    acc_colour = cross_val_score(clf, mean_rgb, y, cv=4).mean()
    acc_parts = cross_val_score(clf, area, y, cv=4).mean()
    # chance is 0.10; measured 0.10 (colour) and 0.70 (part areas) at 60 per class
    assert acc_colour < 0.2
    assert acc_parts > 0.5


def test_default_classes_differ_in_at_least_three_parts():
    cl = bird_classes(10)
    assert len({tuple(c.values()) for c in cl}) == 10
    for a, b in itertools.combinations(cl, 2):
        assert sum(a[p] != b[p] for p in VARIANTS) >= 3
    used = {p: {c[p] for c in cl} for p in VARIANTS}
    assert all(used[p] == set(VARIANTS[p]) for p in VARIANTS)  # every variant appears


def test_return_masks_and_custom_classes():
    classes = [{"beak": "long"}, {"beak": "hooked", "crest": "tuft"}]
    ds = birds(2, classes=classes, seed=0, return_masks=True)
    _, _, m = ds[1]
    assert m.shape == (len(PARTS), 64, 64) and m.dtype == torch.bool
    assert ds.class_parts[0]["tail"] == VARIANTS["tail"][0]
    with pytest.raises(ValueError, match="unknown part or variant"):
        birds(1, classes=[{"beak": "curly"}, {"beak": "long"}])
    with pytest.raises(ValueError, match="same part variants"):
        birds(1, classes=[{"beak": "long"}, {"beak": "long"}])
    with pytest.raises(ValueError, match="difficulty"):
        birds(1, difficulty=2.0)


def test_train_val_test_split_is_stratified_disjoint_and_seeded(plain):
    tr, va, te = train_val_test_split(plain, (0.5, 0.25, 0.25), seed=3)
    assert len(tr) + len(va) + len(te) == len(plain)
    for part in (tr, va, te):
        counts = torch.bincount(part.labels, minlength=10)
        assert int(counts.max() - counts.min()) <= 1
    # masks follow their images
    keys = {tuple(np.round(x.flatten()[:64].numpy(), 5)) for x in tr.images}
    assert not any(tuple(np.round(x.flatten()[:64].numpy(), 5)) in keys for x in te.images)
    tr2, _, _ = train_val_test_split(plain, (0.5, 0.25, 0.25), seed=3)
    assert torch.equal(tr.images, tr2.images) and torch.equal(tr.masks, tr2.masks)
    j = int(torch.nonzero((plain.images == tr.images[0]).all(dim=(1, 2, 3)))[0])
    assert torch.equal(plain.masks[j], tr.masks[0])
    assert tr.part_names == plain.part_names


def test_pickles_and_batches_with_masks():
    import pickle

    from torch.utils.data import DataLoader

    ds = birds(2, classes=3, image_size=32, return_masks=True)
    again = pickle.loads(pickle.dumps(ds))  # DataLoader workers pickle the dataset
    assert torch.equal(again.masks, ds.masks) and again.part_names == ds.part_names
    xb, yb, mb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 3, 32, 32) and yb.shape == (4,) and mb.shape == (4, len(PARTS), 32, 32)
    with pytest.raises(AttributeError):
        _ = ds.no_such_thing


def test_crop_to_birds_is_the_area_average_of_the_box():
    """A 40 x 40 bird box resized to 20 is the 2 x 2 average of the box's pixels, the
    bird fills the crop, and an image without a bird is resized whole."""
    from interp_lib.datasets import crop_to_birds

    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 80, 80, generator=g)
    masks = torch.zeros(2, 7, 80, 80, dtype=torch.bool)
    masks[0, 2, 10:50, 30:70] = True  # the body: rows 10-49, columns 30-69
    masks[0, 0, 40:50, 30:35] = True  # a leg inside the box (overlaps do not matter)
    out, m = crop_to_birds(images, masks, 20)
    assert out.shape == (2, 3, 20, 20) and m.shape == (2, 7, 20, 20) and m.dtype == torch.bool
    expected = torch.nn.functional.avg_pool2d(images[:1, :, 10:50, 30:70], 2)
    torch.testing.assert_close(out[:1], expected, rtol=0, atol=1e-6)
    # the leg: crop rows 15-19 and columns 0-2 (column 2 is half leg, and half counts)
    assert bool(m[0, 2].all()) and int(m[0, 0].sum()) == 5 * 3
    whole = torch.nn.functional.avg_pool2d(images[1:], 4)  # no bird: the whole 80 x 80 image
    torch.testing.assert_close(out[1:], whole, rtol=0, atol=1e-6)
    assert not bool(m[1].any())
    with pytest.raises(ValueError, match="same N"):
        crop_to_birds(images, masks[:1], 20)


def test_birds_crop_fills_the_image_with_the_bird():
    plain = birds(4, image_size=48, seed=3, classes=3)
    cropped = birds(4, image_size=48, seed=3, classes=3, crop=True)
    assert cropped.images.shape == plain.images.shape and cropped.info["crop"] is True
    assert torch.equal(cropped.labels, plain.labels)
    # the box is tight: the bird spans the crop (up to a thin tip that covers less than
    # half of the pixels it crosses after the reduction, so is not in the mask)
    from torchvision.ops import masks_to_boxes

    bird = cropped.masks.any(1)  # (N, H, W)
    extent = masks_to_boxes(bird)[:, 2:] - masks_to_boxes(bird)[:, :2] + 1  # (N, 2): w, h
    assert float(extent.min()) >= 0.9 * 48
    assert float(bird.float().mean()) > 2.5 * float(plain.masks.any(1).float().mean())
    with pytest.raises(TypeError, match="crop"):
        birds(2, classes=3, crop="yes")
