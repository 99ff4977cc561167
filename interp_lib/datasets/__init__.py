"""Data with known structure, all generated or shipped offline (nothing downloads).

==============================  =====================================================
manifolds with a known ID       :func:`hypercube`, :func:`gaussian`, :func:`sphere`,
                                :func:`swiss_roll`, :func:`curved_manifold`,
                                :func:`periodic_distances`, :func:`make_manifold`
rotating objects (1-D poses)    :func:`rotating_objects`, :func:`make_object`,
                                :func:`render_object`
handwritten digits (sklearn)    :func:`digits`, :func:`digits_tensors`
luminance (MNIST*)              :func:`luminance_offset`, :func:`luminance_gradient`
procedural birds, part masks    :func:`birds`, :func:`bird_classes`, :func:`render_birds`,
                                :func:`crop_to_birds`
CUB-200-2011 (local folder)     :class:`CUB200`
MNIST, CIFAR-10, ImageFolder    :func:`mnist`, :func:`cifar10`, :func:`image_folder`
splits and containers           :class:`TensorImageDataset`, :func:`stratified_split`,
                                :func:`train_val_test_split`
==============================  =====================================================
"""

from ._base import TensorImageDataset, stratified_split, train_val_test_split
from .birds import PARTS, VARIANTS, bird_classes, birds, crop_to_birds, render_birds
from .cub import CUB200, CUB_PART_NAMES
from .digits import digits, digits_tensors
from .folders import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
    cifar10,
    image_folder,
    imagenet_transform,
    mnist,
)
from .luminance import GradientParameters, luminance_gradient, luminance_offset
from .manifolds import (
    MANIFOLDS,
    curved_manifold,
    gaussian,
    hypercube,
    make_manifold,
    periodic_distances,
    sphere,
    swiss_roll,
)
from .objects import make_object, render_object, rotating_objects

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CUB200",
    "CUB_PART_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MANIFOLDS",
    "MNIST_MEAN",
    "MNIST_STD",
    "PARTS",
    "VARIANTS",
    "GradientParameters",
    "TensorImageDataset",
    "bird_classes",
    "birds",
    "cifar10",
    "crop_to_birds",
    "curved_manifold",
    "digits",
    "digits_tensors",
    "gaussian",
    "hypercube",
    "image_folder",
    "imagenet_transform",
    "luminance_gradient",
    "luminance_offset",
    "make_manifold",
    "make_object",
    "mnist",
    "periodic_distances",
    "render_birds",
    "render_object",
    "rotating_objects",
    "sphere",
    "stratified_split",
    "swiss_roll",
    "train_val_test_split",
]
