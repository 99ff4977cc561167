"""Loaders for real data: clear errors when absent, ImageFolder on a fake tree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from interp_lib.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    cifar10,
    image_folder,
    imagenet_transform,
    mnist,
)


@pytest.mark.parametrize("loader", [mnist, cifar10])
def test_missing_torchvision_set_points_at_download(loader, tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        loader(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert not any(tmp_path.iterdir())  # nothing was downloaded or created


def test_mnist_reads_a_local_copy(tmp_path):
    # the idx format: magic, sizes (big-endian int32), then uint8 data
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    for prefix in ("train", "t10k"):
        head = np.array([2051, 2, 28, 28], dtype=">i4").tobytes()
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(head + imgs.tobytes())
        head = np.array([2049, 2], dtype=">i4").tobytes()
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(head + bytes([3, 7]))
    ds = mnist(tmp_path, train=False)
    x, y = ds[1]
    assert len(ds) == 2 and y == 7 and x.shape == (1, 28, 28)
    assert torch.allclose(x[0], torch.as_tensor(imgs[1], dtype=torch.float32) / 255)


def test_image_folder_with_imagenet_normalisation(tmp_path):
    for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / c).mkdir()
        for k in range(2):
            Image.fromarray(np.full((20, 30, 3), colour, dtype=np.uint8)).save(
                tmp_path / c / f"{k}.png"
            )
    ds = image_folder(tmp_path, image_size=16)
    assert ds.classes == ["cat", "dog"] and len(ds) == 4
    x, y = ds[3]
    assert x.shape == (3, 16, 16) and y == 1
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    expect = (torch.tensor([0.0, 0.0, 1.0]) - mean) / std
    assert torch.allclose(x.mean(dim=(1, 2)), expect, atol=1e-5)
    aug = image_folder(tmp_path, image_size=12, train=True)
    assert aug[0][0].shape == (3, 12, 12)
    assert len(imagenet_transform(64).transforms) == 4


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder(tmp_path / "nowhere")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(FileNotFoundError, match="one sub-folder per"):
        image_folder(tmp_path)
