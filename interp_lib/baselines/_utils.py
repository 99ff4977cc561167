"""Plumbing shared by the attribution methods: inputs, maps, layers, resizing, model copies.

Nothing here is an explanation method; these helpers make every method take the same
arguments and return the same ``(N, 1, H, W)`` map. Layers are resolved by
:func:`interp_lib.profile.layers.resolve_layer` and hooked by
:func:`interp_lib.profile.capture` (the library's one resolver and one hook mechanism).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._plumbing import forward_logits
from .._validation import as_tensor, check_choice
from ..profile.capture import capture
from ..profile.layers import LayerRef, list_layers, resolve_layer
from ..protopnet.boxes import INTERPOLATE_MODES

REDUCTIONS = ("sum", "abs_sum", "max_abs", "l2")


# ----------------------------------------------------------------------- inputs, maps


def as_map(saliency: Any, name: str = "saliency") -> torch.Tensor:
    """``saliency`` as a finite real ``(N, 1, H, W)`` tensor (``(N, H, W)`` gains the axis).

    Raises
    ------
    TypeError
        Not numbers (or booleans / complex numbers).
    ValueError
        Another shape, an empty image, or NaN/infinity in a map.
    """
    saliency = as_tensor(saliency, name, "a tensor of shape (N, 1, H, W)")
    if saliency.dtype == torch.bool or saliency.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {saliency.dtype}.")
    if saliency.ndim == 3:
        saliency = saliency.unsqueeze(1)
    if saliency.ndim != 4 or saliency.shape[1] != 1:
        raise ValueError(
            f"{name} must have shape (N, 1, H, W) or (N, H, W), got {tuple(saliency.shape)}. "
            "Reduce channels first, e.g. saliency.sum(1, keepdim=True)."
        )
    if saliency.shape[2] == 0 or saliency.shape[3] == 0:
        raise ValueError(f"{name} has empty maps (shape {tuple(saliency.shape)}).")
    if saliency.is_floating_point() and not bool(torch.isfinite(saliency).all()):
        bad = int((~torch.isfinite(saliency)).flatten(1).any(1).sum())
        raise ValueError(
            f"{name} contains NaN or infinity in {bad} of its {saliency.shape[0]} maps, so "
            "the pixel order (or the maximum) is undefined. Replace them, e.g. with "
            "torch.nan_to_num(saliency), or fix the method that produced them."
        )
    return saliency


def check_map(
    saliency: Any, inputs_shape: torch.Size | tuple, name: str = "saliency"
) -> torch.Tensor:
    """:func:`as_map`, and the map must match the images' batch and size."""
    saliency = as_map(saliency, name)
    n, _, h, w = inputs_shape
    if saliency.shape[0] != n or tuple(saliency.shape[2:]) != (h, w):
        raise ValueError(
            f"{name} has shape {tuple(saliency.shape)} but the images are {tuple(inputs_shape)}; "
            f"expected ({n}, 1, {h}, {w}). Use interp_lib.baselines.attribute, which returns "
            "maps at input resolution."
        )
    return saliency


# ----------------------------------------------------------------------------- model


def model_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The model's logits ``(N, K)`` (no grad); a model that cannot run on ``inputs``
    (wrong channels, size or dtype) gives a ``ValueError`` that says so."""
    try:
        return forward_logits(model, inputs)
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError as exc:
        dtypes = sorted({str(p.dtype) for p in model.parameters()}) or ["none"]
        raise ValueError(
            f"the model could not run on inputs of shape {tuple(inputs.shape)} and dtype "
            f"{inputs.dtype} (its parameters are {', '.join(dtypes)}): {exc}. Check the "
            "number of channels, the image size and the dtype the model expects."
        ) from exc


def find_layer(model: nn.Module, layer: LayerRef | None, *, method: str) -> str:
    """The dotted name of the layer a layer method explains (a module or a dotted name).

    Resolved by :func:`interp_lib.profile.layers.resolve_layer` (pseudo-layers refused).
    """
    if layer is None:
        convs = list_layers(model, nn.Conv2d)
        hint = f" The last convolution is {convs[-1]!r}." if convs else ""
        raise ValueError(
            f"method {method!r} needs layer=..., the module (or its dotted name) whose output "
            f"feature map is explained.{hint} List names with interp_lib.profile.list_layers."
        )
    return resolve_layer(model, layer, pseudo=False)


def layer_forward(
    model: nn.Module, inputs: torch.Tensor, layer: str, *, method: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass (no grad): the logits ``(N, K)`` and ``layer``'s output.

    The output is recorded by :func:`interp_lib.profile.capture` (a copy taken when the
    layer returns, so a later in-place op cannot change it) and must be a feature map
    ``(N, C, h, w)``: layer methods (CAM, Grad-CAM) need spatial positions.
    """
    with capture(model, layer, eval_mode=False) as acts:
        logits = model_logits(model, inputs)
    feats = acts.get(layer)
    if feats is None or feats.ndim != 4:
        got = "did not run" if feats is None else f"gives shape {tuple(feats.shape)}"
        convs = list_layers(model, nn.Conv2d)
        hint = f" e.g. the last convolution {convs[-1]!r}" if convs else ""
        raise ValueError(
            f"{method} needs a layer whose output is a feature map (N, C, h, w), but layer "
            f"{layer!r} ({type(model.get_submodule(layer)).__name__}) {got}. Pick a "
            f"convolutional layer{hint}."
        )
    return logits, feats


def has_inplace(model: nn.Module) -> bool:
    """Whether any submodule runs in place (e.g. ``nn.ReLU(inplace=True)``)."""
    return any(getattr(m, "inplace", False) is True for m in model.modules())


def without_inplace(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every ``inplace`` flag switched off.

    Guided backpropagation and layer hooks fail or silently give wrong gradients when a
    hooked activation is modified in place. The user's model is never touched; when it has
    no in-place module it is returned as is.
    """
    if not has_inplace(model):
        return model
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    return clone


def warn_if_training(model: nn.Module, stacklevel: int = 3) -> None:
    """Warn that a model in training mode makes attributions depend on the batch."""
    if model.training:
        warnings.warn(
            "the model is in training mode: dropout and batch statistics make the "
            "attribution depend on the batch. Call model.eval() first.",
            stacklevel=stacklevel,
        )


# ---------------------------------------------------------------------------- maps


def upsample(maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, C, h, w)`` maps to ``size`` (``align_corners=False``, as captum/cv2).

    ``bilinear`` keeps values inside the input range (so a non-negative map stays
    non-negative); ``bicubic`` is smoother but can overshoot; ``nearest`` keeps blocks.
    """
    check_choice(mode, "interpolate_mode", INTERPOLATE_MODES)
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if mode == "nearest":
        return F.interpolate(maps, size=size, mode="nearest")
    return F.interpolate(maps, size=size, mode=mode, align_corners=False)


def reduce_channels(attr: torch.Tensor, reduce: str) -> torch.Tensor:
    """Collapse ``(N, C, H, W)`` pixel attributions to ``(N, 1, H, W)``."""
    check_choice(reduce, "reduce", REDUCTIONS)
    if reduce == "sum":
        return attr.sum(1, keepdim=True)
    if reduce == "abs_sum":
        return attr.abs().sum(1, keepdim=True)
    if reduce == "max_abs":
        return attr.abs().amax(1, keepdim=True)
    return attr.pow(2).sum(1, keepdim=True).sqrt()
