"""A tiny fake CUB-200-2011 folder: the real file layout, a few small images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

BOX = (10.0, 5.0, 20.0, 16.0)  # x, y, w, h of every bird


def _write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(str(v) for v in r) + "\n" for r in rows))


def make_fake_cub(parent: Path, n_classes: int = 3, per_class: int = 6, n_train: int = 4) -> Path:
    """Write ``parent/CUB_200_2011`` with ``per_class`` 40x30 images per class, the first
    ``n_train`` of each class in the official training set; a class-coloured box (the
    bird) inside each image; keypoint 1 at the box centre, 2 outside it, the rest hidden.
    """
    root = parent / "CUB_200_2011"
    images, labels, split, boxes, locs = [], [], [], [], []
    img_id = 0
    for c in range(n_classes):
        folder = f"{c + 1:03d}.Bird_{c}"
        for k in range(per_class):
            img_id += 1
            arr = np.zeros((30, 40, 3), dtype=np.uint8)  # h=30, w=40
            x, y, w, h = BOX
            arr[int(y) : int(y + h), int(x) : int(x + w)] = (50 * (c + 1), 7 * k, 200)
            rel = f"{folder}/img_{img_id}.png"
            (root / "images" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / "images" / rel)
            images.append((img_id, rel))
            labels.append((img_id, c + 1))
            split.append((img_id, int(k < n_train)))
            boxes.append((img_id, *BOX))
            for part in range(1, 16):
                xy = {1: (20.0, 13.0, 1), 2: (2.0, 2.0, 1)}.get(part, (0.0, 0.0, 0))
                locs.append((img_id, part, *xy))
    _write(root / "images.txt", images)
    _write(root / "image_class_labels.txt", labels)
    _write(root / "train_test_split.txt", split)
    _write(root / "bounding_boxes.txt", boxes)
    _write(root / "classes.txt", [(c + 1, f"{c + 1:03d}.Bird_{c}") for c in range(n_classes)])
    _write(root / "parts" / "part_locs.txt", locs)
    return root
