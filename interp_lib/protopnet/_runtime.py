"""Plumbing for :func:`interp_lib.protopnet.fit`: process groups, sharded loaders, RNG state.

Nothing here knows about ProtoPNet's math.
"""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly trivial) process group."""

    enabled: bool
    rank: int = 0
    world_size: int = 1
    created_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> DistInfo:
    """Use the default process group if there is one; start one if ``torchrun`` set
    ``WORLD_SIZE > 1`` (backend ``nccl`` on CUDA, else ``gloo``); else run alone."""
    if not dist.is_available():
        return DistInfo(False)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # nccl collectives and all_gather_object use it
    created = False
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return DistInfo(False)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    world = dist.get_world_size()
    if world == 1:
        return DistInfo(False, created_group=created)
    return DistInfo(True, dist.get_rank(), world, created)


def _rebuild(loader: DataLoader, sampler) -> DataLoader:
    kw: dict[str, Any] = dict(
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
        persistent_workers=loader.persistent_workers,
    )
    if loader.num_workers > 0:
        kw["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, **kw)


def _check_rebuildable(loader: DataLoader, name: str) -> None:
    if loader.batch_size is None:
        raise ValueError(
            f"{name} uses a custom batch_sampler; under DistributedDataParallel fit needs "
            "a DataLoader with batch_size= (and shuffle= or a DistributedSampler)."
        )


def shard_train_loader(loader: DataLoader, info: DistInfo, seed: int) -> DataLoader:
    """Split a training loader across processes with a :class:`DistributedSampler`.

    ``loader.batch_size`` is the per-process batch; the global batch is
    ``batch_size * world_size``. A loader that already has a ``DistributedSampler`` is
    used as it is.
    """
    if not info.enabled or isinstance(loader.sampler, DistributedSampler):
        return loader
    _check_rebuildable(loader, "train_loader")
    if isinstance(loader.sampler, RandomSampler):
        shuffle = True
    elif isinstance(loader.sampler, SequentialSampler):
        shuffle = False
    else:
        raise ValueError(
            f"train_loader has a {type(loader.sampler).__name__}; under "
            "DistributedDataParallel pass shuffle=True/False or a DistributedSampler."
        )
    sampler = DistributedSampler(
        loader.dataset,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=loader.drop_last,
    )
    return _rebuild(loader, sampler)


class _StridedSampler(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, ...``: an exact partition, no padding."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_eval_loader(loader: DataLoader, info: DistInfo) -> DataLoader:
    """Split an evaluation loader exactly (no padded duplicates) across processes."""
    if not info.enabled:
        return loader
    _check_rebuildable(loader, "val_loader")
    sampler = _StridedSampler(len(loader.dataset), info.rank, info.world_size)
    return _rebuild(loader, sampler)


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a float64 CPU vector over processes (a no-op alone)."""
    if not info.enabled:
        return values
    backend = dist.get_backend()
    dev = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"
    t = values.to(dev)
    dist.all_reduce(t)
    return t.cpu()


# ------------------------------------------------------------------------------------ RNG
def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global generator users may rely on)
    torch.manual_seed(seed)


def _gen(obj) -> torch.Generator | None:
    g = getattr(obj, "generator", None)
    return g if isinstance(g, torch.Generator) else None


def get_rng_state(loader: DataLoader | None = None) -> dict[str, Any]:
    """Every RNG state a training run consumes, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if loader is not None:
        for name, obj in (("loader", loader), ("sampler", loader.sampler)):
            g = _gen(obj)
            if g is not None and g.device.type == "cpu":
                state[name] = g.get_state()
    return state


def set_rng_state(state: dict[str, Any], loader: DataLoader | None = None) -> None:
    """Restore what :func:`get_rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            warnings.warn(
                "the checkpoint's CUDA RNG states are for a different number of GPUs; "
                "not restored, so the resumed run will not repeat the original exactly.",
                stacklevel=3,
            )
    if loader is not None:
        for name, obj in (("loader", loader), ("sampler", loader.sampler)):
            g = _gen(obj)
            if g is not None and name in state:
                g.set_state(state[name])


@contextlib.contextmanager
def rng_untouched() -> Iterator[None]:
    """Run a block without moving the global generators: Python's, NumPy's and torch's
    (every initialised CUDA device) are restored as they were when it ends, however it
    ends. What the block draws (a loader's shuffle, augmentation or worker seeds) then
    never reaches what is drawn after it."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` alone)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
