"""Trunks by name: the small CPU-friendly CNN and torchvision's VGG, ResNet and DenseNet.

Every trunk maps images ``(N, 3, H, W)`` to a feature map ``(N, C, H', W')`` and declares
its geometry (:class:`~interp_lib.networks.Trunk`: ``out_channels = C``, ``reduction``,
``in_channels`` and the per-stage ``feature_info``); torchvision trunks take their output
geometry from the table :data:`TORCHVISION_INFO`. ProtoPNet builds its trunk here, and so
does its warm start. torchvision trunks are built with random weights unless you pass
``weights=``: a local state-dict file, or the name of a torchvision weight enum
(``"IMAGENET1K_V1"``, ``"DEFAULT"``) whose file is already in the torch hub cache.
Nothing is ever downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from torch import nn

from .trunks import FeatureStage, Trunk, small_cnn
from .weights import WeightsLike, load_weights, read_weights, resolve_weights

__all__ = [
    "SMALL_CNN_LIMITS",
    "TORCHVISION_INFO",
    "available_backbones",
    "build_backbone",
    "check_backbone_kwargs",
]

_VGG = tuple(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn"))  # vgg11 ... vgg19_bn
_RESNET = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
_DENSENET = ("densenet121", "densenet161", "densenet169", "densenet201")

#: ``(out_channels, reduction)`` of the torchvision trunks (as timm's ``feature_info``):
#: VGG's ``features`` (five max-pools), ResNet up to ``layer4``, DenseNet's ``features``.
TORCHVISION_INFO: dict[str, tuple[int, int]] = {
    **{name: (512, 32) for name in _VGG},
    "resnet18": (512, 32),
    "resnet34": (512, 32),
    "resnet50": (2048, 32),
    "resnet101": (2048, 32),
    "resnet152": (2048, 32),
    "densenet121": (1024, 32),
    "densenet161": (2208, 32),
    "densenet169": (1664, 32),
    "densenet201": (1920, 32),
}


def available_backbones() -> tuple[str, ...]:
    """Names understood by :func:`build_backbone`."""
    return ("small_cnn", *_VGG, *_RESNET, *_DENSENET)


def _stages(layers: OrderedDict[str, nn.Module], arch: str) -> list[FeatureStage]:
    """The stages of a torchvision trunk: VGG's max-pools, ResNet's ``layer1..4``,
    DenseNet's dense blocks (the last one through ``norm5`` and the ReLU)."""
    if arch in _VGG:
        stages, channels = [], 3
        for name, layer in layers.items():
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
            elif isinstance(layer, nn.MaxPool2d):
                stages.append(FeatureStage(name, channels, 2 ** (len(stages) + 1)))
        return stages
    if arch in _RESNET:
        return [
            FeatureStage(f"layer{i}", _last_channels(layers[f"layer{i}"]), 2 ** (i + 1))
            for i in range(1, 5)
        ]
    features = layers["features"]
    stages = [
        FeatureStage(
            f"features.denseblock{i}",
            features.get_submodule(f"transition{i}.norm").num_features,
            2 ** (i + 1),
        )
        for i in range(1, 4)
    ]
    return [*stages, FeatureStage("relu", features.norm5.num_features, 32)]


def _last_channels(module: nn.Module) -> int:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


def _torchvision_trunk(arch: str, net: nn.Module) -> Trunk:
    channels, reduction = TORCHVISION_INFO[arch]
    if arch in _VGG:
        layers = OrderedDict((str(i), m) for i, m in enumerate(net.features))
    elif arch in _RESNET:
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        layers = OrderedDict((n, getattr(net, n)) for n in names)
    else:
        layers = OrderedDict(features=net.features, relu=nn.ReLU(inplace=True))
    return Trunk(
        layers,
        out_channels=channels,
        reduction=reduction,
        in_channels=3,
        feature_info=_stages(layers, arch),
    )


#: Bounds of the small CNN's arguments (a config cannot build an unbounded trunk).
SMALL_CNN_LIMITS = {"stages": 32, "width": 1 << 16, "convs_per_stage": 64, "in_channels": 1 << 16}


