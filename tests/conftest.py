"""Shared pytest configuration and fixtures (tiny ProtoPNets and labelled images)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset


def pytest_collection_modifyitems(config, items):
    # scikit-learn's array-API check only applies to estimators that declare
    # array_api_support; ours don't, and the check would be reported as skipped.
    kept = [i for i in items if "check_array_api_input" not in i.nodeid]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def tiny_protopnet(
    seed: int | None = 0,
    *,
    n_classes: int = 3,
    n_prototypes_per_class=2,
    prototype_dim: int = 6,
    image_size: int = 16,
    widths: tuple[int, ...] = (4, 8),
    **kwargs,
):
    """A ProtoPNet on a 2-stage small CNN (a 4x4 latent map at 16 px), built after
    ``torch.manual_seed(seed)`` (``None``: from the current global RNG state)."""
    from interp_lib.protopnet import ProtoPNet

    if seed is not None:
        torch.manual_seed(seed)
    backbone_kwargs = {"widths": widths, **kwargs.pop("backbone_kwargs", {})}
    return ProtoPNet(
        "small_cnn",
        n_classes=n_classes,
        n_prototypes_per_class=n_prototypes_per_class,
        prototype_dim=prototype_dim,
        image_size=image_size,
        backbone_kwargs=backbone_kwargs,
        **kwargs,
    )


def attribution_cnn(seed: int = 0) -> nn.Sequential:
    """The attribution tests' CNN on ``(N, 3, H, W)`` images, 4 classes, in eval mode, built
    after ``torch.manual_seed(seed)``: conv 3->6, ReLU, max-pool, conv 6->8 (layer ``"3"``),
    ReLU, global average pool, linear 8->4. In-place ReLUs on purpose: guided and hooking
    methods must cope without touching the model."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()  # fmt: skip


def labelled_images(
    n: int = 12, seed: int = 0, *, n_classes: int = 3, size: int = 16, labels=None
) -> TensorDataset:
    """``n`` uniform random images ``(n, 3, size, size)`` (generator seeded with ``seed``)
    with labels ``arange(n) % n_classes``, or all equal to ``labels``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    y = torch.arange(n) % n_classes if labels is None else torch.full((n,), labels)
    return TensorDataset(x, y)


def single_thread():
    """Run the test on one torch thread, restored afterwards: tiny models run fastest so
    (two threads on a loaded 2-core machine spend most of their time waiting)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_in_threads(work: Callable[[int], object], n: int) -> None:
    """Run ``work(0)``, ..., ``work(n - 1)`` in ``n`` threads at once and wait for all;
    fails the test with every exception a thread raised."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


#: ``pytestmark = pytest.mark.usefixtures("one_thread")`` opts a test module in.
one_thread = pytest.fixture(single_thread, name="one_thread")


@pytest.fixture
def make_protopnet() -> Callable:
    """Factory of tiny ProtoPNets: ``make_protopnet(seed=0, **overrides)``
    (see :func:`tiny_protopnet`)."""
    return tiny_protopnet


@pytest.fixture
def make_images() -> Callable:
    """Factory of labelled random images: ``make_images(n=12, seed=0, n_classes=3, ...)``
    (see :func:`labelled_images`)."""
    return labelled_images
