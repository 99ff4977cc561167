"""Explanations of a ProtoPNet: the scoring sheet of each image and the global view.

Local (:func:`explain`): for an image, the class it is explained for, and the prototypes
ranked by their points ``similarity x last-layer weight``, which add up to the logit; each
with its similarity map upsampled to the image (bicubic) and its 95th-percentile box.

Global (:func:`nearest_patches`): for each prototype, its ``k`` nearest training patches
(the closest patch of each image, as in the paper), which :func:`prune` also uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from .._plumbing import check_device, evaluating, resolve_target
from .._validation import check_int
from . import functional as PF
from .boxes import percentile_box, upsample_maps
from .model import ProtoPNet, is_protopnet
from .push import check_ordered_loader, labelled_batches
from .receptive_field import receptive_field_box


@dataclass
class PrototypeEvidence:
    """One line of a scoring sheet.

    Attributes
    ----------
    index : int
        Prototype index in the model.
    prototype_class : int
    similarity : float
        Its (max-pooled) similarity to the image.
    weight : float
        Last-layer weight from the prototype to the explained class.
    points : float
        ``similarity * weight`` (computed in float64, exact for float32 inputs).
    location : tuple of int
        ``(h, w)`` of the most similar patch in the similarity map.
    similarity_map : Tensor, shape (H, W)
        The similarity map upsampled to the image (bicubic).
    box : tuple of int
        95th-percentile box ``(x0, y0, x1, y1)`` of the upsampled map (end exclusive).
    rf_box : tuple of int
        Receptive-field box ``(x0, y0, x1, y1)`` of the most similar patch.
    """

    index: int
    prototype_class: int
    similarity: float
    weight: float
    points: float
    location: tuple[int, int]
    similarity_map: torch.Tensor
    box: tuple[int, int, int, int]
    rf_box: tuple[int, int, int, int]


@dataclass
class Explanation:
    """The scoring sheet of one image.

    ``sum(e.points for e in evidence) + rest_points == logit`` (up to float64 rounding),
    and ``logit`` equals the model's logit for ``target_class`` up to float32 rounding.

    Attributes
    ----------
    predicted_class : int
    target_class : int
        The class explained (the predicted one unless ``target`` was given).
    logit : float
        Sum of the points of all prototypes for ``target_class`` (float64).
    logits : Tensor, shape (K,)
        The model's logits.
    evidence : list of PrototypeEvidence
        The ``top_k`` prototypes with the most points, best first.
    rest_points : float
        Sum of the points of all other prototypes.
    n_prototypes : int
        Prototypes of the model (listed or summed in ``rest_points``).
    """

    predicted_class: int
    target_class: int
    logit: float
    logits: torch.Tensor
    evidence: list[PrototypeEvidence] = field(default_factory=list)
    rest_points: float = 0.0
    n_prototypes: int = 0

    def to_pandas(self, class_names=None, top: int | None = None):
        """The listed prototypes, one row each (no empty cell): ``class``, ``own class``,
        ``similarity``, ``weight``, ``points``; ``top`` keeps the first rows.
        (``pip install "interp_lib[viz]"``)."""
        from .._plumbing import require

        pd = require("pandas", "Explanation.to_pandas")
        rows = self.evidence if top is None else self.evidence[: int(top)]
        return pd.DataFrame(
            {
                "class": [
                    str(class_names[e.prototype_class]) if class_names else e.prototype_class
                    for e in rows
                ],
                "own class": [e.prototype_class == self.target_class for e in rows],
                "similarity": [e.similarity for e in rows],
                "weight": [e.weight for e in rows],
                "points": [e.points for e in rows],
            },
            index=pd.Index([f"p{e.index}" for e in rows], name="prototype"),
        )

    def sum_table(self, top: int | None = None):
        """The arithmetic of the sheet, one number per row: the points of the first
        ``top`` listed prototypes, of all the others, their sum, and the model's logit."""
        from .._plumbing import require

        pd = require("pandas", "Explanation.sum_table")
        k = len(self.evidence) if top is None else min(int(top), len(self.evidence))
        listed = math.fsum(e.points for e in self.evidence[:k])
        others = math.fsum(e.points for e in self.evidence[k:]) + self.rest_points
        n_other = max(self.n_prototypes - k, 0) if self.n_prototypes else None
        return pd.DataFrame(
            {
                "points": [
                    listed,
                    others,
                    math.fsum((listed, others)),
                    float(self.logits[self.target_class]),
                ]
            },
            index=[
                f"top {k} prototypes",
                f"the other {n_other}" if n_other is not None else "the others",
                "sum of points",
                "model logit (float32)",
            ],
        )


