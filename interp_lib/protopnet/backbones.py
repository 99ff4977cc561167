"""Convolutional trunks for ProtoPNet: a small CPU-friendly CNN and torchvision models.

Every trunk maps images ``(N, 3, H, W)`` to a feature map ``(N, C, H', W')`` and carries
``out_channels = C``. torchvision trunks are built with random weights unless you pass
``weights=``: a local state-dict file, or the name of a torchvision weight enum
(``"IMAGENET1K_V1"``, ``"DEFAULT"``) whose file is already in the torch hub cache.
Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

WeightsLike = str | os.PathLike | None

_VGG = tuple(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn"))  # vgg11 ... vgg19_bn
_RESNET = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
_DENSENET = ("densenet121", "densenet161", "densenet169", "densenet201")


class Trunk(nn.Sequential):
    """An ``nn.Sequential`` feature extractor that knows its number of output channels.

    Parameters
    ----------
    layers : OrderedDict or modules
        As for ``nn.Sequential``.
    out_channels : int
        Channels ``C`` of the output map.
    """

    def __init__(self, *layers, out_channels: int) -> None:
        super().__init__(*layers)
        self.out_channels = int(out_channels)


def small_cnn(
    in_channels: int = 3,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 1,
    batch_norm: bool = True,
) -> Trunk:
    """A small VGG-style CNN that trains in minutes on a CPU (the book's default).

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

    Returns
    -------
    Trunk
        Maps ``(N, in_channels, H, W)`` to ``(N, widths[-1], H / 2^S, W / 2^S)``.
    """
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
        layers[f"pool{stage}"] = nn.MaxPool2d(2)
    return Trunk(layers, out_channels=channels)


def available_backbones() -> tuple[str, ...]:
    """Names understood by :func:`build_backbone`."""
    return ("small_cnn", *_VGG, *_RESNET, *_DENSENET)


def _hub_file(arch: str, name: str) -> Path:
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    try:
        entry = enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(
            f"{arch} has no torchvision weights named {name!r}; choose one of "
            f"{[w.name for w in enum]} or pass a local state-dict path."
        ) from None
    filename = os.path.basename(urlparse(entry.url).path)
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"the {arch} weights {entry} are not in the torch hub cache ({path}). "
            "interp_lib never downloads: fetch the file yourself (e.g. "
            f"torchvision.models.{arch}(weights='{entry.name}') on a machine with "
            "internet) and copy it there, or pass weights=<path to a state dict>."
        )
    return path


def _load_weights(arch: str, weights: WeightsLike) -> dict[str, torch.Tensor]:
    text = os.fspath(weights)
    looks_like_path = os.sep in text or text.endswith((".pt", ".pth")) or os.path.exists(text)
    path = Path(text) if looks_like_path else _hub_file(arch, text)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__}).")
    if arch.startswith("densenet"):  # old torchvision key names, as torchvision does
        pattern = re.compile(
            r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\."
            r"(?:weight|bias|running_mean|running_var))$"
        )
        state = {
            (m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v for k, v in state.items()
        }
    return state


def _torchvision_trunk(arch: str, net: nn.Module) -> Trunk:
    if arch in _VGG:
        return Trunk(*net.features, out_channels=512)
    if arch in _RESNET:
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return Trunk(
            OrderedDict((n, getattr(net, n)) for n in names),
            out_channels=net.fc.in_features,
        )
    return Trunk(
        OrderedDict(features=net.features, relu=nn.ReLU(inplace=True)),
        out_channels=net.classifier.in_features,
    )


def build_backbone(name: str, *, weights: WeightsLike = None, **kwargs) -> Trunk:
    """Build a trunk by name.

    Parameters
    ----------
    name : str
        ``"small_cnn"`` (keyword arguments go to :func:`small_cnn`), ``"vgg11"`` ...
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
    if name == "small_cnn":
        if weights is not None:
            trunk = small_cnn(**kwargs)
            trunk.load_state_dict(_load_weights(name, weights))
            return trunk
        return small_cnn(**kwargs)
    if name not in available_backbones():
        raise ValueError(
            f"unknown backbone {name!r}; choose one of {list(available_backbones())} or "
            "pass your own nn.Module trunk."
        )
    import torchvision.models as tvm

    net = getattr(tvm, name)(weights=None, **kwargs)
    trunk = _torchvision_trunk(name, net)
    if weights is not None:
        state = _load_weights(name, weights)
        try:
            net.load_state_dict(state)
        except RuntimeError as full_error:
            try:
                trunk.load_state_dict(state)
            except RuntimeError:
                raise ValueError(
                    f"the weights do not fit {name}, neither the full torchvision model "
                    f"nor its trunk: {full_error}"
                ) from None
    return trunk


def infer_out_channels(module: nn.Module) -> int:
    """Output channels of a trunk: its ``out_channels`` attribute, else the channels of
    its last ``Conv2d`` or ``BatchNorm2d`` in registration order."""
    if hasattr(module, "out_channels") and isinstance(module.out_channels, int):
        return module.out_channels
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
