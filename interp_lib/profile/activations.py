"""Collect the activations of chosen layers over a data set: :func:`collect_activations`.

The model runs in eval mode without grad. Each hooked output is flattened (or, on
request, averaged over its spatial positions), cast to the storage dtype and copied
straight into a preallocated ``(n_samples, features)`` buffer inside the hook, so
in-place operations later in the pass cannot corrupt it and no per-batch lists are kept.

Memory plan: a dry run on one sample gives every layer's width. With a ``max_bytes``
budget the layers are split, in execution order, into groups whose buffers fit, and the
forward pass is re-run once per group; a pass stops as soon as the group's last layer
has produced its output, so early groups cost only part of a forward pass.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .._plumbing import check_device, unpack_batch
from .._plumbing import progress as progress_bar
from .._validation import as_device, check_choice, check_int, check_module
from .capture import capture
from .checkpoints import checkpoints_from_trace
from .layers import INPUT, OUTPUT, LayerRef, resolve_layers
from .trace import trace_model

__all__ = ["ActivationCollector", "collect_activations"]

REDUCTIONS = ("flatten", "spatial_mean")
Layers = LayerRef | Sequence[LayerRef] | Mapping[LayerRef, str] | None


class _StopForward(Exception):
    """Raised by a hook once every layer of the current group has been recorded."""


def _batches(data: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """Input tensors ``x`` of shape (B, ...) from a tensor, dataset, loader or iterable."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        if data.ndim == 0:
            raise ValueError("data must have a batch dimension, got a 0-d tensor.")
        yield from data.split(batch_size)
        return
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    try:
        iterator = iter(data)
    except TypeError:
        raise TypeError(
            "data must be a tensor (N, ...), a Dataset, a DataLoader or an iterable of "
            f"batches, got {type(data).__name__}."
        ) from None
    for batch in iterator:
        yield unpack_batch(batch).x


def _size_of(data: Any) -> int | None:
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return len(data)
    dataset = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(dataset, Dataset) and not isinstance(dataset, IterableDataset):
        try:
            return len(dataset)
        except TypeError:
            return None
    return None


def batch_digest(x: torch.Tensor) -> tuple[tuple[int, ...], str]:
    """Shape and a hash of the bytes of a batch: equal only for bit-identical inputs.

    A flipped, cropped, jittered or reordered batch gets another digest (per-row sums,
    the previous check, are blind to flips and permutations of pixels).
    """
    raw = x.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy()
    return tuple(x.shape), hashlib.blake2b(raw, digest_size=16).hexdigest()


def _flatten(t: torch.Tensor, reduce: str) -> torch.Tensor:
    if reduce == "spatial_mean" and t.ndim > 2:
        if not t.is_floating_point():
            t = t.float()
        return t.flatten(2).mean(dim=2)
    return t.reshape(t.shape[0], -1)


def _check_float16(stored: torch.Tensor, flat: torch.Tensor, alias: str) -> None:
    """Finite activations must stay finite in float16 storage (its range ends at 65504)."""
    if not bool(torch.isfinite(stored).all()) and bool(torch.isfinite(flat).all()):
        big = float(flat.abs().max())
        raise ValueError(
            f"layer {alias!r} has activations up to {big:.3g}, beyond the range of float16 "
            f"(largest {torch.finfo(torch.float16).max:.0f}): they would be stored as "
            "infinity. Store them as dtype=torch.float32, or torch.bfloat16 for the same "
            "memory with float32's range."
        )


