"""The registry of explanation methods: one small record per method.

Each :class:`interp_lib.baselines.Method` says what the method needs (a layer, a ProtoPNet, a model copy
without in-place operations, captum) and holds the function that computes its map.
:func:`interp_lib.baselines.attribute` validates the arguments once and calls that
function; ``METHODS`` and the tables of :func:`interp_lib.baselines.compare` are
derived from the registry, so a new method is one record here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._plumbing import resolve_target
from .._validation import make_generator
from . import _captum
from ._utils import layer_forward, model_logits, reduce_channels, warn_if_training
from .cam import cam, grad_cam_maps
from .prototype import prototype_attribution

__all__ = ["METHODS", "REGISTRY", "AttributionRequest", "Method", "get_method"]


@dataclass
class AttributionRequest:
    """Everything a method's ``compute`` function receives from :func:`interp_lib.baselines.attribute`.

    Attributes
    ----------
    method : str
        The method's name (for messages).
    model : nn.Module
        The model to explain: the user's, or its copy without in-place operations when
        the method asks for one (``Method.in_place_free``).
    inputs : Tensor, shape (N, C, H, W)
        Checked images.
    target : Any
        The target as the user gave it (``None``, an int, a sequence, a tensor);
        :meth:`classes` resolves it.
    layer : str or None
        Dotted name of the explained layer (layer methods only).
    baselines, reduce, interpolate_mode, noise_tunnel, nt_samples, stdevs, seed
        As in :func:`interp_lib.baselines.attribute` (``interpolate_mode=None``: the
        method's own default, see :meth:`resize_mode`).
    kwargs : dict
        Remaining keyword arguments, passed on to the method.
    """

    method: str
    model: nn.Module
    inputs: torch.Tensor
    target: Any
    layer: str | None = None
    baselines: torch.Tensor | float | None = None
    reduce: str = "sum"
    interpolate_mode: str | None = None
    noise_tunnel: str | None = None
    nt_samples: int = 10
    stdevs: float | None = None
    seed: int | torch.Generator | None = 0
    kwargs: dict[str, Any] = field(default_factory=dict)

    def resize_mode(self, default: str = "bilinear") -> str:
        """``interpolate_mode``, or the method's ``default`` when the user gave none."""
        return default if self.interpolate_mode is None else self.interpolate_mode

    def classes(self) -> torch.Tensor:
        """The class explained for each image, a long tensor ``(N,)`` (warns in train mode).

        For a layer method, the same forward pass checks that the layer's output is a
        feature map ``(N, C, h, w)``.
        """
        warn_if_training(self.model, stacklevel=5)
        if self.layer is None:
            logits = model_logits(self.model, self.inputs)
        else:
            logits, _ = layer_forward(self.model, self.inputs, self.layer, method=self.method)
        return resolve_target(self.model, self.inputs, self.target, logits=logits)


@dataclass(frozen=True)
class Method:
    """One explanation method of the registry.

    Attributes
    ----------
    name : str
        The ``method=`` of :func:`interp_lib.baselines.attribute`.
    description : str
        One line, with the reference.
    compute : callable ``(AttributionRequest) -> Tensor (N, 1, H, W)``
        Computes the detached map at input resolution.
    needs_layer : bool
        Explains a layer's feature map: ``layer=`` is required.
    needs_protopnet : bool
        Runs only on a :class:`~interp_lib.protopnet.ProtoPNet`.
    in_place_free : bool
        Hooks activations, so it runs on a copy of the model with in-place operations
        switched off (the user's model is never modified).
    captum : bool
        Wraps a captum algorithm: needs captum, and accepts ``noise_tunnel``.
    """

    name: str
    description: str
    compute: Callable[[AttributionRequest], torch.Tensor]
    needs_layer: bool = False
    needs_protopnet: bool = False
    in_place_free: bool = False
    captum: bool = False


# ------------------------------------------------------------------------ builders


def _captum_pixel(
    algorithm: str,
    options: Callable[[AttributionRequest], dict[str, Any]] | None = None,
    *,
    requires_grad: bool = True,
    noise_tunnel: str | None = None,
) -> Callable[[AttributionRequest], torch.Tensor]:
    """A ``compute`` for a captum pixel method: ``(N, C, H, W)`` attributions reduced
    over channels by ``reduce``.

    Parameters
    ----------
    algorithm : str
        Class name in ``captum.attr`` (``"Saliency"``, ``"Occlusion"``...).
    options : callable, optional
        Method-specific ``attribute`` arguments from the request (baselines, windows...),
        overridden by the user's ``kwargs``.
    noise_tunnel : str, optional
        Default ``NoiseTunnel`` type (SmoothGrad is saliency under a noise tunnel).
    """

    def compute(r: AttributionRequest) -> torch.Tensor:
        t = r.classes()
        algo = getattr(_captum.captum_attr(f"attribute(method={algorithm!r})"), algorithm)
        call = {"target": t, **(options(r) if options else {}), **r.kwargs}
        attr = _captum.run(
            algo(r.model), r.inputs, call, requires_grad=requires_grad,
            noise_tunnel=r.noise_tunnel or noise_tunnel, nt_samples=r.nt_samples,
            stdevs=r.stdevs,
        )  # fmt: skip
        return reduce_channels(attr, r.reduce)

    return compute


def _zero_baseline(r: AttributionRequest) -> dict[str, Any]:
    return {"baselines": 0.0 if r.baselines is None else r.baselines}


def _shap_baselines(r: AttributionRequest) -> dict[str, Any]:
    """Default: zeros plus 4 Gaussian images with the inputs' standard deviation."""
    baselines = r.baselines
    if baselines is None:
        x = r.inputs
        g = make_generator(r.seed)
        noise = torch.randn(4, *x.shape[1:], generator=g).to(x.device, x.dtype)
        baselines = torch.cat([torch.zeros_like(x[:1]), noise * x.std()])
    return {"baselines": baselines}


def _occlusion_windows(r: AttributionRequest) -> dict[str, Any]:
    """A (C, H/8, W/8) window, half-window strides, 16 windows per forward pass."""
    c, h, w = r.inputs.shape[1:]
    k = max(1, min(h, w) // 8)
    return {
        "sliding_window_shapes": (c, k, k),
        "strides": (c, max(1, k // 2), max(1, k // 2)),
        **_zero_baseline(r),
        "perturbations_per_eval": 16,
    }


def _guided_grad_cam(r: AttributionRequest) -> torch.Tensor:
    t = r.classes()
    attr_mod = _captum.captum_attr("attribute(method='guided_grad_cam')")
    algo = attr_mod.GuidedGradCam(r.model, r.model.get_submodule(r.layer))
    call = {"target": t, "interpolate_mode": r.resize_mode(), **r.kwargs}
    attr = _captum.run(
        algo, r.inputs, call, noise_tunnel=r.noise_tunnel, nt_samples=r.nt_samples,
        stdevs=r.stdevs,
    )  # fmt: skip
    return reduce_channels(attr, r.reduce)


def _grad_cam(r: AttributionRequest) -> torch.Tensor:
    kwargs = dict(r.kwargs)
    relu = kwargs.pop("relu", True)
    return grad_cam_maps(
        r.model, r.inputs, r.classes(), r.layer, relu=relu, upsample=True,
        interpolate_mode=r.resize_mode(), noise_tunnel=r.noise_tunnel, nt_samples=r.nt_samples, stdevs=r.stdevs, **kwargs,
    )  # fmt: skip


def _cam(r: AttributionRequest) -> torch.Tensor:
    return cam(
        r.model, r.inputs, r.target, layer=r.layer, interpolate_mode=r.resize_mode(),
        **r.kwargs,
    )  # fmt: skip


def _prototype(mode: str) -> Callable[[AttributionRequest], torch.Tensor]:
    def compute(r: AttributionRequest) -> torch.Tensor:
        return prototype_attribution(
            r.model, r.inputs, r.target, mode=mode,
            interpolate_mode=r.resize_mode("bicubic"), **r.kwargs,  # ProtoPNet's default
        )  # fmt: skip

    return compute


def _random(r: AttributionRequest) -> torch.Tensor:
    r.classes()  # validates the target like every other method
    x = r.inputs
    g = make_generator(r.seed)
    return torch.rand(x.shape[0], 1, *x.shape[-2:], generator=g).to(x.device, x.dtype)


# ------------------------------------------------------------------------ registry

_RECORDS = (
    Method("saliency", "absolute input gradient (Simonyan et al. 2014), captum Saliency",
           _captum_pixel("Saliency"), captum=True),
    Method("input_x_gradient", "input times gradient, captum InputXGradient",
           _captum_pixel("InputXGradient"), captum=True),
    Method("integrated_gradients",
           "integrated gradients (Sundararajan et al. 2017), baseline 0",
           _captum_pixel("IntegratedGradients", _zero_baseline), captum=True),
    Method("gradient_shap",
           "expected gradients over a baseline distribution, captum GradientShap",
           _captum_pixel("GradientShap", _shap_baselines), captum=True),
    Method("smoothgrad",
           "saliency averaged over noisy copies (Smilkov et al. 2017), NoiseTunnel",
           _captum_pixel("Saliency", noise_tunnel="smoothgrad"), captum=True),
    Method("occlusion", "drop in the logit when a sliding patch is set to the baseline",
           _captum_pixel("Occlusion", _occlusion_windows, requires_grad=False), captum=True),
    Method("guided_backprop", "guided backpropagation (Springenberg et al. 2015)",
           _captum_pixel("GuidedBackprop"), in_place_free=True, captum=True),
    Method("deconvolution", "deconvnet backward pass (Zeiler and Fergus 2014)",
           _captum_pixel("Deconvolution"), in_place_free=True, captum=True),
    Method("guided_grad_cam", "guided backprop times upsampled Grad-CAM (needs layer)",
           _guided_grad_cam, needs_layer=True, in_place_free=True, captum=True),
    Method("grad_cam",
           "Grad-CAM with ReLU (Selvaraju et al. 2017), upsampled (needs layer)",
           _grad_cam, needs_layer=True, in_place_free=True, captum=True),
    Method("cam",
           "class activation map of a GAP-linear network (Zhou et al. 2016; needs layer)",
           _cam, needs_layer=True),
    Method("prototype", "ProtoPNet similarity maps x similarity x last-layer weight",
           _prototype("map"), needs_protopnet=True),
    Method("prototype_box",
           "ProtoPNet 95th-percentile boxes x similarity x last-layer weight",
           _prototype("box"), needs_protopnet=True),
    Method("random", "uniform noise: the chance level for every metric", _random),
)  # fmt: skip

#: Every method of :func:`interp_lib.baselines.attribute`, by name.
REGISTRY: dict[str, Method] = {m.name: m for m in _RECORDS}

#: Every ``method`` accepted by :func:`interp_lib.baselines.attribute`, with a one-line
#: description (derived from :data:`REGISTRY`).
METHODS: dict[str, str] = {m.name: m.description for m in _RECORDS}


def get_method(name: Any) -> Method:
    """The record of method ``name``; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid methods are {sorted(REGISTRY)}.")
    return REGISTRY[name]
