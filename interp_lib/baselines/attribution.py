"""One entry point for every explanation method: ``attribute(model, x, method=...)``.

Every method returns a detached map of shape ``(N, 1, H, W)`` at input resolution, so
comparison code has no special cases:

- pixel methods (gradients, integrated gradients, occlusion...) give ``(N, C, H, W)``
  attributions, collapsed over channels by ``reduce`` (default ``"sum"``, which keeps
  the completeness of integrated gradients);
- layer methods (CAM, Grad-CAM) are resized from the layer's ``(h, w)`` by
  ``interpolate_mode`` (default bilinear, ``align_corners=False``);
- ProtoPNet's own evidence (``"prototype"``, ``"prototype_box"``) uses its bicubic maps.

Methods that hook activations (guided backprop, deconvolution, guided Grad-CAM,
Grad-CAM) run on a deep copy of the model with in-place operations switched off when the
model has any; the user's model is never modified.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from .._plumbing import check_images, resolve_target
from ._utils import (
    import_captum_attr,
    reduce_channels,
    resolve_layer,
    upsample,
    warn_if_training,
    without_inplace,
)
from .cam import _same_layer, cam
from .prototype import prototype_attribution

#: Every ``method`` accepted by :func:`attribute`, with a one-line description.
METHODS: dict[str, str] = {
    "saliency": "absolute input gradient (Simonyan et al. 2014), captum Saliency",
    "input_x_gradient": "input times gradient, captum InputXGradient",
    "integrated_gradients": "integrated gradients (Sundararajan et al. 2017), baseline 0",
    "gradient_shap": "expected gradients over a baseline distribution, captum GradientShap",
    "smoothgrad": "saliency averaged over noisy copies (Smilkov et al. 2017), NoiseTunnel",
    "occlusion": "drop in the logit when a sliding patch is set to the baseline",
    "guided_backprop": "guided backpropagation (Springenberg et al. 2015)",
    "deconvolution": "deconvnet backward pass (Zeiler and Fergus 2014)",
    "guided_grad_cam": "guided backprop times upsampled Grad-CAM (needs layer)",
    "grad_cam": "Grad-CAM with ReLU (Selvaraju et al. 2017), upsampled (needs layer)",
    "cam": "class activation map of a GAP-linear network (Zhou et al. 2016; needs layer)",
    "prototype": "ProtoPNet similarity maps x similarity x last-layer weight",
    "prototype_box": "ProtoPNet 95th-percentile boxes x similarity x last-layer weight",
    "random": "uniform noise: the chance level for every metric",
}

_LAYER_METHODS = ("grad_cam", "guided_grad_cam", "cam")
_HOOKING = ("guided_backprop", "deconvolution", "guided_grad_cam", "grad_cam")
_NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _default_stdev(inputs: torch.Tensor) -> float:
    """SmoothGrad's 15 % noise level: 0.15 x (max - min) of the inputs."""
    span = float(inputs.max() - inputs.min())
    return 0.15 * span if span > 0 else 0.15


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    method: str,
    layer: nn.Module | str | None = None,
    baselines: torch.Tensor | float | None = None,
    reduce: str = "sum",
    interpolate_mode: str = "bilinear",
    noise_tunnel: str | None = None,
    nt_samples: int = 10,
    stdevs: float | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> torch.Tensor:
    """Explain ``model``'s decision for ``target`` with ``method``.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits ``(N, K)`` (a ProtoPNet for the prototype methods).
        Put it in ``eval()`` mode first.
    inputs : Tensor, shape (N, C, H, W)
        Images, on the model's device.
    target : int, sequence of N ints, Tensor (N,), or None
        Class to explain; ``None`` takes the predicted class.
    method : str
        One of :data:`interp_lib.baselines.METHODS`.
    layer : nn.Module or str, optional
        The layer (or dotted name) for ``grad_cam``, ``guided_grad_cam`` and ``cam``.
    baselines : Tensor or float, optional
        Reference input: for ``integrated_gradients`` and ``occlusion`` (default 0), and
        the baseline distribution ``(B, C, H, W)`` for ``gradient_shap`` (default: zeros
        plus 4 Gaussian images with the inputs' standard deviation).
    reduce : {"sum", "abs_sum", "max_abs", "l2"}
        How pixel methods collapse channels.
    interpolate_mode : {"bilinear", "bicubic", "nearest"}
        How layer maps are resized to the input (bilinear keeps a rectified map >= 0).
    noise_tunnel : {"smoothgrad", "smoothgrad_sq", "vargrad"}, optional
        Wrap a captum method in ``NoiseTunnel`` with ``nt_samples`` noisy copies of standard
        deviation ``stdevs`` (default 15 % of the inputs' range).
    seed : int
        Seed for ``method="random"`` and the default ``gradient_shap`` baselines.
    **kwargs
        Passed to the method: e.g. ``n_steps`` for integrated gradients,
        ``sliding_window_shapes``/``strides``/``perturbations_per_eval`` for occlusion
        (default: a (C, H/8, W/8) window, half-window strides, 16 windows per forward),
        ``percentile``/``interpolate_mode`` for prototypes.

    Returns
    -------
    Tensor, shape (N, 1, H, W)
        Detached attribution map, on the inputs' device.

    Raises
    ------
    ValueError
        For an unknown method (the message lists the valid ones), a missing or unknown
        layer, or a target outside ``[0, num_classes)``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods are {sorted(METHODS)}.")
    check_images(inputs)
    if noise_tunnel is not None and noise_tunnel not in _NT_TYPES:
        raise ValueError(
            f"noise_tunnel must be one of {list(_NT_TYPES)} or None, got {noise_tunnel!r}."
        )
    if noise_tunnel is not None and method in ("cam", "random", "prototype", "prototype_box"):
        raise ValueError(f"noise_tunnel applies to captum methods only, not to {method!r}.")
    if method in _LAYER_METHODS:
        resolve_layer(model, layer, method=method)
    size = tuple(inputs.shape[-2:])

    if method in ("prototype", "prototype_box"):
        return prototype_attribution(
            model, inputs, target, mode="box" if method == "prototype_box" else "map", **kwargs
        )
    if method == "cam":
        return cam(model, inputs, target, layer=layer, interpolate_mode=interpolate_mode, **kwargs)

    warn_if_training(model)
    t = resolve_target(model, inputs, target)
    if method == "random":
        g = torch.Generator().manual_seed(seed)
        return torch.rand(inputs.shape[0], 1, *size, generator=g).to(inputs.device, inputs.dtype)

    captum_attr = import_captum_attr()
    work = without_inplace(model) if method in _HOOKING else model
    call: dict[str, Any] = {"target": t}
    if method == "smoothgrad":
        algo = captum_attr.Saliency(work)
        noise_tunnel = noise_tunnel or "smoothgrad"
    elif method == "saliency":
        algo = captum_attr.Saliency(work)
    elif method == "input_x_gradient":
        algo = captum_attr.InputXGradient(work)
    elif method == "integrated_gradients":
        algo = captum_attr.IntegratedGradients(work)
        call["baselines"] = 0.0 if baselines is None else baselines
    elif method == "gradient_shap":
        algo = captum_attr.GradientShap(work)
        if baselines is None:
            g = torch.Generator().manual_seed(seed)
            noise = torch.randn(4, *inputs.shape[1:], generator=g).to(inputs.device, inputs.dtype)
            baselines = torch.cat([torch.zeros_like(inputs[:1]), noise * inputs.std()])
        call["baselines"] = baselines
    elif method == "occlusion":
        algo = captum_attr.Occlusion(work)
        k = max(1, min(size) // 8)
        c = inputs.shape[1]
        call["sliding_window_shapes"] = (c, k, k)
        call["strides"] = (c, max(1, k // 2), max(1, k // 2))
        call["baselines"] = 0.0 if baselines is None else baselines
        call["perturbations_per_eval"] = 16
    elif method == "guided_backprop":
        algo = captum_attr.GuidedBackprop(work)
    elif method == "deconvolution":
        algo = captum_attr.Deconvolution(work)
    elif method == "guided_grad_cam":
        algo = captum_attr.GuidedGradCam(work, _same_layer(model, work, layer))
        call["interpolate_mode"] = interpolate_mode
    else:  # grad_cam
        algo = captum_attr.LayerGradCam(work, _same_layer(model, work, layer))
        call["relu_attributions"] = kwargs.pop("relu", True)
    call.update(kwargs)

    # A leaf that requires grad keeps captum from warning that it had to set the flag.
    x = inputs.detach().requires_grad_(method != "occlusion")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        if noise_tunnel is not None:
            sd = _default_stdev(inputs) if stdevs is None else stdevs
            attr = captum_attr.NoiseTunnel(algo).attribute(
                x, nt_type=noise_tunnel, nt_samples=nt_samples, stdevs=sd, **call
            )
        else:
            attr = algo.attribute(x, **call)
    attr = attr.detach()
    if method == "grad_cam":
        return upsample(attr, size, interpolate_mode)
    return reduce_channels(attr, reduce)
