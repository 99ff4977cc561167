"""Real handwritten digits that ship with scikit-learn (1797 images, 8x8, 10 classes).

The images come from ``sklearn.datasets.load_digits`` (no download). Pixel values 0..16
are scaled to [0, 1], optionally resized (bilinear) and repeated to 3 channels, and
optionally standardised with the mean and standard deviation of the training split.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .._validation import check_choice, check_fraction, check_int
from ._base import TensorImageDataset, stratified_split

__all__ = ["digits", "digits_tensors"]

SPLITS = ("train", "test", "all")


def digits_tensors(*, image_size: int = 8, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as tensors in [0, 1].

    Parameters
    ----------
    image_size : int
        Side of the returned images; 8 keeps the originals, larger values resize
        bilinearly (e.g. 32 for small CNNs).
    channels : {1, 3}
        3 repeats the grey channel (for ImageNet-style backbones).

    Returns
    -------
    images : torch.Tensor, shape (1797, channels, image_size, image_size), float32 in [0, 1]
    labels : torch.Tensor, shape (1797,), int64 in 0..9
    """
    from sklearn.datasets import load_digits

    image_size = check_int(image_size, "image_size", minimum=2)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
        x = x.clamp(0.0, 1.0)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    return x.contiguous(), torch.as_tensor(bunch.target, dtype=torch.long)


def digits(
    split: str = "train",
    *,
    image_size: int = 8,
    channels: int = 1,
    normalize: bool = False,
    test_fraction: float = 0.25,
    seed: int = 0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TensorImageDataset:
    """scikit-learn's handwritten digits as a torch ``Dataset`` with a seeded split.

    Parameters
    ----------
    split : {"train", "test", "all"}
        Which part of the seeded stratified train/test split to return.
    image_size : int
        Image side (8 = original; e.g. 32 resizes bilinearly).
    channels : {1, 3}
        Number of channels (3 repeats the grey one).
    normalize : bool
        If True, subtract the per-channel mean and divide by the per-channel standard
        deviation of the *training* split (same seed), so train and test share one affine
        map; the values used are in ``dataset.mean`` and ``dataset.std``. If False, pixels
        stay in [0, 1].
    test_fraction : float in (0, 1)
        Share of each class that goes to the test split.
    seed : int
        Seed of the split (the images themselves are fixed).
    transform : callable, optional
        Applied to each image tensor in ``__getitem__``.

    Returns
    -------
    TensorImageDataset
        ``dataset[i] -> (image (channels, image_size, image_size), label)``; ``dataset.images``
        ``(N, channels, image_size, image_size)`` and ``dataset.labels`` ``(N,)`` hold all samples,
        ``dataset.indices`` their rows in the full 1797-image set.
    """
    check_choice(split, "split", SPLITS)
    test_fraction = check_fraction(test_fraction, "test_fraction")
    if test_fraction >= 1.0:
        raise ValueError(f"test_fraction must be below 1, got {test_fraction}.")
    x, y = digits_tensors(image_size=image_size, channels=channels)
    train_idx, test_idx = stratified_split(y, (1.0 - test_fraction, test_fraction), seed=seed)
    idx = {"train": train_idx, "test": test_idx, "all": torch.arange(len(y))}[split]
    info: dict = {"class_names": [str(i) for i in range(10)], "split": split, "seed": seed}
    if normalize:
        ref = x[train_idx]
        mean = ref.mean(dim=(0, 2, 3))
        std = ref.std(dim=(0, 2, 3))
        x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        info.update(mean=mean, std=std)
    return TensorImageDataset(
        x[idx], y[idx], extras={"indices": idx}, transform=transform, info=info
    )
