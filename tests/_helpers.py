"""Helpers shared by the test modules (not a test file): tiny models, labelled images,
one torch thread, threads at once, the CI rule for missing components, and the scripts
of ``bench/`` as modules.

Test modules import them as ``from _helpers import ...`` (``tests/`` is on ``sys.path``
under pytest's default rootdir-based import mode); ``conftest.py`` wraps some of them as
fixtures. Pytest discourages importing ``conftest`` itself, so nothing is imported from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

#: Markers of tests outside the fast suite besides ``slow``, which each implies
#: (:func:`mark_slow_kinds`; registered in ``pyproject.toml``, described in CONTRIBUTING).
IMPLY_SLOW = ("book", "fuzz", "distributed")

#: ``CI=true`` (set by CI services and ``.ci/run``'s environment): a test that needs a
#: missing component (the built book, Chromium, an optional package) fails instead of skipping.
IN_CI = os.environ.get("CI", "").lower() == "true"


def mark_slow_kinds(items) -> None:
    """Add ``slow`` to each collected item that carries a marker of :data:`IMPLY_SLOW`, so
    that ``-m "not slow"`` leaves out book, fuzz and distributed tests (``conftest.py``
    calls it before ``-m`` selects)."""
    for item in items:
        if any(item.get_closest_marker(m) for m in IMPLY_SLOW):
            item.add_marker(pytest.mark.slow)


def require(ok: bool, why: str) -> None:
    """Skip the test when ``ok`` is false (``why`` says what is missing and how to get it);
    fail it instead in CI (:data:`IN_CI`), where every component must be present. Also at
    module level (a whole module skipped; in CI a collection error)."""
    if not ok:
        if IN_CI:
            pytest.fail(f"{why} (required in CI)", pytrace=False)
        pytest.skip(why, allow_module_level=True)


def require_module(name: str) -> ModuleType:
    """:func:`pytest.importorskip` that fails in CI (:func:`require`): the imported module
    (every optional package the suite uses is in the ``test`` extra)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"{name} is not installed ({exc}); run `pip install -e '.[test]'`")


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


def single_thread() -> Iterator[None]:
    """Run the test on one torch thread, restored afterwards: tiny models run fastest so
    (two threads on a loaded 2-core machine spend most of their time waiting). A generator
    to wrap with :func:`pytest.fixture` at the scope a module needs."""
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


BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str, monkeypatch: pytest.MonkeyPatch | None = None) -> ModuleType:
    """The script ``bench/<name>.py`` imported as a module (``bench/`` is not a package).

    With ``monkeypatch``, ``bench/`` is on ``sys.path`` for the test, as when the script
    runs: needed by the scripts that import their siblings (``_common``, ``_load``,
    ``twonn``) at import time.
    """
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name.lstrip('_')}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Relative tolerance of floats against ``data/per_class_golden.json``, made on another
#: CPU (see ``tests/test_studies_per_class.py``).
GOLDEN_RTOL = 1e-4


def same_numbers(a, b, rtol: float = 0.0) -> bool:
    """Nested lists, tuples and dicts equal: NaN equal to NaN, floats within ``rtol``
    (relative; 0: bit for bit), everything else exactly."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(same_numbers(a[key], b[key], rtol) for key in a)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_numbers(u, v, rtol) for u, v in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, float) and isinstance(b, float) and rtol:
        return math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)
    return a == b
