"""Class activation maps: CAM (Zhou et al. 2016) and Grad-CAM (Selvaraju et al. 2017).

For a network that ends in ``feature map A (C, h, w) -> global average pool -> linear
(W, b)``, CAM is ``M_c = sum_k W[c, k] A_k`` and its spatial mean is exactly
``logit_c - b_c``. Grad-CAM weights each channel by its spatially averaged gradient, which
on such a network is ``W[c, k] / (h w)``, so Grad-CAM there equals ``ReLU(M_c) / (h w)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._plumbing import check_images, resolve_target
from ._utils import (
    import_captum_attr,
    layer_name,
    resolve_layer,
    warn_if_training,
    without_inplace,
)
from ._utils import (
    upsample as _upsample,
)


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            "cam needs a network that ends in global average pooling and an nn.Linear; "
            "this model has no nn.Linear. Pass fc=... or use grad_cam instead."
        )
    return linears[-1]


def cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    layer: nn.Module | str,
    fc: nn.Module | str | None = None,
    upsample: bool = True,
    interpolate_mode: str = "bilinear",
) -> torch.Tensor:
    """Class activation map of a GAP-then-linear network.

    Parameters
    ----------
    model : nn.Module
        Network whose ``layer`` output is globally average pooled and fed to ``fc``.
    inputs : Tensor, shape (N, C, H, W)
        Images.
    target : int, sequence of N ints, Tensor (N,), or None
        Class to explain; ``None`` takes the predicted class.
    layer : nn.Module or str
        The module (or its dotted name) that outputs the pooled feature map ``(N, C', h, w)``.
    fc : nn.Module or str, optional
        The final linear layer ``(K, C')``; default: the model's last ``nn.Linear``.
    upsample : bool
        Resize to the input resolution (default). ``False`` returns the map at the layer's
        resolution ``(N, 1, h, w)``, whose spatial mean is exactly ``logit - bias``.
    interpolate_mode : {"bilinear", "bicubic", "nearest"}
        Resizing mode (``align_corners=False``).

    Returns
    -------
    Tensor, shape (N, 1, H, W)
        ``sum_k W[c, k] A_k`` (signed, not rectified), detached.
    """
    check_images(inputs)
    warn_if_training(model)
    feat_layer = resolve_layer(model, layer, method="cam")
    linear = _last_linear(model) if fc is None else resolve_layer(model, fc, method="cam")
    if not isinstance(getattr(linear, "weight", None), torch.Tensor) or linear.weight.ndim != 2:
        raise ValueError(
            f"fc must be a linear layer with a 2-D weight, got {type(linear).__name__}."
        )
    captured: list[torch.Tensor] = []
    handle = feat_layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.no_grad():
            logits = model(inputs)
    finally:
        handle.remove()
    if not captured or captured[-1].ndim != 4:
        raise ValueError(
            "cam needs the layer to output a feature map (N, C, h, w); the layer "
            f"{type(feat_layer).__name__} did not run or gave another shape."
        )
    feats = captured[-1]
    weight = linear.weight
    if weight.shape[1] != feats.shape[1]:
        raise ValueError(
            f"fc has {weight.shape[1]} input features but the layer outputs "
            f"{feats.shape[1]} channels; cam needs layer -> global average pool -> fc."
        )
    t = resolve_target(model, inputs, target, logits=logits)
    maps = torch.einsum("nchw,nc->nhw", feats, weight[t].to(feats.dtype)).unsqueeze(1)
    if upsample:
        maps = _upsample(maps, tuple(inputs.shape[-2:]), interpolate_mode)
    return maps.detach()


def grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    layer: nn.Module | str,
    relu: bool = True,
    upsample: bool = True,
    interpolate_mode: str = "bilinear",
) -> torch.Tensor:
    """Grad-CAM through captum's ``LayerGradCam``, with the paper's ReLU.

    Parameters
    ----------
    model : nn.Module
        Any differentiable classifier returning logits ``(N, K)``. In-place activations
        are switched off on a private copy; ``model`` itself is never modified.
    inputs : Tensor, shape (N, C, H, W)
        Images.
    target : int, sequence of N ints, Tensor (N,), or None
        Class to explain; ``None`` takes the predicted class.
    layer : nn.Module or str
        The convolutional layer (or its dotted name) whose output is explained.
    relu : bool
        Rectify the map, as in Selvaraju et al. (captum's own default is ``False``).
    upsample : bool
        Resize to input resolution (default); ``False`` keeps the layer's ``(h, w)``.
    interpolate_mode : {"bilinear", "bicubic", "nearest"}
        Resizing mode (``align_corners=False``, as captum and OpenCV). Bilinear keeps the
        rectified map non-negative; bicubic can overshoot below zero.

    Returns
    -------
    Tensor, shape (N, 1, H, W)
        ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of
        ``d logit_c / d A_k``, detached.
    """
    check_images(inputs)
    warn_if_training(model)
    resolve_layer(model, layer, method="grad_cam")
    attr_mod = import_captum_attr()
    t = resolve_target(model, inputs, target)
    work = without_inplace(model)
    work_layer = _same_layer(model, work, layer)
    maps = attr_mod.LayerGradCam(work, work_layer).attribute(
        inputs.detach().requires_grad_(True), target=t, relu_attributions=relu
    )
    if upsample:
        maps = _upsample(maps, tuple(inputs.shape[-2:]), interpolate_mode)
    return maps.detach()


def _same_layer(model: nn.Module, work: nn.Module, layer: nn.Module | str) -> nn.Module:
    """The layer of ``work`` (``model`` or its copy) that corresponds to ``layer``."""
    found = resolve_layer(model, layer, method="layer")
    if work is model:
        return found
    return resolve_layer(work, layer_name(model, found), method="layer")
