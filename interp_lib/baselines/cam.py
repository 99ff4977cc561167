"""Class activation maps: CAM (Zhou et al. 2016) and Grad-CAM (Selvaraju et al. 2017).

For a network that ends in ``feature map A (C, h, w) -> global average pool -> linear
(W, b)``, CAM is ``M_c = sum_k W[c, k] A_k`` and its spatial mean is exactly
``logit_c - b_c``. Grad-CAM weights each channel by its spatially averaged gradient, which
on such a network is ``W[c, k] / (h w)``, so Grad-CAM there equals ``ReLU(M_c) / (h w)``.

Layers are given as a submodule or its dotted name and resolved by
:func:`interp_lib.profile.layers.resolve_layer`; CAM records the layer's output with
:func:`interp_lib.profile.capture`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._plumbing import resolve_target
from .._validation import check_choice, check_images
from . import _captum
from ._utils import (
    INTERPOLATE_MODES,
    find_layer,
    layer_forward,
    warn_if_training,
    without_inplace,
)
from ._utils import upsample as _upsample

__all__ = ["cam", "grad_cam", "grad_cam_maps"]


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
        ``sum_k W[c, k] A_k`` (signed, not rectified), detached. ``A`` is the layer's
        output as the layer returned it, even when a later in-place op (an
        ``nn.ReLU(inplace=True)``) overwrites that tensor.

    Raises
    ------
    ValueError
        A missing or unknown layer, a layer without a spatial output, an ``fc`` whose
        input width differs from the layer's channels, or a target out of range.
    """
    check_images(inputs, nonempty=True, finite=True)
    check_choice(interpolate_mode, "interpolate_mode", INTERPOLATE_MODES)
    warn_if_training(model)
    name = find_layer(model, layer, method="cam")
    linear = (
        _last_linear(model)
        if fc is None
        else model.get_submodule(find_layer(model, fc, method="cam"))
    )
    if not isinstance(getattr(linear, "weight", None), torch.Tensor) or linear.weight.ndim != 2:
        raise ValueError(
            f"fc must be a linear layer with a 2-D weight, got {type(linear).__name__}."
        )
    logits, feats = layer_forward(model, inputs, name, method="cam")
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
    noise_tunnel: str | None = None,
    nt_samples: int = 10,
    stdevs: float | None = None,
    **kwargs: Any,
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
        The convolutional layer (or its dotted name) whose output is explained; its
        output must be a feature map ``(N, C', h, w)``.
    relu : bool
        Rectify the map, as in Selvaraju et al. (captum's own default is ``False``).
    upsample : bool
        Resize to input resolution (default); ``False`` keeps the layer's ``(h, w)``.
    interpolate_mode : {"bilinear", "bicubic", "nearest"}
        Resizing mode (``align_corners=False``, as captum and OpenCV). Bilinear keeps the
        rectified map non-negative; bicubic can overshoot below zero.
    noise_tunnel : {"smoothgrad", "smoothgrad_sq", "vargrad"}, optional
        Average over ``nt_samples`` noisy copies of standard deviation ``stdevs``
        (captum's ``NoiseTunnel``; default 15 % of the inputs' range).
    **kwargs
        Passed to ``LayerGradCam.attribute`` (e.g. ``attribute_to_layer_input``).

    Returns
    -------
    Tensor, shape (N, 1, H, W)
        ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of
        ``d logit_c / d A_k``, detached.

    Raises
    ------
    ValueError
        A missing or unknown layer, a layer whose output is not a feature map (an
        ``nn.Linear``), or a target out of range.
    ModuleNotFoundError
        captum is not installed (``pip install "interp_lib[captum]"``).
    """
    check_images(inputs, nonempty=True, finite=True)
    check_choice(interpolate_mode, "interpolate_mode", INTERPOLATE_MODES)
    check_choice(noise_tunnel, "noise_tunnel", _captum.NT_TYPES, allow_none=True)
    warn_if_training(model)
    name = find_layer(model, layer, method="grad_cam")
    logits, _ = layer_forward(model, inputs, name, method="grad_cam")
    t = resolve_target(model, inputs, target, logits=logits)
    return grad_cam_maps(
        without_inplace(model), inputs, t, name, relu=relu, upsample=upsample,
        interpolate_mode=interpolate_mode, noise_tunnel=noise_tunnel, nt_samples=nt_samples,
        stdevs=stdevs, **kwargs,
    )  # fmt: skip


def grad_cam_maps(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    layer: str,
    *,
    relu: bool,
    upsample: bool,
    interpolate_mode: str,
    noise_tunnel: str | None,
    nt_samples: int,
    stdevs: float | None,
    **kwargs: Any,
) -> torch.Tensor:
    """Grad-CAM's computation once the arguments are checked (:func:`grad_cam` checks them).

    ``model`` has no in-place op on the layer's path, ``target`` is a long tensor ``(N,)``
    and ``layer`` a dotted name whose output is a feature map. Every option is required:
    the defaults live in the public entry points (:func:`grad_cam`,
    :func:`interp_lib.baselines.attribute`) only.
    """
    algo = _captum.captum_attr("grad_cam").LayerGradCam(model, model.get_submodule(layer))
    maps = _captum.run(
        algo, inputs, {"target": target, "relu_attributions": relu, **kwargs},
        noise_tunnel=noise_tunnel, nt_samples=nt_samples, stdevs=stdevs,
    )  # fmt: skip
    if upsample:
        maps = _upsample(maps, tuple(inputs.shape[-2:]), interpolate_mode)
    return maps
