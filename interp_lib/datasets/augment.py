"""Seeded on-the-fly image augmentation: random flip, shift, rotation and shear.

ProtoPNet's released code augments the cropped CUB images offline (30 copies of each, by
rotation of up to 15 degrees, skew, shear, random distortion and flips). On our small
offline sets the same idea is done on the fly: :class:`RandomAffine` draws one random
affine map per image and resamples it with :func:`torch.nn.functional.grid_sample`, and
:class:`AugmentedDataset` applies it to the training set each time an image is read. Use
it for training only: push, prototype seeding, validation and test read the
un-augmented images.

Why not ``torchvision.transforms.v2``? Its random transforms draw from the global torch
generator, so they cannot be seeded without seeding everything else (and DataLoader
workers make the stream depend on the number of workers), and their affine transform pads
with a constant. Ours draws from its own ``torch.Generator`` (reproducible under a seed,
in a DataLoader with or without workers), handles a batch in one ``grid_sample`` call and
reflects the image at its border, so no constant-coloured corners appear. With all ranges
at zero it returns the input up to float rounding (~1e-6); a 90-degree-free flip or an
integer shift moves pixels exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, get_worker_info

from .._validation import check_choice, make_generator

__all__ = ["AugmentedDataset", "RandomAffine"]


@dataclass(frozen=True)
class RandomAffine:
    """A random horizontal flip, shift, rotation, shear and scale per image.

    Each image gets its own map: a rotation by ``U(-degrees, degrees)``, a horizontal
    shear by ``U(-shear, shear)`` degrees, a scale factor ``U(*scale)``, a shift by
    ``U(-shift, shift)`` pixels along each axis, all about the image centre, and a
    left-right mirror with probability ``flip``. Pixels that come from outside the image
    are filled by reflecting it at its border (``padding_mode``).

    Parameters
    ----------
    degrees : float
        Largest rotation in degrees (15, as the original ProtoPNet's augmentation).
    shift : float
        Largest translation in pixels along each axis (4).
    shear : float
        Largest horizontal shear angle in degrees (10).
    scale : (float, float)
        Range of the zoom factor ((1, 1): no zoom).
    flip : float
        Probability of a horizontal mirror (0.5).
    padding_mode : {"reflection", "border", "zeros"}
        How ``grid_sample`` fills pixels mapped from outside the image.

    Examples
    --------
    >>> aug = RandomAffine()
    >>> x = torch.rand(8, 3, 64, 64)
    >>> torch.equal(aug(x, seed=0), aug(x, seed=0))
    True
    """

    degrees: float = 15.0
    shift: float = 4.0
    shear: float = 10.0
    scale: tuple[float, float] = (1.0, 1.0)
    flip: float = 0.5
    padding_mode: str = "reflection"

    def __post_init__(self) -> None:
        for name in ("degrees", "shift", "shear"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{name} must be a non-negative number, got {v!r}.")
        if not 0.0 <= float(self.flip) <= 1.0:
            raise ValueError(f"flip must be a probability in [0, 1], got {self.flip!r}.")
        lo, hi = (float(s) for s in self.scale)
        if not 0.0 < lo <= hi:
            raise ValueError(f"scale must be a range (lo, hi) with 0 < lo <= hi, got {self.scale}.")
        check_choice(self.padding_mode, "padding_mode", ("reflection", "border", "zeros"))

    def sample(self, n: int, seed: int | torch.Generator | None = None) -> torch.Tensor:
        """Random maps for ``n`` images, as ``(n, 2, 3)`` pixel-space affine matrices.

        Row ``i`` maps a pixel position ``(x, y)`` of image ``i`` (origin at the image
        centre, ``x`` right, ``y`` down) to where that content moves:
        ``[x', y'] = A[i, :, :2] @ [x, y] + A[i, :, 2]``. Draws from ``seed`` only.
        """
        g = make_generator(seed)
        u = torch.rand(n, 5, generator=g, dtype=torch.float64)
        angle = torch.deg2rad((2 * u[:, 0] - 1) * self.degrees)
        shear = torch.deg2rad((2 * u[:, 1] - 1) * self.shear)
        lo, hi = (float(s) for s in self.scale)
        zoom = lo + (hi - lo) * u[:, 2]
        mirror = torch.where(u[:, 3] < self.flip, -1.0, 1.0).to(torch.float64)
        shift = (2 * torch.rand(n, 2, generator=g, dtype=torch.float64) - 1) * self.shift
        del u
        c, s = torch.cos(angle), torch.sin(angle)
        rot = torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2)
        shr = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
        shr[:, 0, 1] = torch.tan(shear)
        lin = rot @ shr * zoom[:, None, None]
        lin = lin * torch.stack((mirror, torch.ones_like(mirror)), -1)[:, None, :]  # flip x first
        return torch.cat((lin, shift[:, :, None]), dim=2)

    def apply(self, images: torch.Tensor, maps: torch.Tensor, *, mode: str = "bilinear"):
        """Resample ``images`` ``(N, C, H, W)`` under ``maps`` ``(N, 2, 3)`` (from
        :meth:`sample`); ``mode="nearest"`` for masks and label maps."""
        n, _, h, w = images.shape
        lin, shift = maps[:, :, :2], maps[:, :, 2]
        inv = torch.linalg.inv(lin)  # output pixel -> input pixel: inv @ (p - shift)
        half = torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64)
        # in grid_sample's normalised coordinates (align_corners=False): p = half * q
        theta_lin = inv * half[None, None, :] / half[None, :, None]
        theta_t = -(inv @ shift[:, :, None])[:, :, 0] / half[None, :]
        src = images if images.is_floating_point() else images.float()
        theta = torch.cat((theta_lin, theta_t[:, :, None]), dim=2).to(src.device, src.dtype)
        grid = F.affine_grid(theta, [n, images.shape[1], h, w], align_corners=False)
        out = F.grid_sample(src, grid, mode=mode, padding_mode=self.padding_mode,
                            align_corners=False)  # fmt: skip
        return out if images.is_floating_point() else out.round().to(images.dtype)

    def __call__(
        self, images: torch.Tensor, *, seed: int | torch.Generator | None = None
    ) -> torch.Tensor:
        """Augment one image ``(C, H, W)`` or a batch ``(N, C, H, W)`` (one map each).

        ``seed``: int, ``torch.Generator`` (advanced) or ``None`` (fresh randomness).
        """
        if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4):
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
            raise ValueError(
                f"images must be a tensor of shape (C, H, W) or (N, C, H, W), got {got}."
            )
        single = images.ndim == 3
        batch = images[None] if single else images
        out = self.apply(batch, self.sample(batch.shape[0], seed))
        return out[0] if single else out


class AugmentedDataset(Dataset):
    """A dataset whose images are augmented each time they are read (training only).

    ``AugmentedDataset(train, RandomAffine(), seed=0)[i]`` is ``train[i]`` with its image
    (the first element) passed through the augmentation; the label and any other element
    are returned unchanged, except tensors whose last two dimensions match the image's
    (masks), which follow the same map with nearest-neighbour resampling.

    The random maps come from a generator seeded by ``seed``, advanced by every read: the
    same sequence of reads gives the same images (a DataLoader with a seeded
    ``generator`` and ``num_workers=0`` is reproducible). A DataLoader reads a batch at
    once (:meth:`__getitems__`): its maps are drawn together and applied in one call. In
    a DataLoader worker the generator is re-seeded from the worker's seed (which the
    loader draws from its own generator each epoch), so workers neither repeat each
    other nor the previous epoch.

    Parameters
    ----------
    dataset : Dataset
        Yields ``(image (C, H, W), label, ...)``, ``image`` a floating tensor.
    augment : RandomAffine or callable
        Called as ``augment(image, seed=generator)``; a :class:`RandomAffine` also
        transforms masks.
    seed : int, torch.Generator or None
        Seed of the random maps.
    """

    def __init__(
        self,
        dataset: Dataset,
        augment: RandomAffine | None = None,
        *,
        seed: int | torch.Generator | None = 0,
    ) -> None:
        self.dataset = dataset
        self.augment = RandomAffine() if augment is None else augment
        if not callable(self.augment):
            raise TypeError(
                f"augment must be a RandomAffine or a callable, got {type(augment).__name__}."
            )
        self.generator = make_generator(seed)
        self._base_seed = int(self.generator.initial_seed())
        self._worker_seed: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str):
        # labels, images, info... of the wrapped dataset (only called when lookup fails)
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _generator(self) -> torch.Generator:
        info = get_worker_info()
        if info is not None and self._worker_seed != info.seed:
            self._worker_seed = info.seed
            self.generator.manual_seed((self._base_seed * 1_000_003 + info.seed) % 2**63)
        return self.generator

    def __getitem__(self, i: int):
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list:
        """The augmented samples ``indices``, drawn as one batch.

        A ``DataLoader`` (PyTorch 2.1 and later) reads a whole batch through this method:
        one random map per image, drawn together (``RandomAffine.sample(len(indices))``)
        and applied in one ``grid_sample`` call, much faster than image by
        image. Images of different sizes, or an augmentation other than
        :class:`RandomAffine`, are augmented one by one.
        """
        samples = [self.dataset[i] for i in indices]
        items = [list(s) if isinstance(s, (tuple, list)) else [s] for s in samples]
        for it in items:
            x = it[0]
            if not isinstance(x, torch.Tensor) or x.ndim != 3 or not x.is_floating_point():
                raise TypeError(
                    "AugmentedDataset needs samples (image, label, ...) with a floating "
                    f"image tensor of shape (C, H, W); got {type(x).__name__}"
                    f"{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}."
                )
        g = self._generator()
        shapes = {tuple(it[0].shape) for it in items}
        if not isinstance(self.augment, RandomAffine):
            for it in items:
                it[0] = self.augment(it[0], seed=g)
        elif len(shapes) > 1:
            for it in items:
                self._transform([it], self.augment.sample(1, g))
        elif items:
            self._transform(items, self.augment.sample(len(items), g))
        return [tuple(it) if len(it) > 1 else it[0] for it in items]

    def _transform(self, items: list[list], maps: torch.Tensor) -> None:
        """Apply ``maps`` (one per sample) in place to the images of ``items`` (same
        size) and, with nearest-neighbour resampling, to every other element that is a
        tensor with the images' height and width."""
        size = items[0][0].shape[-2:]
        out = self.augment.apply(torch.stack([it[0] for it in items]), maps)
        for it, x in zip(items, out, strict=True):
            it[0] = x
        for k in range(1, len(items[0])):
            column = [it[k] for it in items]
            if not all(
                isinstance(t, torch.Tensor) and t.ndim >= 2 and t.shape[-2:] == size
                and t.shape == column[0].shape
                for t in column
            ):  # fmt: skip
                continue
            flat = torch.stack(column).reshape(len(items), -1, *size)
            moved = self.augment.apply(flat, maps, mode="nearest")
            for it, t in zip(items, moved, strict=True):
                it[k] = t.reshape(column[0].shape)
