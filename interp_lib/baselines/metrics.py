"""Scores for attribution maps: faithfulness (deletion, insertion) and localisation.

Deletion and insertion follow RISE (Petsiuk et al. 2018): order pixels by decreasing
saliency; deletion replaces them, ``step`` pixels at a time, by a substrate (zeros by
default), insertion starts from a substrate (a blurred copy by default) and puts the
original pixels back. The score at each step is the softmax probability of the class
being explained (the originally predicted one by default); the AUC is the trapezoid rule
over the fraction of pixels changed, on ``[0, 1]``. Lower deletion AUC and higher
insertion AUC are better. Ties in the saliency are broken by pixel index (stable sort):
among equal values the pixel that comes first in row-major order is changed first. RISE's
``np.flip(np.argsort(...))`` (quicksort, then reversed) orders ties differently, so on maps
with flat regions (a ReLU-ed CAM) the curves may differ; on maps without ties the order is
the same.

Substrates: ``"blur"`` (insertion's default) is a separable Gaussian of size 11 and sigma 5
with replicate padding; ``"rise"`` is RISE's own: the kernel ``gkern(11, 5)`` of its
``evaluation.py`` (``scipy.ndimage.gaussian_filter`` of a centred delta on an 11 x 11 grid,
so a truncated, reflected Gaussian, cast to float32) applied with zero padding of 5, which
darkens a 5-pixel border towards 0 (in the model's input space).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._plumbing import evaluating, resolve_target
from .._validation import as_tensor, check_choice, check_images, check_int
from ._utils import as_map, check_map, model_logits

KINDS = ("deletion", "insertion")
#: The distance rules of :func:`pointing_game`'s ``tolerance``.
POINTING_RULES = ("euclidean", "chebyshev")


@dataclass
class PerturbationCurve:
    """A deletion or insertion curve per image.

    Attributes
    ----------
    fractions : Tensor, shape (S + 1,)
        Fraction of pixels deleted/inserted at each step, from 0 to 1.
    scores : Tensor, shape (N, S + 1)
        Probability of the explained class at each step.
    auc : Tensor, shape (N,)
        Trapezoid area under ``scores`` over ``fractions``.
    target : Tensor, shape (N,)
        The class whose probability is tracked.
    """

    fractions: torch.Tensor
    scores: torch.Tensor
    auc: torch.Tensor
    target: torch.Tensor


def gaussian_blur(images: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` images (replicate padding).

    RISE's insertion substrate uses ``kernel_size=11, sigma=5``.
    """
    r = kernel_size // 2
    x = torch.arange(-r, r + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    out = F.pad(images, (r, r, 0, 0), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    out = F.pad(out, (0, 0, r, r), mode="replicate")
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def rise_kernel(klen: int = 11, nsig: float = 5.0) -> torch.Tensor:
    """RISE's blur kernel ``gkern(klen, nsig)`` (``evaluation.py`` of eclique/RISE).

    ``scipy.ndimage.gaussian_filter`` (reflect mode, truncated at 4 sigma) of a delta at
    the centre of a ``klen x klen`` grid, cast to float32: with ``nsig=5`` the filter is
    wider than the grid, so the kernel is not a sampled Gaussian (its tails fold back).

    Returns
    -------
    Tensor, shape (klen, klen), float32
    """
    from scipy.ndimage import gaussian_filter

    klen = check_int(klen, "klen")
    delta = np.zeros((klen, klen))
    delta[klen // 2, klen // 2] = 1
    return torch.from_numpy(gaussian_filter(delta, nsig).astype("float32"))


def rise_blur(images: torch.Tensor, klen: int = 11, nsig: float = 5.0) -> torch.Tensor:
    """RISE's insertion substrate: ``conv2d(x, gkern(klen, nsig), padding=klen // 2)``.

    Every channel is blurred by :func:`rise_kernel` with zero padding (RISE's kernel is a
    3 x 3 diagonal stack of it; this is the same per channel, for any number of channels).

    Parameters
    ----------
    images : Tensor, shape (N, C, H, W)

    Returns
    -------
    Tensor, shape (N, C, H, W)
    """
    k = rise_kernel(klen, nsig).to(images.device, images.dtype)
    c = images.shape[1]
    weight = k.expand(c, 1, *k.shape).contiguous()
    return F.conv2d(images, weight, padding=klen // 2, groups=c)


def _substrate(inputs: torch.Tensor, substrate: Any) -> torch.Tensor:
    if isinstance(substrate, str):
        if substrate == "zeros":
            return torch.zeros_like(inputs)
        if substrate == "blur":
            return gaussian_blur(inputs)
        if substrate == "rise":
            return rise_blur(inputs)
        if substrate == "mean":
            return inputs.mean((2, 3), keepdim=True).expand_as(inputs)
        raise ValueError(
            "substrate must be 'zeros', 'blur', 'rise', 'mean', a number or a tensor, got "
            f"{substrate!r}."
        )
    if isinstance(substrate, (int, float)) and not isinstance(substrate, bool):
        if not math.isfinite(substrate):
            raise ValueError(f"substrate must be a finite number, got {substrate}.")
        return torch.full_like(inputs, float(substrate))
    if isinstance(substrate, torch.Tensor):
        if substrate.is_floating_point() and not bool(torch.isfinite(substrate).all()):
            raise ValueError(
                "the substrate tensor contains NaN or infinity; every curve through it would "
                "be NaN. Give finite values."
            )
        try:
            return substrate.to(inputs.device, inputs.dtype).expand_as(inputs)
        except RuntimeError as exc:
            raise ValueError(
                f"a substrate tensor must broadcast to the images {tuple(inputs.shape)}, got "
                f"shape {tuple(substrate.shape)}."
            ) from exc
    raise TypeError(
        f"substrate must be a string, a number or a tensor, got {type(substrate).__name__}."
    )


@torch.no_grad()
def perturbation_curve(
    model: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: Any = None,
    *,
    kind: str,
    substrate: Any,
    step: int | None = None,
    batch_size: int = 64,
) -> PerturbationCurve:
    """Shared engine of :func:`deletion` and :func:`insertion` (``kind`` picks which)."""
    check_images(inputs, nonempty=True, finite=True)
    check_choice(kind, "kind", KINDS)
    saliency = check_map(saliency, inputs.shape).to(inputs.device)
    n, _, h, w = inputs.shape
    step = w if step is None else check_int(step, "step")
    batch_size = check_int(batch_size, "batch_size")
    if model.training:
        warnings.warn(
            "the model is in training mode (dropout, batch statistics would make the curve "
            "random): the metric runs it in eval mode and restores its mode afterwards.",
            stacklevel=4,  # the user's call of deletion/insertion (through no_grad's wrapper)
        )
    with evaluating(model):
        return _perturbation_curve(
            model, inputs, saliency, target, kind, substrate, step, batch_size, n, h, w
        )


def _perturbation_curve(
    model, inputs, saliency, target, kind, substrate, step, batch_size, n, h, w
):
    hw = h * w
    logits = model_logits(model, inputs)
    t = resolve_target(model, inputs, target, logits=logits)
    n_steps = math.ceil(hw / step)
    counts = torch.clamp(torch.arange(n_steps + 1, device=inputs.device) * step, max=hw)
    # rank in the map's own dtype: a cast to float32 would merge distinct float64 values
    # (maps scaled by 1e300, or 1e3 + 1e-9 * s) into ties ranked by pixel index
    order = saliency.reshape(n, hw).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(hw, device=inputs.device).expand(n, hw))
    rank = rank.view(n, 1, h, w)
    sub = _substrate(inputs, substrate)
    start, end = (inputs, sub) if kind == "deletion" else (sub, inputs)

    total = n * (n_steps + 1)
    scores = torch.empty(total, device=inputs.device, dtype=torch.float32)
    for lo in range(0, total, batch_size):
        idx = torch.arange(lo, min(lo + batch_size, total), device=inputs.device)
        img, s = idx // (n_steps + 1), idx % (n_steps + 1)
        changed = rank[img] < counts[s].view(-1, 1, 1, 1)  # (B, 1, H, W)
        x = torch.where(changed, end[img], start[img])
        prob = model(x).float().softmax(1)
        scores[lo : lo + len(idx)] = prob.gather(1, t[img].view(-1, 1)).squeeze(1)
    scores = scores.view(n, n_steps + 1)
    fractions = counts.float() / hw
    auc = torch.trapezoid(scores, fractions, dim=1)
    return PerturbationCurve(fractions=fractions, scores=scores, auc=auc, target=t)


def deletion(
    model: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: Any = None,
    *,
    step: int | None = None,
    substrate: Any = "zeros",
    batch_size: int = 64,
) -> PerturbationCurve:
    """RISE deletion curve: remove the most salient pixels first (lower AUC is better).

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits ``(N, K)``, in eval mode.
    inputs : Tensor, shape (N, C, H, W)
        Images (the model's input space, e.g. normalised).
    saliency : Tensor, shape (N, 1, H, W) or (N, H, W)
        Attribution maps at input resolution; higher means more important.
    target : int, sequence, Tensor (N,), or None
        Class whose probability is tracked; ``None``: the originally predicted class.
    step : int, optional
        Pixels changed per step; default the image width (RISE's 224 at 224 px).
    substrate : {"zeros", "blur", "rise", "mean"}, float or Tensor
        What deleted pixels become; "zeros" is 0 in the model's input space; "blur" our
        Gaussian (replicate padding), "rise" RISE's exact blur (:func:`~interp_lib.baselines.metrics.rise_blur`).
    batch_size : int
        Perturbed images per forward pass.

    Returns
    -------
    PerturbationCurve
        ``fractions (S+1,)``, ``scores (N, S+1)``, ``auc (N,)``, ``target (N,)``.

    Raises
    ------
    ValueError
        Maps that do not match the images, NaN or infinity in a map (the pixel order
        would be undefined), an empty batch, a non-positive ``step`` or ``batch_size``.
    """
    return perturbation_curve(
        model, inputs, saliency, target, kind="deletion", substrate=substrate, step=step,
        batch_size=batch_size,
    )  # fmt: skip


def insertion(
    model: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: Any = None,
    *,
    step: int | None = None,
    substrate: Any = "blur",
    batch_size: int = 64,
) -> PerturbationCurve:
    """RISE insertion curve: add the most salient pixels first (higher AUC is better).

    Starts from ``substrate`` (by default the image blurred with a Gaussian of size 11 and
    sigma 5, RISE's parameters with replicate padding; ``substrate="rise"`` is RISE's exact
    kernel and zero padding, :func:`~interp_lib.baselines.metrics.rise_blur`) and puts back the original pixels in order
    of decreasing saliency. Parameters and return value as :func:`deletion`.
    """
    return perturbation_curve(
        model, inputs, saliency, target, kind="insertion", substrate=substrate, step=step,
        batch_size=batch_size,
    )  # fmt: skip


def _check_masks(masks: torch.Tensor, shape: torch.Size | tuple) -> torch.Tensor:
    masks = as_tensor(masks, "masks", "a boolean tensor of shape (N, H, W)")
    if masks.is_complex() or (masks.is_floating_point() and not bool(torch.isfinite(masks).all())):
        raise ValueError("masks must hold 0/1 or booleans, got complex, NaN or infinite values.")
    if masks.ndim == 3:
        masks = masks.unsqueeze(1)
    if (
        masks.ndim != 4
        or masks.shape[1] != 1
        or masks.shape[0] != shape[0]
        or masks.shape[2:] != shape[2:]
    ):
        raise ValueError(
            f"masks must have shape (N, H, W) or (N, 1, H, W) matching the saliency "
            f"{tuple(shape)}, got {tuple(masks.shape)}. For part masks (N, parts, H, W) "
            "pass masks.any(1) for the union or one part at a time."
        )
    return masks.bool()


def pointing_game(
    saliency: torch.Tensor, masks: torch.Tensor, *, tolerance: int = 0, rule: str = "euclidean"
) -> torch.Tensor:
    """Whether each map's maximum falls in the ground-truth region (Zhang et al. 2018).

    Parameters
    ----------
    saliency : Tensor, shape (N, 1, H, W) or (N, H, W)
    masks : Tensor of bool, shape (N, 1, H, W) or (N, H, W)
        Ground-truth regions (a box, a part, the union of parts...).
    tolerance : int
        A hit also counts within this distance (pixels) of the region (the original uses
        15 at 224 px); 0 (the default) demands the maximum itself be inside. Must be
        ``>= 0``.
    rule : {"euclidean", "chebyshev"}
        The distance of ``tolerance``. ``"euclidean"`` (default) is the reference's
        (Zhang et al.; TorchRay's ``PointingGame.evaluate``): a hit if a pixel of the mask
        lies at Euclidean distance ``< tolerance`` (strictly) from the maximum.
        ``"chebyshev"``: at most ``tolerance`` pixels away along both axes (the mask grown
        by a ``(2 t + 1)`` square; this function's rule before the option existed). At
        ``tolerance=0`` both rules are the maximum inside the mask (TorchRay's strict
        ``<`` would accept nothing there).

    Returns
    -------
    Tensor, shape (N,)
        1.0 for a hit, 0.0 for a miss, NaN where the mask is empty (use ``nanmean``).
        Ties for the maximum: the first pixel in row-major order is taken (``argmax``);
        Quantus' ``PointingGame`` counts a hit if any tied maximum is inside.

    Raises
    ------
    ValueError
        Masks that do not match the maps, NaN or infinity in a map, ``tolerance < 0``,
        an unknown ``rule``.
    """
    saliency = as_map(saliency)
    masks = _check_masks(masks, saliency.shape).to(saliency.device)
    tolerance = check_int(tolerance, "tolerance", minimum=0)
    check_choice(rule, "rule", POINTING_RULES)
    if tolerance > 0:
        k = 2 * tolerance + 1
        if rule == "chebyshev":
            masks = F.max_pool2d(masks.float(), k, stride=1, padding=tolerance) > 0
        else:
            r = torch.arange(-tolerance, tolerance + 1, device=masks.device, dtype=torch.float32)
            disc = (r[:, None] ** 2 + r[None, :] ** 2) < tolerance**2  # TorchRay's accept
            grown = F.conv2d(masks.float(), disc.float().view(1, 1, k, k), padding=tolerance)
            masks = grown > 0
    top = saliency.flatten(1).argmax(1)
    hit = masks.flatten(1).gather(1, top[:, None]).squeeze(1).float()
    hit[~masks.flatten(1).any(1)] = float("nan")
    return hit


def energy_in_mask(
    saliency: torch.Tensor, masks: torch.Tensor, *, positive: bool = True
) -> torch.Tensor:
    """Share of the attribution energy inside a region (energy-based pointing game).

    Parameters
    ----------
    saliency : Tensor, shape (N, 1, H, W) or (N, H, W)
    masks : Tensor of bool, shape (N, 1, H, W) or (N, H, W)
    positive : bool
        Use only the positive part of the map (``ReLU``; Score-CAM's definition); else
        the absolute value.

    Returns
    -------
    Tensor, shape (N,)
        ``sum(e * mask) / sum(e)`` in ``[0, 1]``; NaN for an all-zero map.
    """
    saliency = as_map(saliency)
    masks = _check_masks(masks, saliency.shape).to(saliency.device)
    e = saliency.clamp(min=0) if positive else saliency.abs()
    if e.dtype in (torch.float16, torch.bfloat16) or not e.is_floating_point():
        e = e.float()  # sums of half-precision maps overflow at 65504
    total = e.flatten(1).sum(1)
    inside = (e * masks).flatten(1).sum(1)
    out = inside / total
    out[total == 0] = float("nan")
    return out


def mask_share(masks: torch.Tensor) -> torch.Tensor:
    """Share of each image covered by its mask: the chance level of :func:`energy_in_mask`.

    A uniform map (or the expectation of a map of i.i.d. random values) puts exactly this
    share of its energy inside the mask, so an explanation's energy on the object means
    something only against it.

    Parameters
    ----------
    masks : Tensor of bool, shape (N, 1, H, W) or (N, H, W)

    Returns
    -------
    Tensor, shape (N,)
    """
    masks = as_tensor(masks, "masks", "a boolean tensor of shape (N, H, W)")
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(
            f"masks must have shape (N, H, W) or (N, 1, H, W), got {tuple(masks.shape)}."
        )
    return (masks != 0).flatten(1).float().mean(1)
