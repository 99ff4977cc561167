"""Sanity check of ProtoPNet's patch visualisation (Xu-Darme et al. 2023).

ProtoPNet shows "where a prototype is in the image" by upsampling the latent similarity
map to the image (bicubic) and boxing its top 5 % (``percentile_box`` of
``interp_lib.protopnet.boxes``; what :func:`interp_lib.protopnet.explain` draws). That
assumes latent cell ``(i, j)`` sees the image region at the same relative position. Xu-Darme, Quénot,
Chihani and Rousset ("Sanity checks for patch visualisation in prototype-based image
classification", XAI4CV @ CVPR 2023; longer version arXiv:2302.08508) show that it need
not: a cell's receptive field covers most of the image and its effective support can sit
elsewhere, so the box may show pixels the similarity does not depend on. Their fix is a
saliency method applied to the similarity score itself (the gradient of the prototype's
max-pooled similarity with respect to the input pixels; SmoothGrad, PRP...), boxed the
same way.

:func:`patch_visualisation_check` computes, for each image and prototype, both boxes (the
same percentile rule on both maps, so only the map differs) and reports:

- ``iou``: intersection over union of the upsampling box and the relevance box;
- ``mass_inside``: the share of the relevance (absolute gradient) inside the upsampling
  box, against its chance level ``box_share`` (the box's share of the image);
- ``peak_inside``: whether the most relevant pixel lies in the upsampling box;
- ``similarity`` and ``occluded_similarity``: the prototype's similarity before and after
  the upsampling box is filled with ``baseline`` (0 in the model's input space): if the
  shown patch is where the similarity comes from, occluding it changes the similarity.

The relevance maps follow CaBRNet (the authors' library, ``cabrnet/core/visualization/
gradients.py`` and ``postprocess.py``): the gradient of the similarity at its maximum
(their ``location="max"``), absolute value, averaged over the channels; SmoothGrad with 10
noisy copies at 0.2 of the image's value range; gradient x input multiplies before the
absolute value. CaBRNet then smooths the map with a Gaussian of sigma 5 (at 224 px;
``smooth_sigma`` here, 0 by default) and boxes the min-max-normalised map at a fixed
threshold; we box both maps with the same percentile rule, so that only the map differs.
Gradients are computed by autograd on the model itself (no captum). One pitfall: where a
patch's latent equals the prototype (the training patch it was pushed onto), the squared
distance has a zero gradient there, so plain gradients vanish and the relevance box falls
back to the whole image; SmoothGrad's noisy copies avoid it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF

from .._plumbing import evaluating, require
from .._validation import check_choice, check_images, check_int, check_real, make_generator
from . import functional as PF
from .boxes import boxes_to_masks, percentile_box, upsample_maps
from .model import is_protopnet

__all__ = ["RELEVANCE_METHODS", "PatchCheck", "box_iou_pairs", "patch_visualisation_check"]

#: How the relevance map is computed from the similarity's input gradient ``g``:
#: ``"gradient"`` the channel mean of ``|g|`` (saliency); ``"gradient_x_input"`` the
#: channel mean of ``|x g|``; ``"smoothgrad"`` the channel mean of ``|mean of g over
#: noisy copies|`` (CaBRNet's post-processing, "absolute" polarity).
RELEVANCE_METHODS = ("gradient", "gradient_x_input", "smoothgrad")


@dataclass
class PatchCheck:
    """Upsampling boxes against relevance boxes, per image and prototype.

    Attributes
    ----------
    prototypes : Tensor, shape (P,), long
        The prototype indices checked (columns of every other field).
    upsampling_boxes, relevance_boxes : Tensor, shape (N, P, 4), long
        ``(x0, y0, x1, y1)``, exclusive ends.
    iou : Tensor, shape (N, P)
    mass_inside : Tensor, shape (N, P)
        Share of the relevance inside the upsampling box (NaN for a zero map).
    box_share : Tensor, shape (N, P)
        The upsampling box's share of the image (chance level of ``mass_inside``).
    peak_inside : Tensor of bool, shape (N, P)
    similarity, occluded_similarity : Tensor, shape (N, P)
        Max-pooled similarity before and after filling the upsampling box.
    relevance : Tensor, shape (N, P, H, W), or None
        The relevance maps (``keep_maps=True``).
    """

    prototypes: torch.Tensor
    upsampling_boxes: torch.Tensor
    relevance_boxes: torch.Tensor
    iou: torch.Tensor
    mass_inside: torch.Tensor
    box_share: torch.Tensor
    peak_inside: torch.Tensor
    similarity: torch.Tensor
    occluded_similarity: torch.Tensor
    relevance: torch.Tensor | None = None

    def to_pandas(self) -> Any:
        """One row per (image, prototype): the scalar fields and both boxes."""
        pd = require("pandas", "PatchCheck.to_pandas")
        n, p = self.iou.shape
        image = torch.arange(n).repeat_interleave(p)
        rows = {
            "image": image.numpy(),
            "prototype": self.prototypes.repeat(n).cpu().numpy(),
            "iou": self.iou.flatten().cpu().numpy(),
            "mass_inside": self.mass_inside.flatten().cpu().numpy(),
            "box_share": self.box_share.flatten().cpu().numpy(),
            "peak_inside": self.peak_inside.flatten().cpu().numpy(),
            "similarity": self.similarity.flatten().cpu().numpy(),
            "occluded_similarity": self.occluded_similarity.flatten().cpu().numpy(),
        }
        for name, boxes in (
            ("upsampling", self.upsampling_boxes),
            ("relevance", self.relevance_boxes),
        ):
            for k, c in enumerate(("x0", "y0", "x1", "y1")):
                rows[f"{name}_{c}"] = boxes[..., k].flatten().cpu().numpy()
        return pd.DataFrame(rows)


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of matching boxes ``a[..., :]`` and ``b[..., :]``.

    Parameters
    ----------
    a, b : Tensor, shape (..., 4)
        ``(x0, y0, x1, y1)`` with exclusive ends (same shape).

    Returns
    -------
    Tensor, shape (...), float
        0 for disjoint boxes; NaN if both are empty.
    """
    a, b = a.double(), b.double()
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih

    def area(t: torch.Tensor) -> torch.Tensor:
        return (t[..., 2] - t[..., 0]).clamp(min=0) * (t[..., 3] - t[..., 1]).clamp(min=0)

    return (inter / (area(a) + area(b) - inter)).float()


