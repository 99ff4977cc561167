"""scikit-learn digits as a torch dataset."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from interp_lib.datasets import digits, digits_tensors, stratified_split


def test_tensors_match_sklearn():
    x, y = digits_tensors()
    ref = load_digits()
    assert x.shape == (1797, 1, 8, 8)
    assert torch.allclose(x[:, 0] * 16, torch.as_tensor(ref.images, dtype=torch.float32))
    assert torch.equal(y, torch.as_tensor(ref.target))


def test_resize_and_channels():
    x, _ = digits_tensors(image_size=32, channels=3)
    assert x.shape == (1797, 3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 2])
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    # bilinear resize keeps the mean brightness
    x8, _ = digits_tensors()
    assert torch.allclose(x.mean(dim=(1, 2, 3)), x8.mean(dim=(1, 2, 3)), atol=0.02)
    with pytest.raises(ValueError, match="channels"):
        digits_tensors(channels=2)


def test_split_is_stratified_disjoint_and_seeded():
    tr, te = digits("train", seed=1), digits("test", seed=1)
    assert len(tr) + len(te) == 1797
    assert not set(tr.indices.tolist()) & set(te.indices.tolist())
    share = torch.bincount(te.labels, minlength=10) / torch.bincount(
        torch.cat([tr.labels, te.labels]), minlength=10
    )
    assert torch.allclose(share, torch.full((10,), 0.25), atol=0.01)
    assert torch.equal(digits("test", seed=1).indices, te.indices)
    assert not torch.equal(digits("test", seed=2).indices, te.indices)
    assert len(digits("all")) == 1797
    x, y = tr[0]
    assert x.shape == (1, 8, 8) and 0 <= y <= 9


def test_normalize_uses_train_statistics():
    tr = digits("train", image_size=16, channels=3, normalize=True, seed=0)
    te = digits("test", image_size=16, channels=3, normalize=True, seed=0)
    assert torch.allclose(tr.images.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(tr.images.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
    assert torch.equal(tr.mean, te.mean)
    raw = digits("test", image_size=16, channels=3, seed=0)
    assert torch.allclose(te.images, (raw.images - te.mean[:, None, None]) / te.std[:, None, None])


def test_transform_and_errors():
    ds = digits("train", transform=lambda t: t * 2)
    assert torch.allclose(ds[0][0], ds.images[0] * 2)
    with pytest.raises(ValueError, match="split"):
        digits("validation")
    with pytest.raises(ValueError, match="fractions"):
        stratified_split([0, 1, 0, 1], (0.5, 0.6))
