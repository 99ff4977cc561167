"""Classifiers of the experiments: VGG-style, ResNet-like and globally pooled.

The ID chapters train many small networks on CPU (different widths, depths, label noise,
training lengths). Their architectures follow the paper's checkpoints (Ansuini et al.,
2019): :func:`cnn_classifier` is a VGG-style convolutional trunk (conv blocks, each ending
in a max-pool), then fully connected layers, then the output; :func:`residual_classifier`
is its ResNet-like counterpart (stem pool, stages ``layer1`` ..., global average pool).
Layer names are stable (``features.pool1``, ``fc1``, ``layer2`` ...), so
:func:`interp_lib.profile.layer_ids` finds the paper's checkpoints by default, and every
classifier declares its stages in a ``feature_info`` attribute
(:class:`~interp_lib.networks.FeatureInfo`). :func:`pooled_classifier` puts a global pool
and a linear head on any trunk (ProtoPNet's warm start, the birds baseline CNN).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from .._validation import check_choice, check_int
from .trunks import FeatureInfo, FeatureStage, infer_out_channels, small_cnn

__all__ = [
    "ImageCentering",
    "ResidualBlock",
    "cnn_classifier",
    "pooled_classifier",
    "residual_classifier",
]

_POOLS = {"max": nn.AdaptiveMaxPool2d, "avg": nn.AdaptiveAvgPool2d}


def _prefixed(info: FeatureInfo | None, prefix: str) -> FeatureInfo | None:
    """A trunk's stages, named from the network that holds the trunk as ``prefix``."""
    if info is None:
        return None
    return FeatureInfo(s._replace(module=f"{prefix}.{s.module}") for s in info)


def cnn_classifier(
    n_classes: int,
    *,
    in_channels: int = 3,
    image_size: int = 32,
    widths: Sequence[int] = (16, 32, 64),
    convs_per_stage: int = 1,
    hidden: Sequence[int] = (128,),
    batch_norm: bool = False,
) -> nn.Sequential:
    """A VGG-style CNN: ``features`` (conv stages with max-pools), ``fc1..``, ``out``.

    Parameters
    ----------
    n_classes : int
    in_channels : int, default 3
    image_size : int, default 32
        Input height = width; must be divisible by ``2 ** len(widths)``.
    widths : sequence of int
        Channels of each convolutional stage (one max-pool per stage).
    convs_per_stage : int, default 1
    hidden : sequence of int
        Widths of the fully connected hidden layers (each followed by ReLU).
    batch_norm : bool, default False

    Returns
    -------
    torch.nn.Sequential
        Input ``(N, in_channels, image_size, image_size)``, output logits ``(N, n_classes)``.
        Its ``feature_info`` (:class:`~interp_lib.networks.FeatureInfo`) names the
        max-pool of every stage (``features.pool1`` ...).
    """
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    stages = len(widths)
    if image_size % (2**stages):
        raise ValueError(
            f"image_size={image_size} must be divisible by 2**{stages} (one pool per stage)."
        )
    trunk = small_cnn(in_channels, widths, convs_per_stage, batch_norm)
    side = image_size // 2**stages
    layers: OrderedDict[str, nn.Module] = OrderedDict(features=trunk, flatten=nn.Flatten())
    width = trunk.out_channels * side * side
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, int(h))
        layers[f"relu_fc{i}"] = nn.ReLU()
        width = int(h)
    layers["out"] = nn.Linear(width, n_classes)
    net = nn.Sequential(layers)
    net.feature_info = _prefixed(trunk.feature_info, "features")
    return net


