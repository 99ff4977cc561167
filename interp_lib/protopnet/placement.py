"""Where pushed prototypes landed: the part under each one, against part-area chance.

After a push every prototype *is* a patch of one training image (its source). With
ground-truth part masks (the procedural birds, CUB's part annotations turned into
masks) one can ask which part, or the background, lies under the centre of the
prototype's receptive field, and compare the share of prototypes on each part with the
share of the source images' pixels that part covers: what a prototype centred on a
uniformly random pixel of the same images would give (the chance level).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .._plumbing import require
from .._validation import check_int

__all__ = ["Placement", "prototype_placement"]

#: The share of prototypes on the bird that the zoo's birds recipe aims at.
ON_BIRD_TARGET = 0.8


@dataclass(frozen=True)
class Placement:
    """Result of :func:`prototype_placement`.

    Attributes
    ----------
    part : Tensor, shape (P,) long
        Part under each prototype's receptive-field centre (index into ``part_names``;
        -1 for background).
    on_bird, near_bird : Tensor, shape (P,) bool
        The centre lies on a visible part; within ``near`` pixels (Chebyshev) of one.
    centre : Tensor, shape (P, 2) float64
        ``(row, column)`` of each centre in pixels of the source image.
    sample_index : Tensor, shape (P,) long
        Source image of each prototype (index into the masks given).
    part_names : tuple of str
    part_share, part_chance : Tensor, shape (n_parts,) float64
        Share of prototypes centred on each part; mean share of the source images'
        pixels that the part covers (chance: a centre on a random pixel of the same
        images).
    on_bird_fraction, near_bird_fraction, chance : float
        Share of prototypes on the bird, near it, and the bird's mean pixel share of
        the source images.
    distinct_fraction : float
        Share of prototypes whose source patch (image and location) no other shares.
    target : float
        The on-bird share aimed at (``ON_BIRD_TARGET``, 0.8).

    Items can also be read by key (``placement["on_bird_fraction"]``), as from the
    dict this result replaces.
    """

    part: torch.Tensor
    on_bird: torch.Tensor
    near_bird: torch.Tensor
    centre: torch.Tensor
    sample_index: torch.Tensor
    part_names: tuple[str, ...]
    part_share: torch.Tensor
    part_chance: torch.Tensor
    on_bird_fraction: float
    near_bird_fraction: float
    chance: float
    distinct_fraction: float
    target: float = ON_BIRD_TARGET
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        return getattr(self, key)

    @property
    def background_share(self) -> float:
        return 1.0 - self.on_bird_fraction

    @property
    def background_chance(self) -> float:
        return 1.0 - self.chance

    def by_part(self) -> dict[str, list[int]]:
        """``{part name or "background": [prototype indices]}``, parts in order, for
        galleries grouped by part (parts with no prototype have an empty list)."""
        out = {name: [] for name in (*self.part_names, "background")}
        for j, p in enumerate(self.part.tolist()):
            out[self.part_names[p] if p >= 0 else "background"].append(j)
        return out

    def summary(self) -> dict[str, float]:
        """Flat numbers for a report: ``on_bird``, ``near_bird``, ``chance``,
        ``distinct``, and ``share_<part>`` / ``chance_<part>`` for every part and the
        background."""
        out = {"on_bird": self.on_bird_fraction, "near_bird": self.near_bird_fraction,
               "chance": self.chance, "distinct": self.distinct_fraction}  # fmt: skip
        for i, name in enumerate(self.part_names):
            out[f"share_{name}"] = float(self.part_share[i])
            out[f"chance_{name}"] = float(self.part_chance[i])
        out["share_background"] = self.background_share
        out["chance_background"] = self.background_chance
        return out

    def to_pandas(self):
        """One row per part and one for the background: ``prototypes`` (count),
        ``share``, ``chance`` (area share) and ``ratio`` (share / chance)."""
        pd = require("pandas", "Placement.to_pandas")

        n = len(self.part)
        counts = [int((self.part == i).sum()) for i in range(len(self.part_names))]
        rows = list(zip(self.part_names, counts, self.part_share.tolist(),
                        self.part_chance.tolist(), strict=True))  # fmt: skip
        rows.append(("background", n - sum(counts), self.background_share, self.background_chance))
        df = pd.DataFrame(rows, columns=["part", "prototypes", "share", "chance"])
        df["ratio"] = df["share"] / df["chance"].where(df["chance"] > 0)
        return df.set_index("part")


def prototype_placement(
    push_result,
    masks: torch.Tensor,
    rf,
    *,
    part_names: Sequence[str] | None = None,
    near: int = 2,
    target: float = ON_BIRD_TARGET,
) -> Placement:
    """The part under each pushed prototype, with per-part chance levels.

    Parameters
    ----------
    push_result : PushResult
        ``sample_index`` (P,) and ``location`` (P, 2) (top-left ``(h, w)`` of each
        prototype's patch in the latent map) of a push; ``duplicates()`` for the
        distinct share.
    masks : Tensor, shape (N, parts, H, W) bool
        Part masks of the push loader's images, in its order (disjoint parts).
    rf : ReceptiveField
        The prototypes' receptive field (``model.prototype_receptive_field``): the
        centre of the patch at ``location`` is ``rf.start + location * rf.jump``.
    part_names : sequence of str, optional
        Names of the ``parts`` masks (default ``part0, part1, ...``).
    near : int
        Distance in pixels of ``near_bird`` (centres lie on a grid of ``rf.jump``
        pixels, so a patch over a thin part is often centred just beside it).
    target : float
        The on-bird share aimed at, stored with the result.

    Returns
    -------
    Placement
    """
    near = check_int(near, "near", minimum=0)
    if masks.ndim != 4:
        raise ValueError(f"masks must have shape (N, parts, H, W), got {tuple(masks.shape)}.")
    masks = masks.bool()
    n_parts = masks.shape[1]
    names = (
        tuple(part_names) if part_names is not None else tuple(f"part{i}" for i in range(n_parts))
    )
    if len(names) != n_parts:
        raise ValueError(f"part_names has {len(names)} names for {n_parts} part masks.")
    height, width = masks.shape[-2:]
    sample = push_result.sample_index.long()
    centre = rf.start + push_result.location.double() * rf.jump  # (P, 2): (row, column)
    yy = centre[:, 0].floor().long().clamp(0, height - 1)
    xx = centre[:, 1].floor().long().clamp(0, width - 1)
    src = masks[sample]  # (P, parts, H, W)
    at = src[torch.arange(len(sample)), :, yy, xx]  # (P, parts)
    on = at.any(1)
    bird = src.any(1, keepdim=True).float()
    grown = F.max_pool2d(bird, 2 * near + 1, stride=1, padding=near)
    close = grown[torch.arange(len(yy)), 0, yy, xx] > 0
    part = torch.where(on, at.float().argmax(1), torch.full_like(yy, -1))
    area = src.double().mean((2, 3))  # (P, parts): each part's pixel share of the source
    share = torch.stack([(part == i).double().mean() for i in range(n_parts)])
    n = int(sample.numel())
    duplicated = sum(len(g) for g in push_result.duplicates())
    return Placement(
        part=part,
        on_bird=on,
        near_bird=close,
        centre=centre,
        sample_index=sample,
        part_names=names,
        part_share=share,
        part_chance=area.mean(0),
        on_bird_fraction=float(on.double().mean()),
        near_bird_fraction=float(close.double().mean()),
        chance=float(src.any(1).double().mean((1, 2)).mean()),
        distinct_fraction=(n - duplicated) / n,
        target=float(target),
    )
