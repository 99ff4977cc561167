"""Trunks: convolutional feature extractors that declare their geometry.

A *trunk* maps images ``(N, C_in, H, W)`` to a feature map ``(N, C, H / r, W / r)``. Like
timm's ``feature_info``, our trunks declare their geometry instead of letting callers
guess it: :class:`Trunk` carries ``in_channels``, ``out_channels`` (``C``), ``reduction``
(``r``, the total stride) and a :class:`FeatureInfo`, the channels and reduction of the
output of each stage. :func:`trunk_info` reads these declarations and guesses
(:func:`infer_out_channels`) only for modules that declare nothing.

This module imports nothing else from ``interp_lib`` except input checks, so the
classifiers of the ID chapters and ProtoPNet can build on it without importing each other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from torch import nn

from .._validation import check_int

__all__ = [
    "FeatureInfo",
    "FeatureStage",
    "Trunk",
    "TrunkInfo",
    "infer_out_channels",
    "small_cnn",
    "trunk_info",
]


class FeatureStage(NamedTuple):
    """One stage of a network, as an entry of timm's ``feature_info``.

    Attributes
    ----------
    module : str
        Name (as in ``named_modules()``) of the module whose output is the stage's
        feature map, timm's ``module``.
    channels : int
        Channels of that feature map, timm's ``num_chs``.
    reduction : int
        Its total stride: an ``H x W`` image gives an ``H / reduction x W / reduction`` map.
    """

    module: str
    channels: int
    reduction: int


class FeatureInfo(tuple):
    """The stages of a network, shallow to deep, in the spirit of timm's ``FeatureInfo``.

    A tuple of :class:`FeatureStage`; :meth:`channels`, :meth:`reduction` and
    :meth:`module_name` read one field of every stage (or of stage ``idx``), as timm's
    methods of the same names do.

    Parameters
    ----------
    stages : iterable of FeatureStage or (module, channels, reduction)
        At least one; reductions may not decrease from one stage to the next.

    Examples
    --------
    >>> info = small_cnn(widths=(8, 16)).feature_info
    >>> info.channels(), info.reduction(), info.module_name()
    ([8, 16], [2, 4], ['pool1', 'pool2'])
    """

    def __new__(cls, stages: Iterable[FeatureStage | tuple[str, int, int]]) -> FeatureInfo:
        out = []
        for stage in stages:
            module, channels, reduction = stage
            if not isinstance(module, str):
                raise TypeError(f"a stage's module must be a str name, got {module!r}.")
            channels = check_int(channels, "a stage's channels")
            reduction = check_int(reduction, "a stage's reduction")
            out.append(FeatureStage(module, channels, reduction))
        if not out:
            raise ValueError("a FeatureInfo needs at least one stage, got none.")
        reductions = [s.reduction for s in out]
        if reductions != sorted(reductions):
            raise ValueError(f"stage reductions must not decrease, got {reductions}.")
        return super().__new__(cls, out)

    def _field(self, name: str, idx: int | None):
        return getattr(self[idx], name) if idx is not None else [getattr(s, name) for s in self]

    def channels(self, idx: int | None = None) -> int | list[int]:
        """Channels of stage ``idx`` (a negative index counts from the end), or of all."""
        return self._field("channels", idx)

    def reduction(self, idx: int | None = None) -> int | list[int]:
        """Total stride of stage ``idx``, or of all stages."""
        return self._field("reduction", idx)

    def module_name(self, idx: int | None = None) -> str | list[str]:
        """Module name of stage ``idx``, or of all stages."""
        return self._field("module", idx)

    def __repr__(self) -> str:
        return f"FeatureInfo({list(self)!r})"


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
    feature_info : FeatureInfo or sequence of (module, channels, reduction), optional
        The stages (module names relative to the trunk); the last one must be the output
        (``out_channels``, ``reduction``). ``None``: one stage, the last layer, when
        ``reduction`` is declared, else no stage information (``feature_info`` is
        ``None``).

    Attributes
    ----------
    out_channels, reduction, in_channels
        As given.
    feature_info : FeatureInfo or None
        The declared stages.
    """

    def __init__(
        self,
        *layers,
        out_channels: int,
        reduction: int | None = None,
        in_channels: int | None = None,
        feature_info: Iterable[FeatureStage | tuple[str, int, int]] | None = None,
    ) -> None:
        super().__init__(*layers)
        self.out_channels = int(out_channels)
        self.reduction = None if reduction is None else int(reduction)
        self.in_channels = None if in_channels is None else int(in_channels)
        if feature_info is None and self.reduction is not None and len(self):
            last = list(self._modules)[-1]
            feature_info = [(last, self.out_channels, self.reduction)]
        self.feature_info = None if feature_info is None else FeatureInfo(feature_info)
        info = self.feature_info
        if info is not None and (info.channels(-1), info.reduction(-1)) != (
            self.out_channels,
            self.reduction,
        ):
            raise ValueError(
                f"the last stage of feature_info has {info.channels(-1)} channels and "
                f"reduction {info.reduction(-1)}, but the trunk declares out_channels="
                f"{self.out_channels} and reduction={self.reduction}; they must agree."
            )


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
        ``out_channels = widths[-1]``, ``reduction = 2 ** len(widths)`` (one less power
        with ``pool_last=False``); ``feature_info`` has one stage per width, the output
        of its max-pool (of its last ReLU for a last stage without pool).
    """
    in_channels = check_int(in_channels, "in_channels")
    if not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty list of positive ints, got {widths}.")
    if convs_per_stage < 1:
        raise ValueError(f"convs_per_stage must be at least 1, got {convs_per_stage}.")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    stages: list[FeatureStage] = []
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
        stages.append(FeatureStage(list(layers)[-1], channels, 2 ** (len(stages) + 1)))
    pools = len(widths) - (0 if pool_last else 1)
    if not pool_last:  # the last stage keeps the stride of the one before
        stages[-1] = stages[-1]._replace(reduction=2**pools)
    return Trunk(
        layers,
        out_channels=channels,
        reduction=2**pools,
        in_channels=in_channels,
        feature_info=stages,
    )


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

    ``out_channels`` falls back to :func:`infer_out_channels`; ``in_channels`` to the
    ``in_channels`` of the first ``Conv2d`` in registration order (``None`` if there is
    none); ``reduction`` is ``None`` unless declared.
    """
    in_channels = _declared(module, "in_channels")
    if in_channels is None:
        first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        in_channels = None if first is None else first.in_channels
    return TrunkInfo(in_channels, infer_out_channels(module), _declared(module, "reduction"))
