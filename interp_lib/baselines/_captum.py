"""The one place that runs a captum attribution (optionally inside ``NoiseTunnel``).

captum is an optional dependency (``pip install "interp_lib[captum]"``); it is imported
only when a captum method runs, through :func:`interp_lib._plumbing.require`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from .._plumbing import require

#: The ``nt_type`` values of captum's ``NoiseTunnel``.
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def captum_attr(feature: str) -> Any:
    """``captum.attr``, or a ``ModuleNotFoundError`` naming ``pip install "interp_lib[captum]"``."""
    return require("captum.attr", feature)


def default_stdev(inputs: torch.Tensor) -> float:
    """SmoothGrad's 15 % noise level: 0.15 x (max - min) of the inputs."""
    span = float(inputs.max() - inputs.min())
    return 0.15 * span if span > 0 else 0.15


def run(
    algo: Any,
    inputs: torch.Tensor,
    call: dict[str, Any],
    *,
    noise_tunnel: str | None,
    nt_samples: int,
    stdevs: float | None,
    requires_grad: bool = True,
) -> torch.Tensor:
    """``algo.attribute(inputs, **call)``, detached; wrapped in ``NoiseTunnel`` if asked.

    Parameters
    ----------
    algo : captum.attr.Attribution
        A constructed captum algorithm (e.g. ``Saliency(model)``).
    inputs : Tensor, shape (N, C, H, W)
    call : dict
        Keyword arguments of ``attribute`` (``target``, ``baselines``...).
    noise_tunnel, nt_samples, stdevs
        ``NoiseTunnel``'s ``nt_type`` (``None``: no noise tunnel), number of noisy copies
        and noise standard deviation (``None``: :func:`default_stdev`). Required: their
        defaults live in the public functions only.
    requires_grad : bool
        Hand captum a leaf that requires grad (so it does not warn that it set the flag);
        ``False`` for perturbation methods (occlusion).

    Returns
    -------
    Tensor
        captum's attribution, detached (shape as captum returns it).
    """
    x = inputs.detach().requires_grad_(requires_grad)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        if noise_tunnel is not None:
            sd = default_stdev(inputs) if stdevs is None else stdevs
            nt = captum_attr("NoiseTunnel").NoiseTunnel(algo)
            attr = nt.attribute(x, nt_type=noise_tunnel, nt_samples=nt_samples, stdevs=sd, **call)
        else:
            attr = algo.attribute(x, **call)
    return attr.detach()
