"""Part interventions: change one part of a bird, and ask which explanation saw it coming.

The procedural birds are drawn from a specification (a variant per part) and a seed
(pose, colours, clutter): :func:`interp_lib.datasets.render_birds` draws every random
number whatever the variants, so the same seed with one part's variant changed gives the
same bird, in the same pose and colours, with only that part redrawn (a *counterfactual*:
a longer beak, another wing pattern, no crest). The model's logit change under each
intervention is the part's measured effect; an explanation's share of positive mass on
the part (:func:`interp_lib.baselines.energy_in_mask` on the part's pixels, before and
after) is the importance it *claims*. :func:`faithfulness_table` ranks the two against
each other over images and parts (Spearman, with a bootstrap over images: the
*counterfactual faithfulness* of each method). For a ProtoPNet,
:func:`prototype_response` asks whether the prototypes that sit on the changed part lose
their similarity while the others keep theirs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._plumbing import require
from .._validation import check_choice, check_images, check_int, check_tensor_ndim
from ..baselines import energy_in_mask
from ..datasets import PARTS, VARIANTS, bird_classes, render_birds
from .stats import correlation_bootstrap, paired_interval

__all__ = [
    "INTERVENED_PARTS",
    "InterventionRecords",
    "InterventionSet",
    "faithfulness_table",
    "intervention_records",
    "logit_effects",
    "part_importance",
    "part_interventions",
    "prototype_response",
    "prototype_response_table",
]

#: The parts that come in variants, in the order of ``interp_lib.datasets.VARIANTS``.
INTERVENED_PARTS = tuple(VARIANTS)


@dataclass
class InterventionSet:
    """Birds and their one-part counterfactuals (:func:`part_interventions`).

    Attributes
    ----------
    images : torch.Tensor, shape (N, 3, H, W), in [0, 1]
    counterfactuals : torch.Tensor, shape (N, J, 3, H, W)
        Image ``i`` with part ``parts[j]`` changed to ``new_variants[i, j]``.
    masks : torch.Tensor, shape (N, 7, H, W), bool
        Visible part pixels of the originals (``interp_lib.datasets.PARTS``).
    regions : torch.Tensor, shape (N, J, H, W), bool
        The changed part's pixels before or after the change (their union).
    labels : torch.Tensor, shape (N,), long
    variants : torch.Tensor, shape (N, 5), long
        The originals' variant of every part of ``VARIANTS``.
    new_variants : torch.Tensor, shape (N, J), long
    parts : tuple of str
        The ``J`` intervened parts.
    """

    images: torch.Tensor
    counterfactuals: torch.Tensor
    masks: torch.Tensor
    regions: torch.Tensor
    labels: torch.Tensor
    variants: torch.Tensor
    new_variants: torch.Tensor
    parts: tuple[str, ...]


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().clamp(0, 255) / 255


def part_interventions(
    n_per_class: int,
    *,
    classes: int = 4,
    image_size: int = 48,
    difficulty: float = 0.3,
    seed: int = 0,
    parts: Sequence[str] = INTERVENED_PARTS,
    quantize: bool = True,
) -> InterventionSet:
    """Render birds and, for each part, the same bird with that part's variant changed.

    Each part moves to its next variant (cyclically in ``VARIANTS[part]``: a short beak
    becomes long, a tuft crest becomes none, i.e. removed); pose, colours, clutter and
    noise are the original's (the same seed).

    Parameters
    ----------
    n_per_class : int
        Birds per class.
    classes : int
        Classes of :func:`interp_lib.datasets.bird_classes` (match the model's).
    image_size, difficulty : as in :func:`interp_lib.datasets.birds`
    seed : int
        Seeds the poses, colours and clutter.
    parts : sequence of str
        Parts to intervene on (keys of ``VARIANTS``).
    quantize : bool
        Round the images to 8 bits, as the zoo stores its training images.

    Returns
    -------
    InterventionSet
    """
    n_per_class = check_int(n_per_class, "n_per_class")
    parts = tuple(parts)
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown or not parts:
        raise ValueError(f"parts must be keys of VARIANTS {tuple(VARIANTS)}, got {parts}.")
    specs = bird_classes(classes)
    table = torch.tensor([[VARIANTS[p].index(s[p]) for p in VARIANTS] for s in specs])
    labels = torch.arange(len(specs)).repeat_interleave(n_per_class)
    var = table[labels]

    def draw(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        im, m = render_birds({p: v[:, j] for j, p in enumerate(VARIANTS)},
                             image_size=image_size, difficulty=difficulty, seed=seed)  # fmt: skip
        return (_u8(im) if quantize else im), m

    images, masks = draw(var)
    cfs, regions, new = [], [], []
    for part in parts:
        j = list(VARIANTS).index(part)
        v = var.clone()
        v[:, j] = (v[:, j] + 1) % len(VARIANTS[part])
        im, m = draw(v)
        k = PARTS.index(part)
        cfs.append(im)
        regions.append(masks[:, k] | m[:, k])
        new.append(v[:, j])
    return InterventionSet(
        images=images, counterfactuals=torch.stack(cfs, 1), masks=masks,
        regions=torch.stack(regions, 1), labels=labels, variants=var,
        new_variants=torch.stack(new, 1), parts=parts,
    )  # fmt: skip


@torch.no_grad()
def logit_effects(
    model: nn.Module,
    inputs: torch.Tensor,
    counterfactuals: torch.Tensor,
    target: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The drop of the explained class's logit under each intervention.

    Parameters
    ----------
    model : nn.Module
        In eval mode.
    inputs : torch.Tensor, shape (N, C, H, W)
        Normalised originals.
    counterfactuals : torch.Tensor, shape (N, J, C, H, W)
        Normalised counterfactuals.
    target : torch.Tensor, shape (N,), optional
        The class whose logit is followed (default: the predicted class).

    Returns
    -------
    effects : torch.Tensor, shape (N, J)
        ``logit(original) - logit(counterfactual)`` of the target class.
    target : torch.Tensor, shape (N,)
    """
    check_images(inputs, nonempty=True)
    n, j = counterfactuals.shape[:2]
    if n != len(inputs) or counterfactuals.shape[2:] != inputs.shape[1:]:
        raise ValueError(
            f"counterfactuals must have shape (N, J, C, H, W) matching inputs "
            f"{tuple(inputs.shape)}, got {tuple(counterfactuals.shape)}."
        )
    z = model(inputs)
    t = z.argmax(1) if target is None else torch.as_tensor(target).long()
    zc = model(counterfactuals.reshape(n * j, *inputs.shape[1:])).reshape(n, j, -1)
    before = z.gather(1, t[:, None])
    after = zc.gather(2, t[:, None, None].expand(n, j, 1))[..., 0]
    return before - after, t


def part_importance(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Share of each map's positive mass on each intervened part.

    Parameters
    ----------
    maps : torch.Tensor, shape (N, 1, H, W)
    regions : torch.Tensor, shape (N, J, H, W), bool

    Returns
    -------
    torch.Tensor, shape (N, J)
        :func:`interp_lib.baselines.energy_in_mask` per part (NaN for an all-zero map).
    """
    regions = check_tensor_ndim(regions, "regions", "(N, J, H, W)")
    return torch.stack([energy_in_mask(maps, regions[:, j]) for j in range(regions.shape[1])], 1)


@dataclass
class InterventionRecords:
    """One row per model, method, seed, image and part: the measured effect and the
    importance the method claims (:func:`intervention_records`).

    Attributes
    ----------
    records : list of dict
        ``model``, ``method``, ``seed``, ``image``, ``part``, ``effect`` (logit drop),
        ``importance`` (share of the map's positive mass on the part), ``area`` (the
        part's share of the image: a uniform map's importance) and ``density``
        (``importance / area``: 1 for a uniform map, whatever the part's size).
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: InterventionRecords) -> InterventionRecords:
        return InterventionRecords(self.records + other.records)

    def to_pandas(self):
        """The records as a ``pandas.DataFrame``."""
        pd = require("pandas", "InterventionRecords.to_pandas")
        return pd.DataFrame.from_records(self.records)


def intervention_records(
    maps: Mapping[str, torch.Tensor],
    effects: torch.Tensor,
    regions: torch.Tensor,
    parts: Sequence[str],
    *,
    model: str = "model",
    seed: int = 0,
) -> InterventionRecords:
    """Pair each method's claimed importance of every part with the part's effect.

    Parameters
    ----------
    maps : dict of str to torch.Tensor, shape (N, 1, H, W)
        Maps of the originals, explaining the class whose logit ``effects`` follows.
    effects : torch.Tensor, shape (N, J)
        :func:`logit_effects`.
    regions : torch.Tensor, shape (N, J, H, W), bool
    parts : sequence of J str
    model, seed
        Labels of the records.

    Returns
    -------
    InterventionRecords
    """
    effects = check_tensor_ndim(effects, "effects", "(N, J)")
    if len(parts) != effects.shape[1] or regions.shape[:2] != effects.shape:
        raise ValueError(
            f"effects {tuple(effects.shape)}, regions {tuple(regions.shape)} and "
            f"{len(parts)} parts do not match."
        )
    area = regions.flatten(2).double().mean(2)  # (N, J)
    records = []
    for method, m in maps.items():
        imp = part_importance(m, regions)
        for i in range(effects.shape[0]):
            for j, part in enumerate(parts):
                a = float(area[i, j])
                records.append({
                    "model": model, "method": method, "seed": seed, "image": i,
                    "part": part, "effect": float(effects[i, j]),
                    "importance": float(imp[i, j]), "area": a,
                    "density": float(imp[i, j]) / a if a > 0 else math.nan,
                })  # fmt: skip
    return InterventionRecords(records)


def faithfulness_table(
    records: InterventionRecords,
    *,
    importance: str = "importance",
    n_resamples: int = 1000,
    seed: int = 0,
):
    """Counterfactual faithfulness: Spearman of claimed importance and measured effect.

    For each model and method, over every (seed, image, part) record, with a percentile
    bootstrap that resamples whole images (a cluster bootstrap over ``(seed, image)``:
    the parts of one image are not independent).

    Parameters
    ----------
    records : InterventionRecords
    importance : {"importance", "density"}
        The claimed importance: the share of the map's positive mass on the part, or
        that share over the part's area share. A larger part holds more of any map's
        mass, and its change often moves the logit more, so the share of a *random* map
        already correlates with the effects (its Spearman is the share's chance level);
        the density removes the part's size (a random map's density is about 1 on every
        part).
    n_resamples : int
    seed : int
        Seeds the bootstrap.

    Returns
    -------
    pandas.DataFrame
        Index ``(model, method)``; columns ``spearman``, ``low``, ``high``, ``pearson``,
        ``n`` (records), ``images``; sorted by ``spearman`` within each model.
    """
    pd = require("pandas", "faithfulness_table")
    check_choice(importance, "importance", ("importance", "density"))
    df = records.to_pandas().dropna(subset=["effect", importance])
    rows = {}
    for (model, method), grp in df.groupby(["model", "method"], sort=False):
        groups = [f"{s}:{i}" for s, i in zip(grp["seed"], grp["image"], strict=True)]
        res = correlation_bootstrap(grp[importance].to_numpy(), grp["effect"].to_numpy(),
                                    groups=groups, n_resamples=n_resamples, seed=seed)  # fmt: skip
        rows[(model, method)] = {
            "spearman": res.spearman, "low": res.spearman_interval[0],
            "high": res.spearman_interval[1], "pearson": res.pearson, "n": len(grp),
            "images": len(set(groups)),
        }  # fmt: skip
    out = pd.DataFrame(rows).T
    out.index.names = ["model", "method"]
    order = out.reset_index().sort_values(["model", "spearman"], ascending=[True, False])
    return out.loc[list(zip(order["model"], order["method"], strict=True))]


@torch.no_grad()
def prototype_response(
    protopnet: nn.Module,
    inputs: torch.Tensor,
    counterfactuals: torch.Tensor,
    prototype_part: torch.Tensor,
    parts: Sequence[str],
    labels: torch.Tensor,
    *,
    part_names: Sequence[str] = PARTS,
    seed: int = 0,
):
    """Do the prototypes on the changed part lose their similarity, and the others not?

    For each intervention, the relative similarity drop
    ``(s(original) - s(counterfactual)) / s(original)`` of the image's own-class
    prototypes, averaged over those whose source patch is centred on the changed part
    (``drop on part``) and over the others (``drop elsewhere``).
    :func:`prototype_response_table` summarises the records.

    Parameters
    ----------
    protopnet : ProtoPNet
    inputs : torch.Tensor, shape (N, C, H, W)
        Normalised originals.
    counterfactuals : torch.Tensor, shape (N, J, C, H, W)
    prototype_part : torch.Tensor, shape (P,), long
        Part under each prototype's source-patch centre (index into ``part_names``, -1
        background: :func:`interp_lib.protopnet.prototype_placement`'s ``part``).
    parts : sequence of J str
        The intervened parts.
    labels : torch.Tensor, shape (N,)
        The images' classes (whose prototypes are read).
    part_names : sequence of str
        Names of ``prototype_part``'s indices.
    seed : int
        Label of the network in the records.

    Returns
    -------
    pandas.DataFrame
        One row per image and part whose class has prototypes both on the part and
        elsewhere: ``seed``, ``image``, ``part``, ``drop on part``, ``drop elsewhere``.
    """
    pd = require("pandas", "prototype_response")
    check_images(inputs, nonempty=True)
    n, j = counterfactuals.shape[:2]
    if n != len(inputs) or j != len(parts):
        raise ValueError(
            f"counterfactuals {tuple(counterfactuals.shape)} do not match {n} inputs and "
            f"{len(parts)} parts."
        )

    def sims(x: torch.Tensor) -> torch.Tensor:
        return protopnet.pooled_similarities(protopnet.latent(x)).double()

    s0 = sims(inputs)  # (N, P)
    s1 = sims(counterfactuals.reshape(n * j, *inputs.shape[1:])).reshape(n, j, -1)
    drop = (s0[:, None] - s1) / s0[:, None].clamp_min(1e-12)  # (N, J, P)
    own = protopnet.prototype_classes.cpu()[None] == labels.long()[:, None]  # (N, P)
    rows = []
    for jj, part in enumerate(parts):
        here = (prototype_part == list(part_names).index(part))[None]
        on, off = here & own, ~here & own  # (N, P)
        for i in torch.nonzero(on.any(1) & off.any(1)).flatten().tolist():
            rows.append({"seed": seed, "image": i, "part": part,
                         "drop on part": float(drop[i, jj][on[i]].mean()),
                         "drop elsewhere": float(drop[i, jj][off[i]].mean())})  # fmt: skip
    return pd.DataFrame(rows, columns=["seed", "image", "part", "drop on part", "drop elsewhere"])


def prototype_response_table(records):
    """Summary of :func:`prototype_response` records (concatenated over seeds).

    Returns
    -------
    pandas.DataFrame
        One row per part, then ``"all parts"`` (each image's parts averaged first):
        ``images``, ``drop on part``, ``drop elsewhere``, ``difference`` and its 95 %
        t-interval over images (``low``, ``high``; NaN under 2 images).
    """
    pd = require("pandas", "prototype_response_table")
    rows = {}

    def summarise(a, b) -> dict[str, float]:
        a = torch.tensor(list(a), dtype=torch.float64)
        b = torch.tensor(list(b), dtype=torch.float64)
        row = {"images": len(a), "drop on part": float(a.mean()) if len(a) else math.nan,
               "drop elsewhere": float(b.mean()) if len(b) else math.nan}  # fmt: skip
        if len(a) >= 2:
            iv = paired_interval(a, b)
            row.update({"difference": iv.mean, "low": iv.low, "high": iv.high})
        else:
            row.update({"difference": float((a - b).mean()) if len(a) else math.nan,
                        "low": math.nan, "high": math.nan})  # fmt: skip
        return row

    for part, grp in records.groupby("part", sort=False):
        rows[part] = summarise(grp["drop on part"], grp["drop elsewhere"])
    per_image = records.groupby(["seed", "image"]).mean(numeric_only=True)
    rows["all parts"] = summarise(per_image["drop on part"], per_image["drop elsewhere"])
    return pd.DataFrame(rows).T
