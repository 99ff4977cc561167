"""Procedural birds in the spirit of FunnyBirds, with exact per-part masks.

A bird is drawn from seven parts, in this order (later parts cover earlier ones): legs,
tail, body, wing, head (with an eye), beak, crest. Five parts come in variants and a
class is one combination of variants::

    beak  : short | long | hooked | wide
    wing  : plain | stripes | spots | bar      (a pattern in a second colour)
    tail  : fan | forked | pointed | square
    crest : none | spike | tuft
    legs  : short | long

Every colour (background, each part, the wing pattern) is drawn per sample,
independently of the class, so no global colour gives the class away: the class can
only be read from the shapes of the parts. The default classes are chosen greedily to
differ in as many parts as possible (the 10 default classes differ pairwise in at
least 3 of the 5 parts).

Each sample has a random pose (rotation, horizontal flip, scale, position) and, with
``difficulty`` > 0, background clutter (a smooth colour field and blobs), pixel noise
and occasional distractor shapes behind the bird. The masks are the *visible* pixels of
every part, shape ``(N, 7, H, W)`` bool, in the order of ``PARTS``; a part that a class
lacks (crest "none") has an empty mask.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from .._validation import check_bool, check_int, make_generator
from ._base import TensorImageDataset

__all__ = ["PARTS", "VARIANTS", "bird_classes", "birds", "crop_to_birds", "render_birds"]

PARTS = ("legs", "tail", "body", "wing", "head", "beak", "crest")
VARIANTS: dict[str, tuple[str, ...]] = {
    "beak": ("short", "long", "hooked", "wide"),
    "wing": ("plain", "stripes", "spots", "bar"),
    "tail": ("fan", "forked", "pointed", "square"),
    "crest": ("none", "spike", "tuft"),
    "legs": ("short", "long"),
}
_EXTENT = 0.62  # radius of the bird in its own coordinates (at scale 1)


# ---------------------------------------------------------------- shape primitives
# X, Y: (n, H, W) bird coordinates (x towards the beak, y up); all return bool masks.


def _ellipse(X, Y, cx, cy, ax, ay, angle=0.0):
    c, s = math.cos(angle), math.sin(angle)
    u, v = (X - cx) * c + (Y - cy) * s, -(X - cx) * s + (Y - cy) * c
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def _polygon(X, Y, pts):
    """Convex polygon, vertices in either orientation."""
    area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True))
    sign = 1.0 if area > 0 else -1.0
    inside = torch.ones_like(X, dtype=torch.bool)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        inside &= sign * ((x1 - x0) * (Y - y0) - (y1 - y0) * (X - x0)) >= 0
    return inside


def _segment(X, Y, p, q, half_width):
    (px, py), (qx, qy) = p, q
    dx, dy = qx - px, qy - py
    t = (((X - px) * dx + (Y - py) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0)
    return (X - px - t * dx) ** 2 + (Y - py - t * dy) ** 2 <= half_width**2


def _legs(X, Y, length):
    m = torch.zeros_like(X, dtype=torch.bool)
    for x in (-0.02, 0.07):
        foot = (x + 0.02, -0.1 - length)
        m |= _segment(X, Y, (x, -0.1), foot, 0.018)
        m |= _segment(X, Y, foot, (foot[0] + 0.06, foot[1]), 0.015)
    return m


def _tail(X, Y, kind):
    if kind == "fan":
        dx, dy = X + 0.2, Y - 0.02
        ang = torch.atan2(dy, -dx)  # 0 = pointing backwards
        return (dx * dx + dy * dy <= 0.27**2) & (ang.abs() <= math.radians(32)) & (dx < 0)
    if kind == "forked":
        outer = _polygon(X, Y, [(-0.18, 0.05), (-0.52, 0.19), (-0.52, -0.1)])
        notch = _polygon(X, Y, [(-0.36, 0.045), (-0.53, 0.12), (-0.53, -0.03)])
        return outer & ~notch
    if kind == "pointed":
        return _polygon(X, Y, [(-0.2, 0.08), (-0.2, -0.03), (-0.6, 0.05)])
    return _polygon(X, Y, [(-0.2, 0.09), (-0.44, 0.11), (-0.44, -0.06), (-0.2, -0.04)])


def _beak(X, Y, kind):
    if kind == "short":
        return _polygon(X, Y, [(0.36, 0.18), (0.36, 0.09), (0.47, 0.135)])
    if kind == "long":
        return _polygon(X, Y, [(0.36, 0.165), (0.36, 0.115), (0.62, 0.13)])
    if kind == "hooked":
        return ((X - 0.35) ** 2 + (Y - 0.07) ** 2 <= 0.12**2) & (X >= 0.35) & (Y >= 0.07)
    return _polygon(X, Y, [(0.35, 0.22), (0.44, 0.165), (0.44, 0.105), (0.35, 0.05)])


def _crest(X, Y, kind):
    if kind == "none":
        return torch.zeros_like(X, dtype=torch.bool)
    if kind == "spike":
        return _polygon(X, Y, [(0.21, 0.22), (0.31, 0.24), (0.15, 0.4)])
    m = torch.zeros_like(X, dtype=torch.bool)
    for deg in (95.0, 120.0, 145.0):
        a = math.radians(deg)
        m |= _segment(X, Y, (0.26, 0.22), (0.26 + 0.15 * math.cos(a), 0.22 + 0.15 * math.sin(a)),
                      0.02)  # fmt: skip
    return m


_WING = (-0.05, 0.03, 0.19, 0.095, -0.2)  # centre x, y, semi-axes, angle


def _wing_pattern(X, Y, kind):
    cx, cy, _, _, ang = _WING
    c, s = math.cos(ang), math.sin(ang)
    u, v = (X - cx) * c + (Y - cy) * s, -(X - cx) * s + (Y - cy) * c
    if kind == "plain":
        return torch.zeros_like(X, dtype=torch.bool)
    if kind == "stripes":
        return torch.sin(u * (2 * math.pi / 0.075)) > 0.2
    if kind == "spots":
        a, b = torch.remainder(u, 0.1) - 0.05, torch.remainder(v, 0.1) - 0.05
        return a * a + b * b <= 0.03**2
    return u < -0.05  # "bar": the back half in the second colour


_SHAPES: dict[str, Callable] = {
    "legs": lambda X, Y, k: _legs(X, Y, 0.1 if k == "short" else 0.28),
    "tail": _tail,
    "beak": _beak,
    "crest": _crest,
    "wing": lambda X, Y, k: _ellipse(X, Y, *_WING),
}


# ---------------------------------------------------------------- classes


def bird_classes(n_classes: int = 10) -> list[dict[str, str]]:
    """Deterministic class definitions: part variants that differ as much as possible.

    Greedy max-min Hamming selection over all combinations of ``VARIANTS``, starting
    from the first combination; among equally distant candidates the one whose variants
    have been used least so far wins (then the earliest), so every variant appears. The
    result does not depend on any seed: sets drawn with different seeds share classes.

    Returns
    -------
    list of dict
        One ``{part: variant}`` per class.
    """
    names = list(VARIANTS)
    combos = list(itertools.product(*(range(len(VARIANTS[p])) for p in names)))
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    if n_classes > len(combos):
        raise ValueError(f"at most {len(combos)} bird classes exist, got {n_classes}.")
    codes = torch.tensor(combos)
    chosen = [0]
    dist = (codes != codes[0]).sum(1)
    usage = torch.zeros(len(names), max(len(v) for v in VARIANTS.values()), dtype=torch.long)
    for _ in range(n_classes - 1):
        usage[torch.arange(len(names)), codes[chosen[-1]]] += 1
        used = usage[torch.arange(len(names)), codes].sum(1)  # (n_combos,)
        score = dist * 10_000 - used  # farthest first, then least-used variants
        nxt = int(torch.argmax(score))
        chosen.append(nxt)
        dist = torch.minimum(dist, (codes != codes[nxt]).sum(1))
    return [{p: VARIANTS[p][int(codes[i, j])] for j, p in enumerate(names)} for i in chosen]


def _class_name(spec: Mapping[str, str]) -> str:
    return "-".join(f"{spec[p]}" for p in VARIANTS)


# ---------------------------------------------------------------- rendering


def _colors(g, refs, n, min_dist=0.35, tries=8):
    """Uniform random RGB colours, each at least ``min_dist`` from every colour in refs."""
    cand = torch.rand(n, tries, 3, generator=g)
    ok = torch.ones(n, tries, dtype=torch.bool)
    for r in refs:
        ok &= (cand - r[:, None]).norm(dim=-1) >= min_dist
    first = torch.argmax(ok.int(), dim=1)
    pick = cand[torch.arange(n), first]
    fallback = (refs[0] + 0.5) % 1.0  # far from the first reference in every channel
    return torch.where(ok.any(1, keepdim=True), pick, fallback)


def render_birds(
    variants: Mapping[str, torch.Tensor],
    *,
    image_size: int = 64,
    difficulty: float = 0.5,
    seed: int | torch.Generator | None = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw birds with given part variants (one chunk; :func:`birds` is the usual entry).

    Parameters
    ----------
    variants : dict of str to torch.Tensor, shape (n,)
        Index of the variant of every part in ``VARIANTS`` for each bird.
    image_size : int
        Image side in pixels.
    difficulty : float in [0, 1]
        0: mild pose changes on a plain background; 1: large rotations and scale
        changes, clutter, noise and frequent distractors.
    seed : int, torch.Generator or None
        Source of randomness (poses, colours, clutter): a seed, a generator (advanced in
        place) or None for fresh randomness.

    Returns
    -------
    images : torch.Tensor, shape (n, 3, image_size, image_size), float32 in [0, 1]
    masks : torch.Tensor, shape (n, len(PARTS), image_size, image_size), bool visible part pixels
    """
    g = make_generator(seed)
    n = int(next(iter(variants.values())).numel())
    d = float(difficulty)
    # pose: rotation, flip, scale, translation (the bird always stays inside the image)
    theta = (torch.rand(n, generator=g) * 2 - 1) * math.radians(8 + 22 * d)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    scale = 0.74 * (1 - (0.1 + 0.25 * d) * torch.rand(n, generator=g))
    room = (0.5 - _EXTENT * scale - 1.0 / image_size).clamp_min(0.0)
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * room[:, None]
    px = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size - 0.5
    qx = px.view(1, 1, -1) - shift[:, 0, None, None]
    qy = -px.view(1, -1, 1) - shift[:, 1, None, None]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    X = (c * qx + s * qy) / scale[:, None, None] * flip[:, None, None]
    Y = (-s * qx + c * qy) / scale[:, None, None]

    # background: a colour, plus a smooth colour field and blobs with difficulty
    bg = torch.rand(n, 3, generator=g)
    img = bg[:, :, None, None].expand(n, 3, image_size, image_size).clone()
    if d > 0:
        field = torch.randn(n, 3, 4, 4, generator=g) * 0.12 * d
        img = img + F.interpolate(
            field, size=(image_size, image_size), mode="bicubic", align_corners=False
        )
        yy, xx = px.view(1, -1, 1), px.view(1, 1, -1)
        for _ in range(round(6 * d)):
            cx, cy, r = torch.rand(3, n, generator=g) * torch.tensor([[1.0], [1.0], [0.15]])
            blob = (xx - cx[:, None, None] + 0.5) ** 2 + (yy - cy[:, None, None] + 0.5) ** 2
            blob = blob <= (r[:, None, None] + 0.03) ** 2
            tone = (bg + torch.randn(n, 3, generator=g) * 0.15 * d)[:, :, None, None]
            img = torch.where(blob[:, None], tone, img)
        # distractors: part-sized triangles, discs and bars of any colour
        for _ in range(2):
            on = torch.rand(n, generator=g) < 0.35 * d
            cx, cy = torch.rand(2, n, generator=g) - 0.5
            cx, cy = cx[:, None, None], cy[:, None, None]
            kind = torch.randint(0, 3, (n,), generator=g)[:, None, None]
            rel_x, rel_y = xx - cx, -(yy - cy)
            tri = (rel_y >= -0.05) & (rel_y <= 0.1 - 1.5 * rel_x.abs())
            disc = rel_x**2 + rel_y**2 <= 0.07**2
            bar = (rel_x.abs() <= 0.12) & (rel_y.abs() <= 0.03)
            shape = (
                torch.where(kind == 0, tri, torch.where(kind == 1, disc, bar)) & on[:, None, None]
            )
            col = torch.rand(n, 3, 1, 1, generator=g)
            img = torch.where(shape[:, None], col, img)

    # part colours, each distinct from the background (and from the part beneath it)
    body = _colors(g, [bg], n)
    wing = _colors(g, [bg, body], n)
    cols = {
        "legs": _colors(g, [bg], n),
        "tail": _colors(g, [bg, body], n),
        "body": body,
        "wing": wing,
        "head": _colors(g, [bg], n),
    }
    cols["beak"] = _colors(g, [bg, cols["head"]], n)
    cols["crest"] = _colors(g, [bg, cols["head"]], n)
    pattern = _colors(g, [bg, wing], n)
    eye = _colors(g, [bg, cols["head"]], n)

    full = []
    for part in PARTS:
        if part == "body":
            m = _ellipse(X, Y, 0.0, 0.0, 0.28, 0.17)
        elif part == "head":
            m = _ellipse(X, Y, 0.27, 0.14, 0.12, 0.12)
        else:
            m = torch.zeros(n, image_size, image_size, dtype=torch.bool)
            for k, kind in enumerate(VARIANTS[part]):
                idx = torch.nonzero(variants[part] == k).flatten()
                if idx.numel():
                    m[idx] = _SHAPES[part](X[idx], Y[idx], kind)
        img = torch.where(m[:, None], cols[part][:, :, None, None], img)
        if part == "wing":
            pat = torch.zeros_like(m)
            for k, kind in enumerate(VARIANTS["wing"]):
                idx = torch.nonzero(variants["wing"] == k).flatten()
                if idx.numel():
                    pat[idx] = _wing_pattern(X[idx], Y[idx], kind)
            img = torch.where((m & pat)[:, None], pattern[:, :, None, None], img)
        if part == "head":
            e = _ellipse(X, Y, 0.31, 0.17, 0.028, 0.028)
            img = torch.where(e[:, None], eye[:, :, None, None], img)
        full.append(m)
    masks = torch.stack(full, dim=1)
    covered = torch.zeros(n, image_size, image_size, dtype=torch.bool)
    for p in reversed(range(len(PARTS))):  # visible = not covered by a later part
        masks[:, p] &= ~covered
        covered |= full[p]
    if d > 0:
        img = img + torch.randn(img.shape, generator=g) * 0.03 * d
    return img.clamp(0.0, 1.0), masks