def _bounded_int(value: Any, name: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ValueError(f"{name} must be an int in [1, {limit}], got {value!r}.")
    return value


def check_backbone_kwargs(name: str | None, kwargs: Any) -> dict[str, Any]:
    """Check the extra arguments of :func:`build_backbone` for the trunk ``name``.

    ``"small_cnn"`` takes ``in_channels``, ``widths`` (a non-empty list of at most 32
    ints in ``[1, 65536]``), ``convs_per_stage`` (``<= 64``), ``batch_norm`` and
    ``pool_last`` (bools). The torchvision trunks take none: their trunk is fixed by the
    architecture (``TORCHVISION_INFO``) and their classification head is dropped, so
    e.g. ``num_classes`` would only allocate a head that is thrown away. A custom module
    (``name=None``) takes none either.

    Returns
    -------
    dict
        The arguments (a copy).

    Raises
    ------
    TypeError
        If ``kwargs`` is not a dict with str keys.
    ValueError
        For an argument the trunk does not take, or a value out of its bounds.
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise TypeError(f"backbone_kwargs must be a dict with str keys, got {kwargs!r:.80}.")
    kwargs = dict(kwargs)
    allowed = {"in_channels", "widths", "convs_per_stage", "batch_norm", "pool_last"}
    if name != "small_cnn":
        allowed = set()
    extra = sorted(kwargs.keys() - allowed)
    if extra:
        what = "a custom trunk module" if name is None else repr(name)
        raise ValueError(
            f"backbone_kwargs {extra} are not arguments of {what}; it takes "
            f"{sorted(allowed) or 'none (the torchvision trunk is fixed by its name)'}."
        )
    lim = SMALL_CNN_LIMITS
    if "in_channels" in kwargs:
        _bounded_int(kwargs["in_channels"], "in_channels", lim["in_channels"])
    if "convs_per_stage" in kwargs:
        _bounded_int(kwargs["convs_per_stage"], "convs_per_stage", lim["convs_per_stage"])
    if "widths" in kwargs:
        widths = kwargs["widths"]
        if not isinstance(widths, (list, tuple)) or not 1 <= len(widths) <= lim["stages"]:
            raise ValueError(
                f"widths must be a list of 1 to {lim['stages']} ints, got {widths!r:.80}."
            )
        for w in widths:
            _bounded_int(w, "each of widths", lim["width"])
    for key in ("batch_norm", "pool_last"):
        if key in kwargs and not isinstance(kwargs[key], bool):
            raise ValueError(f"{key} must be a bool, got {kwargs[key]!r}.")
    return kwargs


def build_backbone(name: str, *, weights: WeightsLike = None, **kwargs) -> Trunk:
    """Build a trunk by name.

    Parameters
    ----------
    name : str
        ``"small_cnn"`` (keyword arguments go to :func:`small_cnn`, checked by
        ``check_backbone_kwargs``), ``"vgg11"`` ...
        ``"vgg19_bn"``, ``"resnet18"`` ... ``"resnet152"``, ``"densenet121"`` ...
        ``"densenet201"``.
    weights : str or path, optional
        torchvision trunks only. A path to a state dict of the full torchvision model or
        of the trunk (loaded with ``weights_only=True``), or a torchvision weight name
        such as ``"IMAGENET1K_V1"`` / ``"DEFAULT"`` whose file is already cached in
        ``torch.hub.get_dir()/checkpoints``. ``None`` (default) keeps random weights.

    Returns
    -------
    Trunk
    """
    if not isinstance(name, str):
        raise TypeError(f"backbone name must be a str, got {type(name).__name__}.")
    if name in available_backbones():
        kwargs = check_backbone_kwargs(name, kwargs)
    if name == "small_cnn":
        trunk = small_cnn(**kwargs)
        return trunk if weights is None else load_weights(trunk, resolve_weights(weights))
    if name not in available_backbones():
        raise ValueError(
            f"unknown backbone {name!r}; choose one of {list(available_backbones())} or "
            "pass your own nn.Module trunk."
        )
    import torchvision.models as tvm

    net = getattr(tvm, name)(weights=None, **kwargs)
    trunk = _torchvision_trunk(name, net)
    if weights is not None:
        state = read_weights(resolve_weights(weights, name))
        try:
            load_weights(net, state)
        except ValueError as full_error:
            try:
                load_weights(trunk, state)
            except ValueError:
                raise ValueError(
                    f"the weights do not fit {name}, neither the full torchvision model "
                    f"nor its trunk: {full_error}"
                ) from None
    return trunk
