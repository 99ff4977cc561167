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

The methods themselves are records of the registry :mod:`interp_lib.baselines.methods`;
this module validates the arguments once and dispatches.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._validation import check_choice, check_images, check_int
from . import _captum
from ._utils import (
    INTERPOLATE_MODES,
    REDUCTIONS,
    find_layer,
    without_inplace,
)
from .methods import METHODS, AttributionRequest, get_method

__all__ = ["METHODS", "attribute"]


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    method: str,
    layer: nn.Module | str | None = None,
    baselines: torch.Tensor | float | None = None,
    reduce: str = "sum",
    interpolate_mode: str | None = None,
    noise_tunnel: str | None = None,
    nt_samples: int = 10,
    stdevs: float | None = None,
    seed: int | torch.Generator | None = 0,
    **kwargs: Any,
) -> torch.Tensor:
    """Explain ``model``'s decision for ``target`` with ``method``.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits ``(N, K)`` (a ProtoPNet for the prototype methods).
        Put it in ``eval()`` mode first.
    inputs : Tensor, shape (N, C, H, W)
        Images, on the model's device (at least one; finite values).
    target : int, sequence of N ints, Tensor (N,), or None
        Class to explain; ``None`` takes the predicted class.
    method : str
        One of :data:`interp_lib.baselines.METHODS`.
    layer : nn.Module or str, optional
        The layer (or dotted name) for ``grad_cam``, ``guided_grad_cam`` and ``cam``; its
        output must be a feature map ``(N, C', h, w)``.
    baselines : Tensor or float, optional
        Reference input: for ``integrated_gradients`` and ``occlusion`` (default 0), and
        the baseline distribution ``(B, C, H, W)`` for ``gradient_shap`` (default: zeros
        plus 4 Gaussian images with the inputs' standard deviation).
    reduce : {"sum", "abs_sum", "max_abs", "l2"}
        How pixel methods collapse channels.
    interpolate_mode : {"bilinear", "bicubic", "nearest"}, optional
        How layer and prototype maps are resized to the input; default bilinear for the
        layer methods (keeps a rectified map >= 0) and bicubic for the prototype methods
        (as ProtoPNet draws its heat maps).
    noise_tunnel : {"smoothgrad", "smoothgrad_sq", "vargrad"}, optional
        Wrap a captum method in ``NoiseTunnel`` with ``nt_samples`` noisy copies of standard
        deviation ``stdevs`` (default 15 % of the inputs' range).
    seed : int, torch.Generator or None
        Randomness of ``method="random"`` and of the default ``gradient_shap`` baselines
        (``None``: fresh randomness).
    **kwargs
        Passed to the method: e.g. ``n_steps`` for integrated gradients,
        ``sliding_window_shapes``/``strides``/``perturbations_per_eval`` for occlusion
        (default: a (C, H/8, W/8) window, half-window strides, 16 windows per forward),
        ``relu`` for Grad-CAM, ``percentile`` for ``prototype_box``.

    Returns
    -------
    Tensor, shape (N, 1, H, W)
        Detached attribution map, on the inputs' device.

    Raises
    ------
    ValueError
        For an unknown method (the message lists the valid ones), an empty batch, a
        missing or unknown layer, a layer without a spatial output, or a target outside
        ``[0, n_classes)``.
    TypeError
        For inputs that are not a floating-point tensor, or a prototype method on a model
        that is not a ProtoPNet.
    ModuleNotFoundError
        For a captum method when captum is missing (``pip install "interp_lib[captum]"``).
    """
    spec = get_method(method)
    check_images(inputs, nonempty=True, finite=True)
    check_choice(noise_tunnel, "noise_tunnel", _captum.NT_TYPES, allow_none=True)
    if noise_tunnel is not None and not spec.captum:
        raise ValueError(f"noise_tunnel applies to captum methods only, not to {method!r}.")
    check_choice(reduce, "reduce", REDUCTIONS)
    if interpolate_mode is not None:
        check_choice(interpolate_mode, "interpolate_mode", INTERPOLATE_MODES)
    nt_samples = check_int(nt_samples, "nt_samples")
    name = find_layer(model, layer, method=method) if spec.needs_layer else None
    if spec.captum:
        _captum.captum_attr(f"attribute(method={method!r})")
    request = AttributionRequest(
        method=method,
        model=without_inplace(model) if spec.in_place_free else model,
        inputs=inputs, target=target, layer=name, baselines=baselines, reduce=reduce,
        interpolate_mode=interpolate_mode, noise_tunnel=noise_tunnel, nt_samples=nt_samples,
        stdevs=stdevs, seed=seed, kwargs=kwargs,
    )  # fmt: skip
    return spec.compute(request)