def crop_to_birds(
    images: torch.Tensor, masks: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop every image to its bird's bounding box and resize the crop to ``size``.

    What ProtoPNet does to CUB-200-2011 with the data set's bounding boxes: the box is
    the tightest one around the bird's visible pixels, resized to a square without
    keeping its aspect ratio (CUB's crops are resized to 224 x 224 the same way).

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), float
    masks : torch.Tensor, shape (N, parts, H, W), bool
        Visible pixels of every part; their union is the bird.
    size : int
        Side of the returned images.

    Returns
    -------
    images : torch.Tensor, shape (N, C, size, size)
        Area-averaged (:func:`torchvision.ops.roi_align`), so a box larger than ``size``
        is not aliased.
    masks : torch.Tensor, shape (N, parts, size, size), bool
        A pixel belongs to a part where the part covers at least half of it.
    """
    from torchvision.ops import masks_to_boxes, roi_align

    size = check_int(size, "size", minimum=1)
    if images.ndim != 4 or masks.ndim != 4 or masks.shape[0] != images.shape[0]:
        raise ValueError(
            "expected images (N, C, H, W) and masks (N, parts, H, W) of the same N and "
            f"size, got {tuple(images.shape)} and {tuple(masks.shape)}."
        )
    bird = masks.any(1)
    height, width = images.shape[-2:]
    boxes = torch.tensor([[0.0, 0.0, width - 1.0, height - 1.0]]).repeat(len(images), 1)
    seen = bird.flatten(1).any(1)
    if bool(seen.any()):
        boxes[seen] = masks_to_boxes(bird[seen]).float()
    boxes[:, 2:] += 1  # pixel indices -> the box's continuous corners
    rois = torch.cat([torch.arange(len(images), dtype=torch.float32)[:, None], boxes], 1)

    def resample(x: torch.Tensor) -> torch.Tensor:
        return roi_align(x.float(), rois, (size, size), spatial_scale=1.0, aligned=True)

    return resample(images).clamp(0.0, 1.0), resample(masks) >= 0.5


def birds(
    n_per_class: int = 100,
    *,
    image_size: int = 64,
    classes: int | Sequence[Mapping[str, str]] = 10,
    seed: int | torch.Generator | None = 0,
    difficulty: float = 0.5,
    return_masks: bool = False,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk_size: int = 512,
    progress: bool = False,
    crop: bool = False,
) -> TensorImageDataset:
    """A seeded, class-balanced set of procedural birds with part masks.

    Parameters
    ----------
    n_per_class : int
        Images per class.
    image_size : int
        Image side in pixels (>= 32; 64 and up shows the wing patterns well).
    classes : int or sequence of dict
        Number of classes (definitions from :func:`bird_classes`) or explicit
        ``{part: variant}`` dicts over ``VARIANTS`` (missing parts take variant 0).
    seed : int, torch.Generator or None
        Seed of poses, colours, clutter and sample order; class definitions never
        depend on it, so a train set and a test set drawn with two seeds match.
    difficulty : float in [0, 1]
        Pose range, clutter, noise and distractor frequency (0 = plain background).
    return_masks : bool
        If True, ``dataset[i]`` is ``(image, label, masks)``; the masks of all samples
        are in ``dataset.masks`` either way.
    transform : callable, optional
        Applied to each image tensor in ``__getitem__``.
    chunk_size : int
        Birds drawn at once (memory ~ 30 x chunk_size x image_size^2 bytes).
    progress : bool
        Show a progress bar over chunks.
    crop : bool
        Crop every image to its bird's bounding box, as ProtoPNet crops CUB-200-2011
        (:func:`crop_to_birds`): the birds are drawn at twice ``image_size`` and the
        crops resized to ``image_size`` (the bird then fills most of the image, as on
        cropped CUB; without cropping its box covers about 30 % of the image and the
        bird itself about 10 %).

    Returns
    -------
    TensorImageDataset
        ``images`` (N, 3, image_size, image_size) float32 in [0, 1], ``labels`` (N,) int64,
        ``masks`` (N, 7, image_size, image_size) bool (visible pixels of each part), ``variants``
        (N, 5) int64 (variant index of beak, wing, tail, crest, legs); metadata
        ``part_names``, ``class_names``, ``class_parts``, ``difficulty``.
    """
    from tqdm.auto import tqdm

    n_per_class = check_int(n_per_class, "n_per_class")
    image_size = check_int(image_size, "image_size", minimum=32)
    chunk_size = check_int(chunk_size, "chunk_size")
    crop = check_bool(crop, "crop")
    if not 0.0 <= float(difficulty) <= 1.0:
        raise ValueError(f"difficulty must lie in [0, 1], got {difficulty}.")
    specs = bird_classes(classes) if isinstance(classes, int) else [dict(c) for c in classes]
    if len(specs) < 2:
        raise ValueError(f"need at least 2 classes, got {len(specs)}.")
    table = torch.zeros(len(specs), len(VARIANTS), dtype=torch.long)
    for i, spec in enumerate(specs):
        for key, value in spec.items():
            if key not in VARIANTS or value not in VARIANTS[key]:
                raise ValueError(
                    f"class {i}: unknown part or variant {key}={value!r}; choose from {VARIANTS}."
                )
        for j, part in enumerate(VARIANTS):
            table[i, j] = VARIANTS[part].index(spec.get(part, VARIANTS[part][0]))
    specs = [{p: VARIANTS[p][int(k)] for p, k in zip(VARIANTS, row, strict=True)} for row in table]
    if len({tuple(r) for r in table.tolist()}) < len(specs):
        raise ValueError("two classes have the same part variants; make every class distinct.")
    g = make_generator(seed)
    n = n_per_class * len(specs)
    labels = torch.arange(len(specs)).repeat_interleave(n_per_class)
    labels = labels[torch.randperm(n, generator=g)]
    var = table[labels]
    images, masks = [], []
    side = 2 * image_size if crop else image_size  # crops are drawn large, then reduced
    for start in tqdm(range(0, n, chunk_size), disable=not progress, desc="birds"):
        v = {p: var[start : start + chunk_size, j] for j, p in enumerate(VARIANTS)}
        im, m = render_birds(v, image_size=side, difficulty=float(difficulty), seed=g)
        if crop:
            im, m = crop_to_birds(im, m, image_size)
        images.append(im)
        masks.append(m)
    info = {
        "part_names": list(PARTS),
        "class_names": [_class_name(s) for s in specs],
        "class_parts": specs,
        "difficulty": float(difficulty),
        "crop": crop,
    }
    return TensorImageDataset(
        torch.cat(images),
        labels,
        extras={"masks": torch.cat(masks), "variants": var},
        transform=transform,
        return_extra="masks" if return_masks else None,
        info=info,
    )
