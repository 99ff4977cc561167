"""Neural-network building blocks shared by :mod:`interp_lib.models` and
:mod:`interp_lib.protopnet`.

A *trunk* maps images ``(N, C_in, H, W)`` to a feature map ``(N, C, H / r, W / r)``. Like
timm's ``feature_info``, our trunks declare their geometry instead of letting callers
guess it: :class:`Trunk` carries ``in_channels``, ``out_channels`` (``C``) and
``reduction`` (``r``, the total stride). :func:`trunk_info` reads these declarations and
guesses (:func:`interp_lib.nn.infer_out_channels`) only for modules that declare nothing.

This module imports nothing else from ``interp_lib`` except input checks, so both
subpackages can build on it without importing each other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from torch import nn

from ._validation import check_int

__all__ = ["Trunk", "TrunkInfo", "infer_out_channels", "small_cnn", "trunk_info"]


class TrunkInfo(NamedTuple):
    """Declared geometry of a trunk.

    Attributes
    ----------
    in_channels : int or None
        Image channels it expects (``None``: not declared and no convolution found).
    out_channels : int
        Channels ``C`` of its feature map.
    reduction : int or None
        Total stride ``r``: an ``H x W`` image gives an ``H / r x W / r`` map (``None``:
        not declared).
    """

    in_channels: int | None
    out_channels: int
    reduction: int | None


class Trunk(nn.Sequential):
    """An ``nn.Sequential`` feature extractor that declares its geometry.

    Parameters
    ----------
    layers : OrderedDict or modules
        As for ``nn.Sequential``.
    out_channels : int
        Channels ``C`` of the output map.
    reduction : int, optional
        Total stride of the trunk (``2 ** stages`` for :func:`small_cnn`, 32 for VGG,
        ResNet and DenseNet).
    in_channels : int, optional
        Image channels (3 for torchvision trunks).
    """

    def __init__(
        self,
        *layers,
        out_channels: int,
        reduction: int | None = None,
        in_channels: int | None = None,
    ) -> None:
        super().__init__(*layers)
        self.out_channels = int(out_channels)
        self.reduction = None if reduction is None else int(reduction)
        self.in_channels = None if in_channels is None else int(in_channels)


def small_cnn(
    in_channels: int = 3,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 1,
    batch_norm: bool = True,
    pool_last: bool = True,
) -> Trunk:
    """A small VGG-style CNN that trains in minutes on a CPU (the book's default trunk).

    Each stage is ``convs_per_stage`` x (Conv3x3, [BatchNorm], ReLU) then MaxPool2x2, so
    with the default three stages a 64-px image gives an 8x8 map with a 22-px receptive
    field per location.

    Parameters
    ----------
    in_channels : int
        Image channels.
    widths : sequence of int
        Output channels of each stage.
    convs_per_stage : int
        Convolutions per stage.
    batch_norm : bool
        Whether to put BatchNorm after every convolution.
    pool_last : bool
        Whether the last stage ends with its max-pool. ``False`` halves the trunk's
        stride (a 16 x 16 map with an 18-px receptive field per location at 64 px and
        three stages): a finer grid of patches for ProtoPNet at little extra cost.

    Returns
    -------
    Trunk
        Maps ``(N, in_channels, H, W)`` to ``(N, widths[-1], H / 2^S, W / 2^S)``;
        ``out_channels = widths[-1]``, ``reduction = 2 ** len(widths)``.
    """
    in_channels = check_int(in_channels, "in_channels")
    if not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty list of positive ints, got {widths}.")
    if convs_per_stage < 1:
        raise ValueError(f"convs_per_stage must be at least 1, got {convs_per_stage}.")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = in_channels
    for stage, width in enumerate(widths, start=1):
        for i in range(1, convs_per_stage + 1):
            tag = f"{stage}_{i}" if convs_per_stage > 1 else f"{stage}"
            layers[f"conv{tag}"] = nn.Conv2d(
                channels, int(width), 3, padding=1, bias=not batch_norm
            )
            if batch_norm:
                layers[f"bn{tag}"] = nn.BatchNorm2d(int(width))
            layers[f"relu{tag}"] = nn.ReLU(inplace=True)
            channels = int(width)
        if pool_last or stage < len(widths):
            layers[f"pool{stage}"] = nn.MaxPool2d(2)
    pools = len(widths) - (0 if pool_last else 1)
    return Trunk(layers, out_channels=channels, reduction=2**pools, in_channels=in_channels)


def infer_out_channels(module: nn.Module) -> int:
    """Output channels of a trunk: its integer ``out_channels`` attribute, else (a guess,
    the fallback for undeclared modules) the channels of its last ``Conv2d`` or
    ``BatchNorm2d`` in registration order.

    Raises
    ------
    ValueError
        If the module declares nothing and has no ``Conv2d`` or ``BatchNorm2d``.
    """
    declared = getattr(module, "out_channels", None)
    if isinstance(declared, int) and not isinstance(declared, bool):
        return declared
    channels = None
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.BatchNorm2d):
            channels = layer.num_features
    if channels is None:
        raise ValueError(
            "could not infer the output channels of the backbone (no Conv2d or "
            "BatchNorm2d found); give the module an integer `out_channels` attribute."
        )
    return channels


def _declared(module: nn.Module, name: str) -> int | None:
    value = getattr(module, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def trunk_info(module: nn.Module) -> TrunkInfo:
    """The geometry a trunk declares, with guesses only where it declares nothing.

    ``out_channels`` falls back to :func:`interp_lib.nn.infer_out_channels`; ``in_channels`` to the
    ``in_channels`` of the first ``Conv2d`` in registration order (``None`` if there is
    none); ``reduction`` is ``None`` unless declared.
    """
    in_channels = _declared(module, "in_channels")
    if in_channels is None:
        first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        in_channels = None if first is None else first.in_channels
    return TrunkInfo(in_channels, infer_out_channels(module), _declared(module, "reduction"))
