"""Data with known structure, all generated or shipped offline (nothing downloads)."""

from .manifolds import (  # noqa: E402
    MANIFOLDS,
    curved_manifold,
    gaussian,
    hypercube,
    make_manifold,
    periodic_distances,
    sphere,
    swiss_roll,
)
from ._base import TensorImageDataset, stratified_split, train_val_test_split
from .birds import PARTS, VARIANTS, bird_classes, birds, render_birds
from .digits import digits, digits_tensors
from .objects import make_object, render_object, rotating_objects
from .cub import CUB200, CUB_PART_NAMES
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
