"""Birds with a planted shortcut: a small coloured marker on the background.

A *shortcut* is a feature that predicts the label in the training data but is not the
object (a watermark, a ruler beside a lesion, the hospital's tag on an X-ray). Here it
is planted on purpose: every training bird of :func:`interp_lib.datasets.birds` gets a
small square marker somewhere on the background, never touching the bird, whose colour
names a class. With ``correlation`` 1 the marker always names the bird's own class;
with ``correlation`` ``c < 1`` it names the own class with probability ``c`` and a
uniformly drawn class (possibly the own one) otherwise, so
``P(marker = label) = c + (1 - c) / K``. A network may then read the class from the
marker, from the bird's parts, or from both; what it does is measured by changing the
marker at test time (:func:`paint_markers` with other classes, or none).

Nothing here changes the birds themselves: the markers are painted on already rendered
images, so the birds of a shortcut set and of a plain set drawn with the same seed are
the same pixels outside the marker.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import check_int, check_real, make_generator
from ._base import TensorImageDataset
from .birds import birds

__all__ = [
    "MARKER_COLOURS",
    "marker_classes",
    "marker_positions",
    "paint_markers",
    "shortcut_birds",
]

#: The marker colour of each class (RGB in [0, 1]): saturated, pairwise far apart.
MARKER_COLOURS = torch.tensor(
    [
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 0.0],
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0],
        [1.0, 0.5, 0.0],
        [0.5, 0.0, 1.0],
    ]
)


def marker_positions(
    bird: torch.Tensor,
    size: int,
    *,
    margin: int = 1,
    seed: int | torch.Generator | None = 0,
) -> torch.Tensor:
    """Top-left corners of ``size`` x ``size`` squares on the background, one per image.

    Parameters
    ----------
    bird : torch.Tensor, shape (N, H, W) or (N, parts, H, W), bool
        The bird's pixels (part masks are joined).
    size : int
        Side of the marker in pixels.
    margin : int
        Background pixels kept between the marker and the bird.
    seed : int, torch.Generator or None
        Draws the position uniformly over the allowed corners.

    Returns
    -------
    torch.Tensor, shape (N, 2), long
        ``(row, column)`` of each marker's top-left pixel.

    Raises
    ------
    ValueError
        If an image has no room for a marker away from its bird.
    """
    size = check_int(size, "size")
    margin = check_int(margin, "margin", minimum=0)
    if bird.ndim == 4:
        bird = bird.any(1)
    if bird.ndim != 3:
        raise ValueError(
            f"bird must have shape (N, H, W) or (N, parts, H, W), got {tuple(bird.shape)}."
        )
    g = make_generator(seed)
    x = bird.float()[:, None]
    if margin:
        x = F.max_pool2d(x, 2 * margin + 1, stride=1, padding=margin)
    touched = F.max_pool2d(x, size, stride=1)[:, 0] > 0  # (N, H - size + 1, W - size + 1)
    free = ~touched
    if not bool(free.flatten(1).any(1).all()):
        raise ValueError(f"some image has no room for a {size}-pixel marker away from its bird.")
    score = torch.rand(free.shape, generator=g).masked_fill(~free, -1.0)
    flat = score.flatten(1).argmax(1)
    cols = free.shape[-1]
    return torch.stack([flat // cols, flat % cols], dim=1)


def marker_classes(
    labels: torch.Tensor,
    n_classes: int,
    correlation: float,
    *,
    seed: int | torch.Generator | None = 0,
) -> torch.Tensor:
    """The class each marker names: the label with probability ``correlation``, else
    a uniformly drawn class.

    Parameters
    ----------
    labels : torch.Tensor, shape (N,), long
    n_classes : int
    correlation : float in [0, 1]
    seed : int, torch.Generator or None

    Returns
    -------
    torch.Tensor, shape (N,), long
    """
    c = float(check_real(correlation, "correlation"))
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"correlation must lie in [0, 1], got {correlation}.")
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    g = make_generator(seed)
    keep = torch.rand(len(labels), generator=g) < c
    other = torch.randint(0, n_classes, (len(labels),), generator=g)
    return torch.where(keep, labels.long(), other)


def paint_markers(
    images: torch.Tensor,
    positions: torch.Tensor,
    classes: torch.Tensor,
    *,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint one square marker of its class's colour on each image.

    Parameters
    ----------
    images : torch.Tensor, shape (N, 3, H, W), float in [0, 1]
    positions : torch.Tensor, shape (N, 2), long
        Top-left ``(row, column)`` of each marker (:func:`marker_positions`).
    classes : torch.Tensor, shape (N,), long
        Class named by each marker (its colour, ``MARKER_COLOURS``); ``-1``: no marker.
    size : int
        Side of the marker in pixels.

    Returns
    -------
    images : torch.Tensor, shape (N, 3, H, W)
        A copy with the markers painted.
    marker : torch.Tensor, shape (N, H, W), bool
        The marker's pixels (empty where ``classes`` is -1).
    """
    size = check_int(size, "size")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}.")
    n, _, h, w = images.shape
    if positions.shape != (n, 2) or classes.shape != (n,):
        raise ValueError(
            f"need positions (N, 2) and classes (N,) for N = {n}, got "
            f"{tuple(positions.shape)} and {tuple(classes.shape)}."
        )
    if int(classes.max()) >= len(MARKER_COLOURS) or int(classes.min()) < -1:
        raise ValueError(f"marker classes must lie in [-1, {len(MARKER_COLOURS)}).")
    rows = torch.arange(h).view(1, -1, 1)
    cols = torch.arange(w).view(1, 1, -1)
    r0, c0 = positions[:, 0].view(-1, 1, 1), positions[:, 1].view(-1, 1, 1)
    marker = (rows >= r0) & (rows < r0 + size) & (cols >= c0) & (cols < c0 + size)
    marker &= (classes >= 0).view(-1, 1, 1)
    colour = MARKER_COLOURS[classes.clamp_min(0)].to(images.dtype)[:, :, None, None]
    return torch.where(marker[:, None], colour, images), marker


