"""The four image sets a ProtoPNet run reads, from a CUB-200-2011 or an image folder.

ProtoPNet training reads the same training images twice: **augmented** for the gradient
steps, and **plain, in a fixed order** for the push (each prototype is projected onto a
patch of a real training image) and the convex last-layer stage; a validation split
selects the model and a test split is kept out. Which four sets these are is part of
the ProtoPNet protocol, not of a data set, so the pipeline lives here rather than in
:mod:`interp_lib.datasets` (which provides the sets themselves: :class:`~interp_lib.datasets.CUB200`,
:func:`~interp_lib.datasets.image_folder`). The command line
(``interp-lib-protopnet``) and a script build their run from the same function,
:func:`protopnet_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .._validation import check_bool, check_choice, check_fraction, check_int

__all__ = ["ProtoPNetData", "protopnet_data", "protopnet_transform"]

KINDS = ("cub", "folder")


def protopnet_transform(image_size: int, *, augment: bool):
    """Resize to ``image_size`` squared, ImageNet normalisation and, with ``augment``, the
    original's augmentation on the fly: rotation up to 15 degrees, shear up to 10, a
    horizontal flip (drawn from torch's global generator, which
    :func:`~interp_lib.protopnet.fit` seeds). A torchvision transform of PIL images to
    tensors ``(3, image_size, image_size)``."""
    from torchvision import transforms as T

    from ..datasets import IMAGENET_MEAN, IMAGENET_STD

    steps = [T.Resize((image_size, image_size))]
    if augment:
        steps += [
            T.RandomAffine(degrees=15, shear=(-10, 10, -10, 10)),
            T.RandomHorizontalFlip(),
        ]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)


@dataclass(frozen=True)
class ProtoPNetData:
    """The image sets of a ProtoPNet run (see the module docstring).

    Attributes
    ----------
    train : Dataset
        Training images, augmented; items ``(x, y, ...)``, ``x`` of shape ``(3, S, S)``.
    push : Dataset
        The same images, plain (push and last-layer stage).
    val : Dataset or None
        The validation split (model selection), if any.
    test : Dataset
        The test split.
    n_classes : int
    """

    train: Dataset
    push: Dataset
    val: Dataset | None
    test: Dataset
    n_classes: int

    def loaders(
        self, batch_size: int = 80, eval_batch_size: int = 100, num_workers: int = 0
    ) -> dict[str, DataLoader | None]:
        """``{"train", "push", "val", "test"}`` loaders: ``train`` shuffled with
        ``batch_size`` (per process under ``torchrun``), the others in order with
        ``eval_batch_size``; ``val`` is ``None`` without a validation split."""
        batch_size = check_int(batch_size, "batch_size")
        eval_batch_size = check_int(eval_batch_size, "eval_batch_size")
        num_workers = check_int(num_workers, "num_workers", minimum=0)
        common = dict(num_workers=num_workers, pin_memory=torch.cuda.is_available())
        out: dict[str, DataLoader | None] = {
            "train": DataLoader(self.train, batch_size=batch_size, shuffle=True, **common)
        }
        for name in ("push", "val", "test"):
            ds = getattr(self, name)
            out[name] = (
                None
                if ds is None
                else DataLoader(ds, batch_size=eval_batch_size, shuffle=False, **common)
            )
        return out


def protopnet_data(
    root: str | Path,
    *,
    kind: str = "cub",
    image_size: int = 224,
    augment: bool = True,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> ProtoPNetData:
    """The training, push, validation and test sets of a ProtoPNet run.

    Parameters
    ----------
    root : path
        ``kind="cub"``: the ``CUB_200_2011`` folder (images cropped to their bounding
        boxes, as in the paper; :class:`~interp_lib.datasets.CUB200`). ``kind="folder"``:
        a folder with ``train/`` and ``test/`` (and optionally ``val/``) image folders
        (``<split>/<class>/<image>``).
    kind : {"cub", "folder"}
    image_size : int
        Side of the square images.
    augment : bool
        Augment the training set (:func:`protopnet_transform`).
    val_fraction : float
        CUB only: the share of the official training set held out for validation
        (0: no validation split), drawn with ``seed``.
    seed : int
        CUB only: seed of the validation split.

    Raises
    ------
    FileNotFoundError
        If ``root`` (or a split folder) does not exist.
    ValueError
        For a bad ``kind``, ``image_size`` or ``val_fraction``.
    """
    check_choice(kind, "kind", KINDS)
    image_size = check_int(image_size, "image_size")
    check_bool(augment, "augment")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"the data folder root={str(root)!r} does not exist.")
    if kind == "cub":
        from ..datasets import CUB200

        val_fraction = check_fraction(val_fraction, "val_fraction") if val_fraction else 0.0
        kw = dict(crop=True, val_fraction=val_fraction, seed=check_int(seed, "seed", minimum=0))
        train = CUB200(
            root, "train", transform=protopnet_transform(image_size, augment=augment), **kw
        )
        return ProtoPNetData(
            train=train,
            push=CUB200(root, "train", image_size=image_size, **kw),
            val=CUB200(root, "val", image_size=image_size, **kw) if val_fraction > 0 else None,
            test=CUB200(root, "test", image_size=image_size, **kw),
            n_classes=len(train.class_names),
        )
    from ..datasets import image_folder

    plain = protopnet_transform(image_size, augment=False)
    train = image_folder(root / "train", transform=protopnet_transform(image_size, augment=augment))
    return ProtoPNetData(
        train=train,
        push=image_folder(root / "train", transform=plain),
        val=image_folder(root / "val", transform=plain) if (root / "val").is_dir() else None,
        test=image_folder(root / "test", transform=plain),
        n_classes=len(train.classes),
    )
