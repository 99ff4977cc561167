"""On-the-fly augmentation: seeded determinism, exact geometry, masks follow images."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from interp_lib.datasets.augment import AugmentedDataset, RandomAffine


def _images(n=6, h=24, w=20):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(0))


def test_same_seed_same_images_other_seed_differs():
    x, aug = _images(), RandomAffine()
    a, b, c = aug(x, seed=3), aug(x, seed=3), aug(x, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype


def test_zero_ranges_is_identity_and_flip_is_mirror():
    x = _images()
    still = RandomAffine(degrees=0, shift=0, shear=0, flip=0.0)
    torch.testing.assert_close(still(x, seed=0), x, atol=1e-5, rtol=0)
    mirror = RandomAffine(degrees=0, shift=0, shear=0, flip=1.0)
    torch.testing.assert_close(mirror(x, seed=0), x.flip(-1), atol=1e-5, rtol=0)


def test_integer_shift_moves_content_right_and_down():
    x, aug = _images(1), RandomAffine(degrees=0, shear=0, flip=0.0)
    maps = aug.sample(1, seed=0)
    maps[:, :, 2] = torch.tensor([[2.0, 3.0]], dtype=maps.dtype)  # 2 px right, 3 px down
    y = aug.apply(x, maps)
    torch.testing.assert_close(y[..., 3:, 2:], x[..., :-3, :-2], atol=1e-5, rtol=0)


def test_rotation_and_shear_stay_in_their_ranges():
    aug = RandomAffine(degrees=15, shear=10, shift=4, flip=0.0)
    maps = aug.sample(2000, seed=1)
    lin = maps[:, :, :2]
    # rotation R(a) @ shear [[1, t], [0, 1]]: first column is (cos a, sin a)
    angle = torch.rad2deg(torch.atan2(lin[:, 1, 0], lin[:, 0, 0]))
    assert angle.abs().max() <= 15 + 1e-9 and angle.abs().max() > 14
    assert maps[:, :, 2].abs().max() <= 4 + 1e-9
    det = torch.linalg.det(lin)
    torch.testing.assert_close(det, torch.ones_like(det))  # no zoom by default


def test_augmented_dataset_is_reproducible_and_varies_across_epochs():
    x = _images(8)
    y = torch.arange(8)
    masks = torch.zeros(8, 2, 24, 20, dtype=torch.bool)
    masks[:, :, 8:16, 6:14] = True
    ds = TensorDataset(x, y, masks)

    def epochs(seed, workers=0):
        aug = AugmentedDataset(ds, RandomAffine(), seed=seed)
        kw = {"num_workers": workers, "persistent_workers": False} if workers else {}
        ld = DataLoader(aug, batch_size=4, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), **kw)  # fmt: skip
        return [[b for b in ld] for _ in range(2)]

    first, again, other = epochs(0), epochs(0), epochs(1)
    for e1, e2 in zip(first, again, strict=True):
        for b1, b2 in zip(e1, e2, strict=True):
            assert all(torch.equal(t1, t2) for t1, t2 in zip(b1, b2, strict=True))
    assert not torch.equal(first[0][0][0], other[0][0][0])
    # a new epoch draws new maps: the same image is augmented differently
    order0 = torch.cat([b[1] for b in first[0]])
    order1 = torch.cat([b[1] for b in first[1]])
    im0 = torch.cat([b[0] for b in first[0]])[order0.argsort()]
    im1 = torch.cat([b[0] for b in first[1]])[order1.argsort()]
    assert not torch.allclose(im0, im1)
    # labels untouched, masks follow the image (still boolean, same area up to resampling)
    b = first[0][0]
    assert b[2].dtype == torch.bool and b[2].shape == (4, 2, 24, 20)
    assert (b[2].sum((1, 2, 3)) > 0).all()


@pytest.mark.slow
def test_augmented_dataset_reproducible_with_workers():
    x, y = _images(8), torch.arange(8)
    ds = TensorDataset(x, y)

    def run():
        aug = AugmentedDataset(ds, RandomAffine(), seed=0)
        ld = DataLoader(aug, batch_size=4, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
        return torch.cat([b[0] for b in ld])

    a, b = run(), run()
    assert torch.equal(a, b)
    # the two workers do not repeat each other's maps
    assert not torch.allclose(a[:4], a[4:])


def test_bad_input_fails_clearly():
    with pytest.raises(ValueError, match="degrees"):
        RandomAffine(degrees=-1)
    with pytest.raises(ValueError, match="flip"):
        RandomAffine(flip=2)
    with pytest.raises(ValueError, match="padding_mode"):
        RandomAffine(padding_mode="wrap")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        RandomAffine()(torch.rand(5, 5))
    ds = AugmentedDataset(TensorDataset(torch.arange(3), torch.arange(3)))
    with pytest.raises(TypeError, match="floating image"):
        ds[0]


def test_a_loader_batch_is_augmented_in_one_call_with_one_map_per_image():
    """A DataLoader reads a batch through ``__getitems__``: the images (and masks) of the
    batch are the augmentation's maps drawn for the whole batch at once, applied to the
    stacked images; a single read draws one map."""
    x, y = _images(6), torch.arange(6)
    masks = torch.zeros(6, 1, 24, 20, dtype=torch.bool)
    masks[:, :, 4:12, 2:9] = True
    aug = RandomAffine()
    calls = []
    orig = RandomAffine.apply

    def spy(self, images, maps, **kw):
        calls.append(images.shape[0])
        return orig(self, images, maps, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RandomAffine, "apply", spy)
        batch = next(iter(DataLoader(AugmentedDataset(TensorDataset(x, y, masks), aug, seed=3),
                                     batch_size=6)))  # fmt: skip
    assert calls == [6, 6]  # the images, then the masks: one call each for the batch
    maps = aug.sample(6, torch.Generator().manual_seed(3))
    torch.testing.assert_close(batch[0], aug.apply(x, maps), rtol=0, atol=0)
    assert torch.equal(batch[1], y)
    assert torch.equal(batch[2], aug.apply(masks, maps, mode="nearest"))
    one = AugmentedDataset(TensorDataset(x, y), aug, seed=3)[2]
    torch.testing.assert_close(one[0], aug.apply(x[2:3], aug.sample(1, 3))[0], rtol=0, atol=0)


def test_images_of_different_sizes_are_augmented_one_by_one():
    ds = [(torch.rand(3, 16, 16), 0), (torch.rand(3, 20, 12), 1)]
    out = AugmentedDataset(ds, RandomAffine(), seed=0).__getitems__([0, 1])
    assert [tuple(o[0].shape) for o in out] == [(3, 16, 16), (3, 20, 12)]
    assert [o[1] for o in out] == [0, 1]