def shortcut_birds(
    n_per_class: int = 100,
    *,
    correlation: float | None = 1.0,
    marker_size: int | None = None,
    image_size: int = 48,
    classes: int = 4,
    seed: int = 0,
    difficulty: float = 0.5,
) -> TensorImageDataset:
    """Procedural birds with a class-coloured marker on the background.

    Parameters
    ----------
    n_per_class : int
        Images per class.
    correlation : float in [0, 1] or None
        How often the marker names the bird's own class (see the module docstring);
        ``None``: no marker at all (the plain birds, with the same pixels).
    marker_size : int, optional
        Side of the square marker (default ``image_size // 8``).
    image_size, classes, seed, difficulty
        As in :func:`interp_lib.datasets.birds` (``classes`` at most
        ``len(MARKER_COLOURS)``).

    Returns
    -------
    TensorImageDataset
        As :func:`interp_lib.datasets.birds` (``masks`` are the 7 bird parts only),
        with the extras ``marker`` (N, H, W) bool, ``marker_class`` (N,) long (-1: no
        marker) and ``marker_position`` (N, 2) long; metadata ``correlation`` and
        ``marker_size``.
    """
    classes = check_int(classes, "classes", minimum=2, maximum=len(MARKER_COLOURS))
    size = image_size // 8 if marker_size is None else check_int(marker_size, "marker_size")
    ds = birds(n_per_class, image_size=image_size, classes=classes, seed=seed,
               difficulty=difficulty)  # fmt: skip
    g = torch.Generator().manual_seed(int(seed) + 7919)
    positions = marker_positions(ds.masks, size, seed=g)
    if correlation is None:
        named = torch.full_like(ds.labels, -1)
    else:
        named = marker_classes(ds.labels, classes, correlation, seed=g)
    images, marker = paint_markers(ds.images, positions, named, size=size)
    info = dict(ds.info, correlation=correlation, marker_size=size)
    extras = {"masks": ds.masks, "variants": ds.variants, "marker": marker,
              "marker_class": named, "marker_position": positions}  # fmt: skip
    return TensorImageDataset(images, ds.labels, extras=extras, info=info)
