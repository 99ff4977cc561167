"""CUB-200-2011 loader on a tiny fake folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _fake_cub import make_fake_cub

from interp_lib.datasets import CUB200

N_CLASSES, PER_CLASS = 3, 6  # 4 official train + 2 test per class


@pytest.fixture(scope="module")
def cub(tmp_path_factory) -> Path:
    return make_fake_cub(tmp_path_factory.mktemp("cub"), N_CLASSES, PER_CLASS)


def test_official_split_and_validation_carve(cub):
    trainval = CUB200(cub, "trainval", image_size=8)
    train = CUB200(cub, "train", image_size=8, val_fraction=0.25, seed=0)
    val = CUB200(cub, "val", image_size=8, val_fraction=0.25, seed=0)
    test = CUB200(cub, "test", image_size=8)
    assert len(trainval) == 12 and len(test) == 6 and len(train) == 9 and len(val) == 3
    assert sorted(train.image_ids + val.image_ids) == trainval.image_ids
    assert not set(test.image_ids) & set(trainval.image_ids)
    assert torch.equal(torch.bincount(val.labels), torch.ones(3, dtype=torch.long))
    assert CUB200(cub, "val", val_fraction=0.25, seed=0).image_ids == val.image_ids
    assert {tuple(CUB200(cub, "val", val_fraction=0.25, seed=s).image_ids) for s in range(6)} != {
        tuple(val.image_ids)
    }
    assert test.class_names == ["001.Bird_0", "002.Bird_1", "003.Bird_2"]
    # parent folder works too
    assert len(CUB200(cub.parent, "test")) == 6


def test_crop_resize_and_labels(cub):
    ds = CUB200(cub, "all", image_size=8, normalize=False)
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and y == 0
    # the crop holds only the box's colour
    assert torch.allclose(x[:, 0, 0], torch.tensor([50, 0, 200]) / 255.0, atol=1e-6)
    assert torch.allclose(x, x[:, :1, :1].expand_as(x))
    assert int(ds[17][1]) == 2
    full = CUB200(cub, "all", crop=False, image_size=None, normalize=False)
    assert full[0][0].shape == (3, 30, 40)
    norm = CUB200(cub, "all", image_size=8)[0][0]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(norm, (x - mean[:, None, None]) / std[:, None, None], atol=1e-5)


def test_keypoints_follow_crop_and_resize(cub):
    ds = CUB200(cub, "test", image_size=8, return_parts=True)
    _, _, kp = ds[0]
    assert kp.shape == (15, 3)
    # (20, 13) in the original -> (10, 8) in the 20x16 crop -> (4, 4) at 8x8
    assert torch.allclose(kp[0], torch.tensor([4.0, 4.0, 1.0]))
    assert float(kp[1, 2]) == 0.0  # outside the crop: not visible
    assert float(kp[2:, 2].sum()) == 0.0
    nocrop = CUB200(cub, "test", crop=False, image_size=None, return_parts=True)
    assert torch.allclose(nocrop[0][2][1], torch.tensor([2.0, 2.0, 1.0]))


def test_clear_errors(cub, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"images\.txt"):
        CUB200(tmp_path, "train")
    bad = tmp_path / "CUB_200_2011"
    bad.mkdir()
    for f in ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt"):
        (bad / f).write_text((cub / f).read_text())
    with pytest.raises(FileNotFoundError, match=r"bounding_boxes\.txt"):
        CUB200(bad, "train")
    with pytest.raises(FileNotFoundError, match=r"part_locs\.txt"):
        CUB200(bad, "train", crop=False, return_parts=True)
    with pytest.raises(ValueError, match="split"):
        CUB200(cub, "validation")
    with pytest.raises(ValueError, match="val_fraction"):
        CUB200(cub, "val", val_fraction=0.0)
