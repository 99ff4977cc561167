"""Plumbing shared by the attribution methods: layers, targets, resizing, model copies.

Nothing here is an explanation method; these helpers make every method take the same
arguments and return the same ``(N, 1, H, W)`` map.
"""

from __future__ import annotations

import copy
import difflib
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

INTERPOLATE_MODES = ("bilinear", "bicubic", "nearest")


def import_captum_attr() -> Any:
    """Import ``captum.attr`` or fail with an installation hint."""
    try:
        import captum.attr as captum_attr
    except ImportError as exc:  # pragma: no cover - captum is a declared dependency
        raise ImportError(
            "interp_lib.baselines needs captum for this method, and it is not installed. "
            "Install it with `pip install captum` (or `pip install interp_lib[all]`)."
        ) from exc
    return captum_attr


def check_map(saliency: torch.Tensor, inputs_shape: torch.Size | tuple, name: str = "saliency"):
    """Return ``saliency`` as ``(N, 1, H, W)`` matching the images' batch and size."""
    if not isinstance(saliency, torch.Tensor):
        saliency = torch.as_tensor(saliency)
    if saliency.ndim == 3:
        saliency = saliency.unsqueeze(1)
    n, _, h, w = inputs_shape
    if saliency.ndim != 4 or saliency.shape[1] != 1:
        raise ValueError(
            f"{name} must have shape (N, 1, H, W) or (N, H, W), got {tuple(saliency.shape)}. "
            "Reduce channels first, e.g. saliency.sum(1, keepdim=True)."
        )
    if saliency.shape[0] != n or tuple(saliency.shape[2:]) != (h, w):
        raise ValueError(
            f"{name} has shape {tuple(saliency.shape)} but the images are {tuple(inputs_shape)}; "
            f"expected ({n}, 1, {h}, {w}). Use interp_lib.baselines.attribute, which returns "
            "maps at input resolution."
        )
    return saliency


def resolve_layer(model: nn.Module, layer: nn.Module | str | None, *, method: str) -> nn.Module:
    """Find ``layer`` in ``model``: a submodule object or a dotted name like ``"features.3"``."""
    if layer is None:
        convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        hint = f" The last convolution is {convs[-1]!r}." if convs else ""
        raise ValueError(
            f"method {method!r} needs layer=..., the module (or its dotted name) whose output "
            f"feature map is explained.{hint} List names with dict(model.named_modules())."
        )
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer in modules:
            return modules[layer]
        close = difflib.get_close_matches(layer, [n for n in modules if n], n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"model has no submodule named {layer!r}.{hint} "
            "List names with [n for n, _ in model.named_modules()]."
        )
    if isinstance(layer, nn.Module):
        if any(m is layer for m in model.modules()):
            return layer
        raise ValueError(
            f"layer {type(layer).__name__} is not a submodule of the model. If you passed a "
            "layer of a copy of the model, pass its dotted name instead."
        )
    raise TypeError(f"layer must be an nn.Module or a dotted name, got {type(layer).__name__}.")


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """The dotted name of ``layer`` inside ``model``."""
    for name, m in model.named_modules():
        if m is layer:
            return name
    raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model.")


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


def warn_if_training(model: nn.Module) -> None:
    if model.training:
        warnings.warn(
            "the model is in training mode: dropout and batch statistics make the "
            "attribution depend on the batch. Call model.eval() first.",
            stacklevel=3,
        )


def upsample(maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, C, h, w)`` maps to ``size`` (``align_corners=False``, as captum/cv2).

    ``bilinear`` keeps values inside the input range (so a non-negative map stays
    non-negative); ``bicubic`` is smoother but can overshoot; ``nearest`` keeps blocks.
    """
    if mode not in INTERPOLATE_MODES:
        raise ValueError(
            f"interpolate_mode must be one of {list(INTERPOLATE_MODES)}, got {mode!r}."
        )
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if mode == "nearest":
        return F.interpolate(maps, size=size, mode="nearest")
    return F.interpolate(maps, size=size, mode=mode, align_corners=False)


def reduce_channels(attr: torch.Tensor, reduce: str) -> torch.Tensor:
    """Collapse ``(N, C, H, W)`` pixel attributions to ``(N, 1, H, W)``."""
    if reduce == "sum":
        return attr.sum(1, keepdim=True)
    if reduce == "abs_sum":
        return attr.abs().sum(1, keepdim=True)
    if reduce == "max_abs":
        return attr.abs().amax(1, keepdim=True)
    if reduce == "l2":
        return attr.pow(2).sum(1, keepdim=True).sqrt()
    raise ValueError(f"reduce must be one of ['sum', 'abs_sum', 'max_abs', 'l2'], got {reduce!r}.")