def explain(
    model: ProtoPNet,
    x: torch.Tensor,
    *,
    top_k: int = 10,
    target: int | torch.Tensor | None = None,
    percentile: float = 95.0,
) -> list[Explanation]:
    """Scoring sheets ("this looks like that") for a batch of images.

    Parameters
    ----------
    model : ProtoPNet
    x : Tensor, shape (N, C, H, W) or (C, H, W)
        Images, already on the model's device and normalised like the training data
        (checked by :meth:`ProtoPNet.check_input`).
    top_k : int
        How many prototypes to list per image, at least 1 (more than the model has
        lists them all); the rest are summed in ``rest_points``.
    target : int or sequence or Tensor of shape (N,), optional
        Class to explain; defaults to the predicted class
        (``interp_lib._plumbing.resolve_target``).
    percentile : float
        Percentile of the boxes (95 in the paper).

    Returns
    -------
    list of Explanation, one per image.

    Raises
    ------
    TypeError
        If ``model`` is not a ProtoPNet, ``x`` is not a floating-point tensor or
        ``top_k`` is not an int.
    ValueError
        If ``top_k < 1``, ``x`` holds no image, does not fit the model, or ``target`` is
        out of range.
    """
    if not is_protopnet(model):
        raise TypeError(f"model must be a ProtoPNet, got {type(model).__name__}.")
    if isinstance(x, torch.Tensor) and x.ndim == 3:
        x = x[None]
    top_k = min(check_int(top_k, "top_k", minimum=1), model.n_prototypes)
    model.check_input(x)
    if x.shape[0] == 0:
        raise ValueError("x holds no image (shape (0, C, H, W)); pass at least one image.")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise ValueError(
            f"x contains NaN or infinity in {bad} of its {x.shape[0]} images: their logits "
            "and points would be NaN. Check the data and its normalisation."
        )
    with torch.no_grad(), evaluating(model):
        out = model.forward_all(x)
    n = out.logits.shape[0]
    predicted = out.logits.argmax(dim=1)
    targets = resolve_target(model, x, target, logits=out.logits)
    act = PF.similarity(out.min_distances, model.similarity, model.eps).double()  # (N, P)
    weight = model.last_layer.weight.detach().double()[targets]  # (N, P)
    points = act * weight
    order = points.argsort(dim=1, descending=True, stable=True)[:, :top_k]  # (N, k)
    rows = torch.arange(n, device=order.device)[:, None]
    _, loc = PF.argmin_location(out.distances)  # (N, P, 2)
    top_loc = loc[rows, order]  # (N, k, 2)
    maps = out.similarities[rows, order]  # (N, k, h, w)
    size = tuple(x.shape[-2:])
    up = upsample_maps(maps, size)
    boxes = percentile_box(up, percentile)
    rf_boxes = receptive_field_box(model.prototype_receptive_field, top_loc, size)
    classes = model.prototype_classes
    results = []
    all_points = points.cpu().tolist()
    for i in range(n):
        idx = order[i].tolist()
        chosen = set(idx)
        evidence = [
            PrototypeEvidence(
                index=p,
                prototype_class=int(classes[p]),
                similarity=float(act[i, p]),
                weight=float(weight[i, p]),
                points=all_points[i][p],
                location=tuple(top_loc[i, r].tolist()),
                similarity_map=up[i, r].cpu(),
                box=tuple(boxes[i, r].tolist()),
                rf_box=tuple(rf_boxes[i, r].tolist()),
            )
            for r, p in enumerate(idx)
        ]
        rest = [v for p, v in enumerate(all_points[i]) if p not in chosen]
        results.append(
            Explanation(
                predicted_class=int(predicted[i]),
                target_class=int(targets[i]),
                logit=math.fsum(all_points[i]),
                logits=out.logits[i].detach().cpu(),
                evidence=evidence,
                rest_points=math.fsum(rest),
                n_prototypes=model.n_prototypes,
            )
        )
    return results


