"""Receptive-field arithmetic: which image pixels a latent location can see.

For a layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` applied to a
map described by ``(n, jump, size, start)``::

    n_out     = floor((n + 2p - d (k - 1) - 1) / s) + 1
    jump_out  = jump * s
    size_out  = size + d (k - 1) jump
    start_out = start + (d (k - 1) / 2 - p) jump

starting from the image ``(image_size, 1, 1, 0.5)`` (pixel centres at 0.5, 1.5, ...).
VGG-19 at 224 px ends at ``(n=7, jump=32, size=268, start=16)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn


class ReceptiveField(NamedTuple):
    """Geometry of a feature map relative to the input image.

    Attributes
    ----------
    n : int
        Spatial size of the (square) map.
    jump : float
        Distance in pixels between the centres of neighbouring locations.
    size : float
        Side of the receptive field in pixels.
    start : float
        Pixel coordinate of the centre of location 0.
    """

    n: int
    jump: float
    size: float
    start: float


class UnsupportedLayerError(ValueError):
    """A layer whose geometry receptive-field arithmetic cannot describe."""


def _square(value, what: str, layer: str) -> int:
    if isinstance(value, str):
        raise UnsupportedLayerError(
            f"{layer} uses padding={value!r}; receptive-field arithmetic needs an integer "
            "padding. Replace it by the equivalent number of pixels."
        )
    if isinstance(value, tuple | list):
        if len(set(value)) != 1:
            raise UnsupportedLayerError(
                f"{layer} has a non-square {what} {tuple(value)}; only square kernels, "
                "strides and paddings are supported by receptive-field arithmetic."
            )
        value = value[0]
    return int(value)


def layer_receptive_field(
    rf: ReceptiveField,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> ReceptiveField:
    """Apply one convolution or pooling layer to a receptive field (formulas above)."""
    span = dilation * (kernel - 1)
    steps = (rf.n + 2 * padding - span - 1) / stride
    n_out = (math.ceil(steps) if ceil_mode else math.floor(steps)) + 1
    if n_out < 1:
        raise ValueError(
            f"a layer with kernel {kernel}, stride {stride}, padding {padding} maps a "
            f"{rf.n}-pixel map to nothing; use larger images."
        )
    return ReceptiveField(
        n=n_out,
        jump=rf.jump * stride,
        size=rf.size + span * rf.jump,
        start=rf.start + (span / 2 - padding) * rf.jump,
    )


def image_receptive_field(image_size: int) -> ReceptiveField:
    """The receptive field of the input image itself: ``(image_size, 1, 1, 0.5)``."""
    return ReceptiveField(n=int(image_size), jump=1.0, size=1.0, start=0.5)


_SKIP = ("downsample", "shortcut")


def module_receptive_field(module: nn.Module, image_size: int | ReceptiveField) -> ReceptiveField:
    """Receptive field of the output of ``module`` at a given input size.

    Walks every ``Conv2d``, ``MaxPool2d`` and ``AvgPool2d`` in registration order (the
    order of the forward pass in torchvision models and ``nn.Sequential`` trunks),
    skipping residual shortcut branches (submodules named ``downsample`` or
    ``shortcut``). Along a residual network this follows the main path, and along a
    DenseNet block the chain through all its layers: the largest receptive field,
    as in the original ProtoPNet.

    Parameters
    ----------
    module : nn.Module
    image_size : int or ReceptiveField
        Input side in pixels, or the receptive field of the input.

    Returns
    -------
    ReceptiveField
    """
    rf = image_size if isinstance(image_size, ReceptiveField) else image_receptive_field(image_size)
    for name, layer in module.named_modules():
        if any(part in _SKIP for part in name.split(".")):
            continue
        if isinstance(layer, nn.Conv2d):
            rf = layer_receptive_field(
                rf,
                _square(layer.kernel_size, "kernel", name),
                _square(layer.stride, "stride", name),
                _square(layer.padding, "padding", name),
                _square(layer.dilation, "dilation", name),
            )
        elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
            stride = layer.stride if layer.stride is not None else layer.kernel_size
            dilation = getattr(layer, "dilation", 1)
            rf = layer_receptive_field(
                rf,
                _square(layer.kernel_size, "kernel", name),
                _square(stride, "stride", name),
                _square(layer.padding, "padding", name),
                _square(dilation, "dilation", name),
                ceil_mode=bool(layer.ceil_mode),
            )
        elif isinstance(layer, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            raise UnsupportedLayerError(
                f"{name} is an adaptive pooling layer, which has no fixed receptive "
                "field; remove it from the trunk (ProtoPNet needs a spatial map)."
            )
    return rf


def map_side(module: nn.Module, side: int) -> int | None:
    """Side of the feature map that ``module`` gives for an input side of ``side`` pixels,
    by receptive-field arithmetic; ``None`` when a layer has no fixed geometry.

    Raises
    ------
    ValueError
        If the input is too small: some layer would output an empty map.
    """
    try:
        return module_receptive_field(module, side).n
    except UnsupportedLayerError:
        return None


def receptive_field_box(
    rf: ReceptiveField, location: torch.Tensor, image_size: int | tuple[int, int]
) -> torch.Tensor:
    """Image-space box of the receptive field at latent locations.

    Parameters
    ----------
    rf : ReceptiveField
        Of the map the locations index.
    location : Tensor, shape (..., 2), long
        ``(h, w)`` locations.
    image_size : int or (int, int)
        Image height and width, to clip the box.

    Returns
    -------
    Tensor, shape (..., 4), long
        ``(x0, y0, x1, y1)`` with exclusive ends (the library's box format); the
        coordinates are the original code's: ``y0 = max(int(c - size / 2), 0)``,
        ``y1 = min(int(c + size / 2), H)`` with centre ``c = start + h * jump`` (and the
        same for ``x`` with ``w``), which the original stores as ``(y0, y1, x0, x1)``.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    centre = rf.start + location.double() * rf.jump
    lo = torch.trunc(centre - rf.size / 2).long()
    hi = torch.trunc(centre + rf.size / 2).long()
    return torch.stack(
        (
            lo[..., 1].clamp_min(0),
            lo[..., 0].clamp_min(0),
            hi[..., 1].clamp_max(width),
            hi[..., 0].clamp_max(height),
        ),
        dim=-1,
    )
