"""Networks: the architectures of interp_lib, one model builder and one weight loader.

Every network the library builds lives here, and every network declares its stages
(:class:`FeatureInfo`, in the spirit of timm's ``feature_info``: the module, channels and
total stride of each stage's output).

=====================================  =================================================
:func:`small_cnn`                      the small VGG-style trunk (ProtoPNet's default)
:class:`Trunk`, :func:`trunk_info`     a feature extractor that declares its geometry
:class:`FeatureInfo`                   channels and reduction per stage
:func:`build_backbone`                 a trunk by name: small CNN, VGG, ResNet, DenseNet
:func:`cnn_classifier`                 VGG-style classifier of the ID chapters
:func:`residual_classifier`            its ResNet-like counterpart
:func:`pooled_classifier`              trunk -> global pool -> linear head
:func:`build`                          a network from a torchvision name or
                                       ``module:factory``, with optional weights
:func:`load_weights`                   a state-dict file (or dict) into a model, exact fit
:func:`read_weights`                   the state dict in a file (``weights_only=True``)
:func:`resolve_weights`                a path, or a torchvision weight name in the hub cache
:func:`resettable_layers`              the layers that can draw fresh weights, top-down
=====================================  =================================================

Training lives in :mod:`interp_lib.models` (``train_classifier``, ``accuracy``); the
ProtoPNet model and its warm start in :mod:`interp_lib.protopnet`.
"""

from .backbones import (
    SMALL_CNN_LIMITS,
    TORCHVISION_INFO,
    available_backbones,
    build_backbone,
    check_backbone_kwargs,
)
from .classifiers import (
    ImageCentering,
    ResidualBlock,
    cnn_classifier,
    pooled_classifier,
    residual_classifier,
)
from .factory import build
from .trunks import (
    FeatureInfo,
    FeatureStage,
    Trunk,
    TrunkInfo,
    infer_out_channels,
    small_cnn,
    trunk_info,
)
from .weights import load_weights, read_weights, resettable_layers, resolve_weights

__all__ = [
    "SMALL_CNN_LIMITS",
    "TORCHVISION_INFO",
    "FeatureInfo",
    "FeatureStage",
    "ImageCentering",
    "ResidualBlock",
    "Trunk",
    "TrunkInfo",
    "available_backbones",
    "build",
    "build_backbone",
    "check_backbone_kwargs",
    "cnn_classifier",
    "infer_out_channels",
    "load_weights",
    "pooled_classifier",
    "read_weights",
    "resettable_layers",
    "residual_classifier",
    "resolve_weights",
    "small_cnn",
    "trunk_info",
]
