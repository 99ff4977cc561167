"""CUB-200-2011 from a local folder: bounding-box crops, official split, validation split.

Point ``root`` at the extracted ``CUB_200_2011`` folder (or its parent). The files used::

    images.txt               <image_id> <relative path under images/>
    image_class_labels.txt   <image_id> <class_id, 1-based>
    train_test_split.txt     <image_id> <1 = train, 0 = test>
    classes.txt              <class_id> <name>
    bounding_boxes.txt       <image_id> <x> <y> <width> <height>   (crop=True)
    parts/part_locs.txt      <image_id> <part_id> <x> <y> <visible> (keypoints)
    parts/parts.txt          <part_id> <name>                       (optional)
    images/<class folder>/<file>.jpg

ProtoPNet trains on the bounding-box crops resized to 224 x 224, on the official training
set; here the validation split used for model selection is carved (stratified, seeded)
from the official training set, so the test set is never used to choose anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .._validation import check_choice
from ._base import stratified_split
from .folders import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CUB200", "CUB_PART_NAMES"]

SPLITS = ("train", "val", "test", "trainval", "all")
CUB_PART_NAMES = (
    "back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg",
    "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat",
)  # fmt: skip


def _read_table(path: Path, n_cols: int, *, last_is_text: bool = False) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(
            f"CUB-200-2011 file {str(path)!r} is missing. root must be the extracted "
            "CUB_200_2011 folder (with images.txt, image_class_labels.txt, "
            "train_test_split.txt, classes.txt, bounding_boxes.txt, parts/, images/)."
        )
    rows = []
    for k, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=n_cols - 1) if last_is_text else line.split()
        if len(parts) != n_cols:
            raise ValueError(
                f"{str(path)!r} line {k}: expected {n_cols} fields, got {len(parts)} ({line!r})."
            )
        rows.append(parts)
    return rows


class CUB200(Dataset):
    """CUB-200-2011 birds, optionally cropped to their bounding boxes, with keypoints.

    Parameters
    ----------
    root : str or Path
        The ``CUB_200_2011`` folder, or a folder that contains it.
    split : {"train", "val", "test", "trainval", "all"}
        ``"trainval"`` is the official training set, ``"train"`` and ``"val"`` cut it
        (stratified by class, ``val_fraction`` of each class to validation), ``"test"``
        is the official test set.
    crop : bool
        Crop each image to its bounding box (as ProtoPNet does).
    image_size : int or None
        Resize the (cropped) image to ``image_size x image_size`` (aspect not kept, as in
        ProtoPNet); None keeps its size.
    transform : callable, optional
        Applied to the cropped, resized PIL image. Default: ``ToTensor`` then ImageNet
        normalisation (``normalize=True``). Keypoints follow the crop and resize only, so
        keep geometric augmentation out of ``transform`` when you use them.
    normalize : bool
        Whether the default transform normalises with ``IMAGENET_MEAN``/``IMAGENET_STD``.
    val_fraction : float in [0, 1)
        Share of each class of the official training set used for validation.
    seed : int
        Seed of the validation split.
    return_parts : bool
        If True, ``dataset[i]`` is ``(image, label, keypoints)`` with keypoints of shape
        ``(15, 3)``: x, y in the pixel coordinates of the returned image, visibility 0/1
        (a keypoint outside the crop counts as not visible).

    Attributes
    ----------
    labels : torch.Tensor, shape (N,)
        0-based class of every sample; ``class_names`` and ``part_names`` name them.
    boxes : torch.Tensor, shape (N, 4)
        Bounding boxes ``(x, y, width, height)`` in original pixels.
    image_ids : list of int
        CUB image ids of the samples.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        crop: bool = True,
        image_size: int | None = 224,
        transform: Callable | None = None,
        normalize: bool = True,
        val_fraction: float = 0.1,
        seed: int = 0,
        return_parts: bool = False,
    ) -> None:
        check_choice(split, "split", SPLITS)
        root = Path(root)
        if not (root / "images.txt").is_file() and (root / "CUB_200_2011").is_dir():
            root = root / "CUB_200_2011"
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}.")
        if split == "val" and val_fraction == 0:
            raise ValueError("split='val' needs val_fraction > 0.")
        self.root, self.crop, self.image_size, self.return_parts = (
            root,
            crop,
            image_size,
            return_parts,
        )

        paths = {int(i): p for i, p in _read_table(root / "images.txt", 2, last_is_text=True)}
        cls = {int(i): int(c) - 1 for i, c in _read_table(root / "image_class_labels.txt", 2)}
        is_train = {int(i): t == "1" for i, t in _read_table(root / "train_test_split.txt", 2)}
        names = _read_table(root / "classes.txt", 2, last_is_text=True)
        self.class_names = [n for _, n in sorted(names, key=lambda r: int(r[0]))]
        ids = sorted(paths)
        for table, fname in ((cls, "image_class_labels.txt"), (is_train, "train_test_split.txt")):
            missing = [i for i in ids if i not in table]
            if missing:
                raise ValueError(f"{fname} has no entry for image ids {missing[:5]}.")

        train_ids = [i for i in ids if is_train[i]]
        if split in ("train", "val"):
            labels = torch.tensor([cls[i] for i in train_ids])
            fr = (1.0 - val_fraction, val_fraction)
            tr, va = stratified_split(labels, fr, seed=seed) if val_fraction > 0 else (
                torch.arange(len(train_ids)), torch.zeros(0, dtype=torch.long))  # fmt: skip
            chosen = [train_ids[int(k)] for k in (tr if split == "train" else va)]
        elif split == "trainval":
            chosen = train_ids
        elif split == "test":
            chosen = [i for i in ids if not is_train[i]]
        else:
            chosen = ids
        self.image_ids = chosen
        self.paths = [root / "images" / paths[i] for i in chosen]
        self.labels = torch.tensor([cls[i] for i in chosen], dtype=torch.long)

        self.boxes = torch.zeros(len(chosen), 4)
        if crop:
            boxes = {int(r[0]): [float(v) for v in r[1:]]
                     for r in _read_table(root / "bounding_boxes.txt", 5)}  # fmt: skip
            self.boxes = torch.tensor([boxes[i] for i in chosen], dtype=torch.float32)
        self.keypoints_raw: torch.Tensor | None = None
        self.part_names = list(CUB_PART_NAMES)
        locs_file = root / "parts" / "part_locs.txt"
        if return_parts or locs_file.is_file():
            if (root / "parts" / "parts.txt").is_file():
                rows = _read_table(root / "parts" / "parts.txt", 2, last_is_text=True)
                self.part_names = [n for _, n in sorted(rows, key=lambda r: int(r[0]))]
            index = {i: k for k, i in enumerate(chosen)}
            kp = torch.zeros(len(chosen), len(self.part_names), 3)
            for img, part, x, y, vis in _read_table(locs_file, 5):
                k = index.get(int(img))
                if k is not None:
                    kp[k, int(part) - 1] = torch.tensor([float(x), float(y), float(vis)])
            self.keypoints_raw = kp  # (N, n_parts, 3) in original image pixels
        if transform is None:
            from torchvision import transforms as T

            steps = [T.ToTensor()] + (
                [T.Normalize(IMAGENET_MEAN, IMAGENET_STD)] if normalize else []
            )
            transform = T.Compose(steps)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def _geometry(self, i: int, width: int, height: int) -> tuple[int, int, int, int]:
        """Crop box (x0, y0, x1, y1) in whole pixels, clamped to the image."""
        if not self.crop:
            return 0, 0, width, height
        x, y, w, h = self.boxes[i].tolist()
        x0, y0 = max(0, round(x)), max(0, round(y))
        x1, y1 = min(width, round(x + w)), min(height, round(y + h))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"image id {self.image_ids[i]}: bounding box {self.boxes[i].tolist()} lies "
                f"outside the {width}x{height} image."
            )
        return x0, y0, x1, y1

    def keypoints(self, i: int, width: int, height: int) -> torch.Tensor:
        """Keypoints of sample ``i`` in the returned image's pixels, shape (n_parts, 3).

        ``width`` and ``height`` are the original image's size.
        """
        if self.keypoints_raw is None:
            raise ValueError("no keypoints: parts/part_locs.txt was not found under root.")
        x0, y0, x1, y1 = self._geometry(i, width, height)
        kp = self.keypoints_raw[i].clone()
        sx = self.image_size / (x1 - x0) if self.image_size else 1.0
        sy = self.image_size / (y1 - y0) if self.image_size else 1.0
        inside = (kp[:, 0] >= x0) & (kp[:, 0] <= x1) & (kp[:, 1] >= y0) & (kp[:, 1] <= y1)
        kp[:, 0] = (kp[:, 0] - x0) * sx
        kp[:, 1] = (kp[:, 1] - y0) * sy
        kp[:, 2] = kp[:, 2] * inside
        return kp

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        width, height = img.size
        box = self._geometry(i, width, height)
        if self.crop:
            img = img.crop(box)
        if self.image_size:
            img = img.resize((self.image_size, self.image_size), Image.BILINEAR)
        x = self.transform(img)
        y = int(self.labels[i])
        if not self.return_parts:
            return x, y
        return x, y, self.keypoints(i, width, height)