class ActivationCollector:
    """Plans and runs the passes of :func:`collect_activations` (same arguments).

    After construction (which runs the one-sample dry run), ``trace``,
    ``spec`` (``{name: alias}``), ``n_samples``, ``features``
    (``{name: columns}``) and ``groups`` (lists of names, one forward pass each) are
    known; :meth:`iter_groups` yields the activations group by group, so a caller can
    process and free one group before the next is computed.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        layers: Layers = None,
        n_samples: int | None = None,
        *,
        batch_size: int = 64,
        device: torch.device | str | None = None,
        storage_device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        reduce: str = "flatten",
        max_bytes: int | None = None,
        progress: bool = True,
    ) -> None:
        self.model = check_module(model)
        self.data = data
        self.batch_size = check_int(batch_size, "batch_size")
        self.reduce = check_choice(reduce, "reduce", REDUCTIONS)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}.")
        self.dtype = dtype
        self.device = check_device(model, device)
        self.storage_device = as_device(storage_device, "storage_device")
        self.progress = progress
        self.spec = resolve_layers(model, layers) if layers is not None else None
        self._pending = _batches(data, self.batch_size)
        first = next(self._pending, None)
        if first is None or len(first) == 0:
            raise ValueError("data is empty: it yielded no samples.")
        self._pending = itertools.chain([first], self._pending)
        #: per-sample shape and dtype of the inputs; every batch must match them
        self.sample_shape: tuple[int, ...] = tuple(first.shape[1:])
        self.input_dtype: torch.dtype = first.dtype
        self._first_batch = len(first)
        self.trace = trace_model(model, first[:1].to(self.device))
        if self.spec is None:
            names = checkpoints_from_trace(model, self.trace)
            self.spec = {name: name for name in names}
        missing = [n for n in self.spec if n != INPUT and not self.trace.ran(n)]
        if missing:
            raise ValueError(
                f"layers {missing} did not produce a tensor in a forward pass of the model "
                "(unused modules, or outputs that are not tensors)."
            )
        self.explicit_n = n_samples is not None
        if n_samples is None:
            n_samples = _size_of(data)
            if n_samples is None:
                raise ValueError(
                    "n_samples is needed when the size of data is unknown (an iterable or "
                    "IterableDataset); pass n_samples=..."
                )
        self.n_samples = check_int(n_samples, "n_samples")
        self.features = {n: self.trace.features(n, self.reduce) for n in self.spec}
        self.groups = self._plan(max_bytes)

    def nbytes(self, name: str) -> int:
        """Bytes of the ``(n_samples, features)`` buffer of one layer."""
        return self.n_samples * self.features[name] * self.dtype.itemsize

    def _plan(self, max_bytes: int | None) -> list[list[str]]:
        names = sorted(self.spec, key=self.trace.position)
        if max_bytes is None:
            return [names]
        max_bytes = check_int(max_bytes, "max_bytes")
        too_big = {n: self.nbytes(n) for n in names if self.nbytes(n) > max_bytes}
        if too_big:
            raise ValueError(
                f"max_bytes={max_bytes} cannot hold even one layer: {too_big} (bytes). "
                "Raise max_bytes, lower n_samples, store in dtype=torch.float16, or use "
                "reduce='spatial_mean'."
            )
        groups: list[list[str]] = []
        used = max_bytes + 1
        for name in names:
            size = self.nbytes(name)
            if used + size > max_bytes:
                groups.append([])
                used = 0
            groups[-1].append(name)
            used += size
        return groups

    def _passes(self) -> Iterator[torch.Tensor]:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        if not isinstance(self.data, (torch.Tensor, np.ndarray)) and iter(self.data) is self.data:
            raise ValueError(
                "data is a one-shot iterator, but the layers need several forward passes "
                f"({len(self.groups)} groups under max_bytes). Pass a tensor, Dataset or "
                "DataLoader, or raise max_bytes."
            )
        return _batches(self.data, self.batch_size)

    def iter_groups(self) -> Iterator[dict[str, torch.Tensor]]:
        """Yield ``{alias: (n, features)}`` for each group, running one forward pass each.

        ``n`` is ``n_samples``, or the size of the data when it is smaller and
        ``n_samples`` was not given.
        """
        digests: dict[int, tuple[tuple[int, ...], str]] = {}
        for index, group in enumerate(self.groups):
            yield self._run(index, group, digests)

    def collect(self) -> dict[str, torch.Tensor]:
        """All requested activations, ``{alias: (n, features)}`` in the requested order."""
        found: dict[str, torch.Tensor] = {}
        for part in self.iter_groups():
            found.update(part)
        return {alias: found[alias] for alias in self.spec.values()}

    def _check_batch(self, x: torch.Tensor, row: int) -> None:
        """Every batch has the per-sample shape and dtype of the first one."""
        if tuple(x.shape[1:]) != self.sample_shape or x.dtype != self.input_dtype:
            raise ValueError(
                f"the batch at row {row} holds inputs of shape {tuple(x.shape[1:])} and "
                f"dtype {x.dtype}, but the first batch had {self.sample_shape} and "
                f"{self.input_dtype}. All inputs must have the same size, channels and "
                "dtype: resize or convert them in the dataset's transform."
            )

    def _run(
        self, index: int, group: list[str], digests: dict[int, tuple[tuple[int, ...], str]]
    ) -> dict[str, torch.Tensor]:
        n = self.n_samples
        aliases = {name: self.spec[name] for name in group}
        widths = {aliases[name]: self.features[name] for name in group}
        buffers = {
            alias: torch.empty((n, width), dtype=self.dtype, device=self.storage_device)
            for alias, width in widths.items()
        }
        needed = {aliases[name]: self.trace.calls[name] for name in group}
        can_stop = OUTPUT not in group
        state = {"row": 0, "b": 0}
        counts = dict.fromkeys(buffers, 0)
        owner = threading.get_ident()

        def on_output(alias: str, tensor: torch.Tensor) -> None:
            if threading.get_ident() != owner:
                return  # the model called from another thread: not our batch
            row, b = state["row"], state["b"]
            if tensor.ndim == 0 or tensor.shape[0] != b:
                raise ValueError(
                    f"layer {alias!r} returned shape {tuple(tensor.shape)} for a batch of "
                    f"{b}; activations need the batch as their first dimension."
                )
            flat = _flatten(tensor, self.reduce)
            if flat.shape[1] != widths[alias]:
                raise ValueError(
                    f"layer {alias!r} has {flat.shape[1]} features in this batch but "
                    f"{widths[alias]} on the first sample; all inputs must have the same size."
                )
            stored = buffers[alias][row : row + b]
            stored.copy_(flat)
            if self.dtype == torch.float16:
                _check_float16(stored, flat, alias)
            counts[alias] += 1
            if can_stop and all(counts[a] >= needed[a] for a in counts):
                raise _StopForward

        check = len(self.groups) > 1
        bar = progress_bar(
            self._passes(),
            self.progress,
            f"activations {index + 1}/{len(self.groups)}",
            total=math.ceil(n / self._first_batch),
        )
        try:
            with torch.no_grad(), capture(self.model, aliases, on_output=on_output):
                for x in bar:
                    row = state["row"]
                    x = x[: n - row]
                    b = state["b"] = len(x)
                    if b == 0:
                        continue
                    self._check_batch(x, row)
                    if check:
                        self._check_same(x, row, index, digests)
                    counts.update(dict.fromkeys(counts, 0))
                    try:
                        self.model(x.to(self.device, non_blocking=True))
                    except _StopForward:
                        pass
                    silent = [a for a, c in counts.items() if c == 0]
                    if silent:
                        raise ValueError(f"layers {silent} did not run on batch at row {row}.")
                    state["row"] = row + b
                    if state["row"] >= n:
                        break
        finally:
            if hasattr(bar, "close"):
                bar.close()
        rows = state["row"]
        if rows < n:
            if self.explicit_n:
                raise ValueError(
                    f"data holds only {rows} samples but n_samples={n} were asked for; "
                    f"pass n_samples={rows} or more data."
                )
            buffers = {a: buf[:rows].clone() for a, buf in buffers.items()}
        return buffers

    @staticmethod
    def _check_same(
        x: torch.Tensor, row: int, index: int, digests: dict[int, tuple[tuple[int, ...], str]]
    ) -> None:
        """Later passes must see bit-identical inputs (no shuffling or augmentation)."""
        digest = batch_digest(x)
        if index == 0:
            digests[row] = digest
            return
        if digests.get(row) != digest:
            raise ValueError(
                "the data gave different inputs on a later forward pass (shuffle=True or "
                "random augmentation such as RandomHorizontalFlip or RandomCrop?): the "
                f"batch at row {row} differs from the first pass. The memory budget re-runs "
                "the data once per group of layers, so the loader must be deterministic: "
                "shuffle=False and fixed transforms (Resize + CenterCrop), or raise "
                "max_bytes so that one pass suffices."
            )


def collect_activations(
    model: nn.Module,
    data: torch.Tensor | Dataset | DataLoader | Iterable,
    layers: Layers = None,
    n_samples: int | None = None,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    storage_device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    reduce: str = "flatten",
    max_bytes: int | None = None,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Run ``model`` over ``data`` and return the flattened activations of chosen layers.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode under ``torch.no_grad()``; its ``training`` flags are restored.
    data : torch.Tensor (N, ...), Dataset, DataLoader or iterable of batches
        A batch is ``x`` or a tuple/list ``(x, y, ...)``; only ``x`` is used. A tensor or
        Dataset is cut into batches of ``batch_size``.
    layers : str, list of str or dict str -> str, optional
        Dotted module names (see :func:`list_layers`) or ``{name: alias}``, with the
        pseudo-layers ``"input"`` and ``"output"``. Default: the checkpoints of
        :func:`default_checkpoints`.
    n_samples : int, optional
        Exactly this many rows are returned, taken from the start of the data (the last
        batch is cut). Default: all of ``data`` (its size must be known).
    batch_size : int, default 64
        Used when ``data`` is a tensor or Dataset.
    device : torch.device or str, optional
        Where inputs are sent; default the device of the model's parameters.
    storage_device : torch.device or str, default "cpu"
        Where the activations are kept.
    dtype : torch.dtype, default torch.float32
        Storage type; ``torch.float16`` halves memory (values beyond 65504 overflow;
        ``torch.bfloat16`` keeps the range with less precision).
    reduce : {"flatten", "spatial_mean"}, default "flatten"
        ``"flatten"`` keeps all C*H*W values, the representation Ansuini et al. measure.
        ``"spatial_mean"`` averages feature maps over their spatial positions, keeping C
        values: far cheaper, but it measures the dimension of a **different**
        representation (channel summaries, blind to where things are) and its ID is not
        comparable with the paper's.
    max_bytes : int, optional
        Budget for the stored activations, in bytes (``n_samples * features *
        itemsize`` per layer; the forward pass's own working memory is not included).
        Layers that do not fit together are processed in groups, re-running the data once
        per group; the data must then give the same inputs on every pass (checked).
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    dict str -> torch.Tensor
        ``{alias: (n_samples, features)}`` in the requested order, on ``storage_device``.

    Raises
    ------
    TypeError
        ``model`` is not a module, bad batch or ``dtype``.
    ValueError
        Empty data, unknown layers (with suggestions), less data than ``n_samples``, a
        layer too large for ``max_bytes``, inputs that change between passes.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    >>> acts = collect_activations(net, torch.randn(10, 3, 2, 2), ["input", "2"],
    ...                            n_samples=7, batch_size=4, progress=False)
    >>> {k: tuple(v.shape) for k, v in acts.items()}
    {'input': (7, 12), '2': (7, 5)}
    """
    return ActivationCollector(
        model,
        data,
        layers,
        n_samples,
        batch_size=batch_size,
        device=device,
        storage_device=storage_device,
        dtype=dtype,
        reduce=reduce,
        max_bytes=max_bytes,
        progress=progress,
    ).collect()