def _pooled_similarity(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model.forward_all(x)
    return PF.similarity(out.min_distances, model.similarity, model.eps)  # (N, P_all)


def _relevance(
    model: torch.nn.Module,
    x: torch.Tensor,
    protos: torch.Tensor,
    method: str,
    n_samples: int,
    noise: float,
    seed: int | None,
) -> torch.Tensor:
    """Relevance maps ``(N, P, H, W)`` of the selected prototypes' similarities."""
    if method == "smoothgrad":
        g = make_generator(seed)
        sd = noise * float(x.max() - x.min()) or noise
        copies = [x + sd * torch.randn(x.shape, generator=g).to(x) for _ in range(n_samples)]
    else:
        copies = [x]
    total = torch.zeros(x.shape[0], len(protos), *x.shape[1:], dtype=x.dtype, device=x.device)
    for xc in copies:
        xc = xc.detach().requires_grad_(True)
        sim = _pooled_similarity(model, xc)
        for k, p in enumerate(protos.tolist()):
            (grad,) = torch.autograd.grad(sim[:, p].sum(), xc, retain_graph=True)
            total[:, k] += grad
    total /= len(copies)
    if method == "gradient_x_input":
        total = total * x[:, None]
    return total.abs().mean(2)


def patch_visualisation_check(
    model: torch.nn.Module,
    x: torch.Tensor,
    *,
    prototypes: Sequence[int] | torch.Tensor | None = None,
    method: str = "gradient",
    percentile: float = 95.0,
    n_samples: int = 10,
    noise: float = 0.2,
    smooth_sigma: float = 0.0,
    baseline: float = 0.0,
    seed: int | None = 0,
    keep_maps: bool = False,
) -> PatchCheck:
    """Compare ProtoPNet's upsampling box with a gradient relevance box (Xu-Darme et al.).

    Parameters
    ----------
    model : ProtoPNet
        Run in eval mode (its mode restored).
    x : Tensor, shape (N, C, H, W)
        Images, normalised like the training data, on the model's device.
    prototypes : sequence of int or Tensor, optional
        Prototype indices to check; default all.
    method : {"gradient", "gradient_x_input", "smoothgrad"}
        The relevance map (:data:`~interp_lib.protopnet.patch_check.RELEVANCE_METHODS`).
    percentile : float
        Both boxes keep the pixels at or above this percentile of their map (95 as the
        paper's upsampling box).
    n_samples, noise : int, float
        SmoothGrad's noisy copies and noise level (a share of the images' value range);
        CaBRNet's defaults.
    smooth_sigma : float
        Gaussian smoothing of the relevance map (pixels) before its box; 0 (default)
        none. CaBRNet uses 5 at 224 px.
    baseline : float
        What the upsampling box is filled with for ``occluded_similarity``.
    seed : int or None
        SmoothGrad's noise.
    keep_maps : bool
        Keep the relevance maps ``(N, P, H, W)`` in the result.

    Returns
    -------
    PatchCheck

    Raises
    ------
    TypeError
        If ``model`` is not a ProtoPNet.
    ValueError
        Bad images, prototype indices out of range, an unknown method.
    """
    if not is_protopnet(model):
        raise TypeError(f"model must be a ProtoPNet, got {type(model).__name__}.")
    check_images(x, "x", nonempty=True, finite=True)
    model.check_input(x)
    check_choice(method, "method", RELEVANCE_METHODS)
    percentile = check_real(percentile, "percentile", minimum=0.0, maximum=100.0)
    n_samples = check_int(n_samples, "n_samples")
    noise = check_real(noise, "noise", minimum=0.0)
    smooth_sigma = check_real(smooth_sigma, "smooth_sigma", minimum=0.0)
    baseline = check_real(baseline, "baseline")
    n_all = model.n_prototypes
    if prototypes is None:
        protos = torch.arange(n_all)
    else:
        protos = torch.as_tensor(prototypes, dtype=torch.long).flatten().cpu()
        if protos.numel() == 0 or bool(((protos < 0) | (protos >= n_all)).any()):
            raise ValueError(f"prototypes must be indices in [0, {n_all}), got {protos.tolist()}.")
    x = x.detach()
    size = tuple(x.shape[-2:])
    with evaluating(model):
        with torch.no_grad():
            out = model.forward_all(x)
            sim = PF.similarity(out.min_distances, model.similarity, model.eps)[:, protos]
            up = upsample_maps(out.similarities[:, protos.to(x.device)], size)  # (N, P, H, W)
        up_boxes = percentile_box(up, percentile)
        with torch.enable_grad():
            rel = _relevance(model, x, protos, method, n_samples, noise, seed)
        if smooth_sigma > 0:
            k = 2 * math.ceil(4 * smooth_sigma) + 1  # scipy's truncate=4
            flat = rel.reshape(-1, 1, *size)
            rel = TF.gaussian_blur(flat, [k, k], [smooth_sigma, smooth_sigma]).view_as(rel)
        rel_boxes = percentile_box(rel, percentile)
        inside = boxes_to_masks(up_boxes, size)  # (N, P, H, W)
        total = rel.flatten(2).sum(2)
        mass = (rel * inside).flatten(2).sum(2) / total
        mass[total == 0] = float("nan")
        peak = inside.flatten(2).gather(2, rel.flatten(2).argmax(2, keepdim=True)).squeeze(2)
        occluded = torch.empty_like(sim)
        with torch.no_grad():
            for k, p in enumerate(protos.tolist()):
                xo = torch.where(inside[:, k, None], torch.full_like(x, baseline), x)
                occluded[:, k] = _pooled_similarity(model, xo)[:, p]
    return PatchCheck(
        prototypes=protos,
        upsampling_boxes=up_boxes,
        relevance_boxes=rel_boxes,
        iou=box_iou_pairs(up_boxes, rel_boxes),
        mass_inside=mass.float(),
        box_share=inside.flatten(2).float().mean(2),
        peak_inside=peak,
        similarity=sim.float(),
        occluded_similarity=occluded.float(),
        relevance=rel.detach() if keep_maps else None,
    )