@dataclass
class NearestPatches:
    """The ``k`` nearest training patches of every prototype (one patch per image).

    Attributes
    ----------
    sample_index : Tensor, shape (P, k), long
        Image positions in the loader's order, nearest first.
    location : Tensor, shape (P, k, 2), long
        ``(h, w)`` of the patch in the similarity map.
    distance : Tensor, shape (P, k)
    label : Tensor, shape (P, k), long
        Class of each image.
    box : Tensor, shape (P, k, 4), long
        Receptive-field box ``(x0, y0, x1, y1)`` of each patch in image space.
    image_size : tuple of int
    """

    sample_index: torch.Tensor
    location: torch.Tensor
    distance: torch.Tensor
    label: torch.Tensor
    box: torch.Tensor
    image_size: tuple[int, int]


def nearest_patches(
    model: ProtoPNet,
    loader: Iterable,
    k: int = 5,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> NearestPatches:
    """The global view: each prototype's ``k`` nearest patches in a data set.

    As in the paper, each image contributes its single closest patch, so the ``k``
    neighbours come from ``k`` different images. One pass, vectorised over prototypes.

    Parameters
    ----------
    model : ProtoPNet
    loader : iterable of (x, y, ...)
        Images in a fixed order (``shuffle=False``).
    k : int
        Neighbours per prototype (fewer if the data set has fewer images).
    device : torch.device or str, optional
        Must be the model's device type (the device policy of ``interp_lib._plumbing``).
    progress : bool

    Returns
    -------
    NearestPatches
    """
    if not is_protopnet(model):
        raise TypeError(f"model must be a ProtoPNet, got {type(model).__name__}.")
    k = check_int(k, "k")
    check_ordered_loader(loader)
    device = check_device(model, device)
    num_p = model.n_prototypes
    dev = model.prototypes.device
    best_d = torch.empty(num_p, 0, device=dev)
    best_s = torch.empty(num_p, 0, dtype=torch.long, device=dev)
    best_loc = torch.empty(num_p, 0, 2, dtype=torch.long, device=dev)
    best_y = torch.empty(num_p, 0, dtype=torch.long, device=dev)
    offset, image_size = 0, None
    with evaluating(model), torch.no_grad(), torch.autocast(device.type, enabled=False):
        for x, y in labelled_batches(
            loader, model.n_classes, device, show_progress=progress, desc="nearest patches"
        ):
            image_size = tuple(x.shape[-2:])
            values, loc = PF.argmin_location(model.distances(model.latent(x)))
            n = x.shape[0]
            cand_d = torch.cat((best_d, values.t()), dim=1)
            cand_s = torch.cat((best_s, (torch.arange(n, device=dev) + offset).expand(num_p, n)), 1)
            cand_loc = torch.cat((best_loc, loc.transpose(0, 1)), dim=1)
            cand_y = torch.cat((best_y, y.expand(num_p, n)), dim=1)
            keep = min(int(k), cand_d.shape[1])
            best_d, pick = cand_d.topk(keep, dim=1, largest=False, sorted=True)
            best_s = cand_s.gather(1, pick)
            best_y = cand_y.gather(1, pick)
            best_loc = cand_loc.gather(1, pick[..., None].expand(-1, -1, 2))
            offset += n
    if offset == 0:
        raise ValueError("the loader yielded no images.")
    return NearestPatches(
        sample_index=best_s,
        location=best_loc,
        distance=best_d,
        label=best_y,
        box=receptive_field_box(model.prototype_receptive_field, best_loc, image_size),
        image_size=image_size,
    )
