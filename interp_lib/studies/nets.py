"""A small ResNet-like classifier, the residual counterpart of
:func:`interp_lib.models.cnn_classifier` for the ID experiments.

Ansuini et al. (2019) profile VGG and ResNet networks; the checkpoints of a ResNet are
its stem pool, its stages ``layer1`` ... and the global average pool before the last
linear layer. :func:`residual_classifier` keeps that layout (and those names), so
:func:`interp_lib.profile.layer_ids` finds the same checkpoints by default.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from .._validation import check_int

__all__ = ["ImageCentering", "ResidualBlock", "residual_classifier"]


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
        hidden representation, as in torchvision's ResNets) and ``out``.

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
    return nn.Sequential(layers)
