"""Plumbing shared by the image sets: a tensor-backed dataset and seeded stratified splits.

:class:`TensorImageDataset` holds images, labels and optional per-sample extras (part
masks, angles...) as tensors, so a split is a cheap index and the extras stay aligned.
:func:`stratified_split` cuts indices into groups that keep each class's share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from .._validation import check_split_fractions, check_split_labels, make_generator

__all__ = ["TensorImageDataset", "stratified_split", "train_val_test_split"]


def stratified_split(
    labels: torch.Tensor | Sequence[int],
    fractions: Sequence[float],
    *,
    seed: int | torch.Generator | None = 0,
) -> list[torch.Tensor]:
    """Seeded stratified split of sample indices.

    Every class is shuffled and cut by ``fractions``; the cut of each class is rounded so
    that every group gets ``round(fraction * class_size)`` samples (the last group takes
    the remainder), and groups are returned sorted.

    Parameters
    ----------
    labels : torch.Tensor or sequence of int, shape (N,)
        Class of every sample.
    fractions : sequence of float
        Share of each group; positive, summing to 1 (within 1e-6).
    seed : int, torch.Generator or None
        Seed of the shuffle; the same seed gives the same split.

    Returns
    -------
    list of torch.Tensor
        One sorted int64 index tensor per group.

    Raises
    ------
    ValueError
        Empty or non-1-D labels, labels that are not whole numbers, bad fractions.
    TypeError
        Labels or fractions that are not numbers.
    """
    labels = check_split_labels(labels)
    fr = check_split_fractions(fractions)
    g = make_generator(seed)
    groups: list[list[torch.Tensor]] = [[] for _ in fr]
    bounds = torch.cumsum(torch.tensor(fr, dtype=torch.float64), 0)
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        cuts = [0] + [round(float(b) * idx.numel()) for b in bounds[:-1]] + [idx.numel()]
        for k in range(len(fr)):
            groups[k].append(idx[cuts[k] : cuts[k + 1]])
    return [torch.sort(torch.cat(gr)).values for gr in groups]


class TensorImageDataset(Dataset):
    """Images, integer labels and aligned per-sample extras held as tensors.

    ``dataset[i]`` returns ``(image, label)``, or ``(image, label, extra)`` when
    ``return_extra`` names one of the extras (e.g. ``"masks"``).

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W)
        Float images.
    labels : torch.Tensor, shape (N,)
        Integer class labels.
    extras : dict of str to torch.Tensor, optional
        Per-sample tensors whose first dimension is ``N`` (e.g. ``masks`` of shape
        ``(N, n_parts, H, W)``); each is also reachable as an attribute.
    transform : callable, optional
        Applied to the image tensor in ``__getitem__`` (not to the stored tensors).
    return_extra : str, optional
        Name of an extra to return as a third element.
    info : dict, optional
        Metadata kept on splits (class names, part names, normalisation...), each key
        reachable as an attribute.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        extras: dict[str, torch.Tensor] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        return_extra: str | None = None,
        info: dict | None = None,
    ) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}.")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}."
            )
        extras = dict(extras or {})
        for name, t in extras.items():
            if t.shape[0] != images.shape[0]:
                raise ValueError(
                    f"extra {name!r} has {t.shape[0]} rows, expected {images.shape[0]}."
                )
        if return_extra is not None and return_extra not in extras:
            raise ValueError(f"return_extra must be one of {sorted(extras)}, got {return_extra!r}.")
        self.images = images
        self.labels = labels
        self.extras = extras
        self.transform = transform
        self.return_extra = return_extra
        self.info = dict(info or {})

    def __getattr__(self, name: str):
        # only called when normal lookup fails: expose extras and info as attributes
        d = self.__dict__
        if name in d.get("extras", {}):
            return d["extras"][name]
        if name in d.get("info", {}):
            return d["info"][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int):
        x = self.images[i]
        if self.transform is not None:
            x = self.transform(x)
        y = int(self.labels[i])
        if self.return_extra is None:
            return x, y
        return x, y, self.extras[self.return_extra][i]

    @property
    def n_classes(self) -> int:
        """Number of classes (from ``info['class_names']`` when given, else max label + 1)."""
        names = self.info.get("class_names")
        return len(names) if names is not None else int(self.labels.max()) + 1

    def subset(self, indices: torch.Tensor | Sequence[int]) -> TensorImageDataset:
        """A dataset of the given samples, with the same transform, extras and metadata."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return type(self)(
            self.images[idx],
            self.labels[idx],
            extras={k: v[idx] for k, v in self.extras.items()},
            transform=self.transform,
            return_extra=self.return_extra,
            info=self.info,
        )


def train_val_test_split(
    dataset: TensorImageDataset,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    seed: int | torch.Generator | None = 0,
) -> tuple[TensorImageDataset, ...]:
    """Seeded stratified split of a :class:`TensorImageDataset` into datasets.

    Parameters
    ----------
    dataset : TensorImageDataset
        The set to cut (its extras, e.g. masks, follow the samples).
    fractions : sequence of float
        Shares of the parts, e.g. ``(0.7, 0.15, 0.15)`` for train/val/test or
        ``(0.8, 0.2)`` for train/test.
    seed : int, torch.Generator or None
        Seed of the split.

    Returns
    -------
    tuple of TensorImageDataset
        One dataset per fraction, in order.
    """
    if not isinstance(dataset, TensorImageDataset):
        raise TypeError(
            f"dataset must be a TensorImageDataset (e.g. from birds() or digits()), "
            f"got {type(dataset).__name__}. For other datasets use stratified_split on "
            "their labels and torch.utils.data.Subset."
        )
    return tuple(dataset.subset(i) for i in stratified_split(dataset.labels, fractions, seed=seed))