def pooled_classifier(trunk: nn.Module, n_classes: int, pool: str = "max") -> nn.Sequential:
    """``trunk -> global max (or average) pool -> Flatten -> Linear(C, n_classes)``.

    Parameters
    ----------
    trunk : nn.Module
        Maps images ``(N, 3, H, W)`` to a feature map ``(N, C, H', W')``; ``C`` is the
        ``out_channels`` it declares (:class:`~interp_lib.networks.Trunk`), guessed from its
        last convolution / batch norm only if it declares nothing.
    n_classes : int
        ``K``.
    pool : {"max", "avg"}
        Global max pooling (default) or global average pooling (CAM's head).

    Returns
    -------
    nn.Sequential
        Modules ``features`` (the same ``trunk`` object, not a copy), ``pool``,
        ``flatten``, ``head``; maps images to logits ``(N, K)``. Its ``feature_info`` is
        the trunk's (under ``features.``), ``None`` if the trunk declares none.
    """
    if not isinstance(trunk, nn.Module):
        raise TypeError(f"trunk must be an nn.Module, got {type(trunk).__name__}.")
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    check_choice(pool, "pool", tuple(_POOLS))
    channels = infer_out_channels(trunk)
    net = nn.Sequential(
        OrderedDict(
            features=trunk,
            pool=_POOLS[pool](1),
            flatten=nn.Flatten(),
            head=nn.Linear(channels, n_classes),
        )
    )
    net.feature_info = _prefixed(getattr(trunk, "feature_info", None), "features")
    return net


class ImageCentering(nn.Module):
    """Subtract each image's mean over channels and pixels: ``x - x.mean((1, 2, 3))``.

    A parameter-free first layer that makes a network exactly invariant to a constant
    brightness offset per image, the nuisance of MNIST* (see
    :func:`interp_lib.datasets.luminance_offset`). Input and output ``(N, C, H, W)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``, every image with mean 0."""
        return x - x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity (or 1x1) shortcut.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int, default 1
        Stride of the first convolution (2 halves the side).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W)`` -> ``(N, out_channels, H / stride, W / stride)``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def residual_classifier(
    n_classes: int,
    *,
    in_channels: int = 3,
    image_size: int = 32,
    widths: Sequence[int] = (16, 32, 64),
    blocks_per_stage: int = 1,
) -> nn.Sequential:
    """A ResNet-like CNN: ``stem`` (conv, BN, ReLU, max-pool), ``layer1..``, ``avgpool``, ``out``.

    Parameters
    ----------
    n_classes : int
    in_channels : int, default 3
    image_size : int, default 32
        Input side; must be divisible by ``2 ** len(widths)`` (the stem pool halves it,
        every stage after the first halves it again).
    widths : sequence of int
        Channels of each stage; the stem has ``widths[0]``.
    blocks_per_stage : int, default 1
        :class:`ResidualBlock` s per stage (two convolutions each).

    Returns
    -------
    torch.nn.Sequential
        Input ``(N, in_channels, image_size, image_size)``, logits ``(N, n_classes)``.
        The default checkpoints are ``stem.pool``, ``layer1`` ..., ``avgpool`` (the last
        hidden representation, as in torchvision's ResNets) and ``out``. Its
        ``feature_info`` (:class:`~interp_lib.networks.FeatureInfo`) names ``stem.pool``
        and every stage ``layer1`` ....

    Examples
    --------
    >>> import torch
    >>> net = residual_classifier(4, image_size=16, widths=(8, 16))
    >>> net(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 4])
    """
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    in_channels = check_int(in_channels, "in_channels")
    image_size = check_int(image_size, "image_size")
    blocks_per_stage = check_int(blocks_per_stage, "blocks_per_stage")
    widths = [check_int(w, "widths[i]") for w in widths]
    if not widths:
        raise ValueError("widths must name at least one stage, got an empty sequence.")
    if image_size % (2 ** len(widths)):
        raise ValueError(
            f"image_size={image_size} must be divisible by 2**{len(widths)} "
            "(the stem and every stage after the first halve it)."
        )
    stem = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            bn=nn.BatchNorm2d(widths[0]),
            relu=nn.ReLU(),
            pool=nn.MaxPool2d(2),
        )
    )
    layers: OrderedDict[str, nn.Module] = OrderedDict(stem=stem)
    prev = widths[0]
    for s, w in enumerate(widths, start=1):
        blocks = [ResidualBlock(prev, w, stride=1 if s == 1 else 2)]
        blocks += [ResidualBlock(w, w) for _ in range(blocks_per_stage - 1)]
        layers[f"layer{s}"] = nn.Sequential(*blocks)
        prev = w
    layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["out"] = nn.Linear(prev, n_classes)
    net = nn.Sequential(layers)
    stages = [FeatureStage("stem.pool", widths[0], 2)]
    stages += [FeatureStage(f"layer{s}", w, 2**s) for s, w in enumerate(widths, start=1)]
    net.feature_info = FeatureInfo(stages)
    return net
