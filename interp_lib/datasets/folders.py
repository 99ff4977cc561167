"""Thin loaders for real image sets a reader may have on disk (nothing downloads by default).

* :func:`mnist`, :func:`cifar10`: torchvision's datasets with ``download=False`` unless
  the reader asks; a missing folder raises a :class:`FileNotFoundError` that says where
  the files were looked for and that ``download=True`` fetches them.
* :func:`image_folder`: any ``root/<class>/<image>`` tree (e.g. ImageNet, a CUB crop)
  with the standard ImageNet preprocessing of :func:`imagenet_transform`.

The normalisation constants are exposed so that model code and figures can undo them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "cifar10",
    "image_folder",
    "imagenet_transform",
    "mnist",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def imagenet_transform(image_size: int = 224, *, train: bool = False, normalize: bool = True):
    """The usual ImageNet preprocessing, as a torchvision transform on PIL images.

    Parameters
    ----------
    image_size : int
        Output side in pixels.
    train : bool
        True: ``RandomResizedCrop(image_size)`` and a horizontal flip (augmentation). False:
        resize the short side to ``image_size * 256 / 224`` and centre-crop ``image_size``.
    normalize : bool
        Subtract ``IMAGENET_MEAN`` and divide by ``IMAGENET_STD`` after ``ToTensor``.

    Returns
    -------
    torchvision.transforms.Compose
        PIL image -> tensor of shape (3, image_size, image_size).
    """
    from torchvision import transforms as T

    if train:
        steps = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(round(image_size * 256 / 224)), T.CenterCrop(image_size)]
    steps.append(T.ToTensor())
    if normalize:
        steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return T.Compose(steps)


def image_folder(
    root: str | Path,
    *,
    image_size: int = 224,
    train: bool = False,
    transform: Callable | None = None,
):
    """Any ``root/<class_name>/<image>`` tree as a torchvision ``ImageFolder``.

    Parameters
    ----------
    root : str or Path
        Folder with one sub-folder per class (classes are sorted by name).
    image_size, train : int, bool
        Passed to :func:`imagenet_transform` when ``transform`` is None.
    transform : callable, optional
        Replaces the default ImageNet preprocessing.

    Returns
    -------
    torchvision.datasets.ImageFolder
        ``dataset[i] -> (image (3, image_size, image_size), label)``; ``classes``, ``class_to_idx``
        and ``samples`` as in torchvision.
    """
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {str(root)!r} does not exist. Expected root/<class>/<image> "
            "files, e.g. root/cat/001.jpg."
        )
    tf = transform if transform is not None else imagenet_transform(image_size, train=train)
    try:
        return ImageFolder(str(root), transform=tf)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"no images found under {str(root)!r} ({exc}). Expected one sub-folder per "
            "class holding .jpg/.png/... files, e.g. root/cat/001.jpg."
        ) from exc


def _torchvision_set(cls, name: str, root, train, download, transform, mean, std):
    from torchvision import transforms as T

    if transform is None:
        transform = T.Compose([T.ToTensor(), T.Normalize(mean, std)] if mean else [T.ToTensor()])
    folder = getattr(cls, "base_folder", cls.__name__)
    try:
        return cls(str(root), train=train, download=download, transform=transform)
    except RuntimeError as exc:
        if download or "download=True" not in str(exc):
            raise
        raise FileNotFoundError(
            f"{name} was not found under {str(Path(root) / folder)!r} (torchvision says: "
            f"{exc}). Pass download=True to fetch it (needs internet access), or set root "
            f"to the folder that already holds the '{folder}' directory."
        ) from None


def mnist(
    root: str | Path,
    *,
    train: bool = True,
    download: bool = False,
    transform: Callable | None = None,
    normalize: bool = False,
):
    """torchvision MNIST (28x28 grey digits); nothing downloads unless ``download=True``.

    Parameters
    ----------
    root : str or Path
        Folder that holds (or will hold) ``MNIST/raw``.
    train : bool
        Training (60000) or test (10000) images.
    download : bool
        Fetch the files if missing (needs internet).
    transform : callable, optional
        Replaces the default ``ToTensor`` (+ ``Normalize(MNIST_MEAN, MNIST_STD)`` when
        ``normalize``).
    normalize : bool
        Standardise with the usual MNIST constants.

    Returns
    -------
    torchvision.datasets.MNIST
        ``dataset[i] -> (image (1, 28, 28), label)``.
    """
    from torchvision.datasets import MNIST

    stats = (MNIST_MEAN, MNIST_STD) if normalize else (None, None)
    return _torchvision_set(MNIST, "MNIST", root, train, download, transform, *stats)


def cifar10(
    root: str | Path,
    *,
    train: bool = True,
    download: bool = False,
    transform: Callable | None = None,
    normalize: bool = False,
):
    """torchvision CIFAR-10 (32x32 colour); nothing downloads unless ``download=True``.

    Parameters as :func:`mnist`: ``root`` holds (or will hold) ``cifar-10-batches-py``;
    ``train`` picks the 50000 training or the 10000 test images; ``normalize`` uses
    ``CIFAR10_MEAN`` and ``CIFAR10_STD``.

    Returns
    -------
    torchvision.datasets.CIFAR10
        ``dataset[i] -> (image (3, 32, 32), label)``.
    """
    from torchvision.datasets import CIFAR10

    stats = (CIFAR10_MEAN, CIFAR10_STD) if normalize else (None, None)
    return _torchvision_set(CIFAR10, "CIFAR-10", root, train, download, transform, *stats)
