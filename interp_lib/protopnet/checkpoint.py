"""Safe, atomic, verified ProtoPNet checkpoints.

A checkpoint holds only tensors and plain Python values: the model's ``state_dict``, its
``config`` (which rebuilds it with ``ProtoPNet.from_config``) and, when written by
:func:`~interp_lib.protopnet.fit`, the training state (optimisers, scheduler, epoch,
stage, RNG states, history).

File format (``interp_lib.protopnet.checkpoint/2``)
---------------------------------------------------
The contents are serialised with :func:`torch.save` into bytes, and the file is a
``torch.save`` of ``{"format", "sha256", "payload"}``: the SHA-256 of those bytes and the
bytes themselves (a ``uint8`` tensor). Reading (:func:`interp_lib.protopnet.checkpoint.read_checkpoint`):

1. ``torch.load(weights_only=True)``, which never runs code hidden in a pickle; anything
   else (e.g. a whole-model pickle from the original ProtoPNet repository) is refused;
2. the SHA-256 of the payload is compared with the stored one *before* the payload is
   unpickled, so any change to the file after it was written (a flipped bit, a
   truncation, an overwritten header) is detected;
3. every tensor must be a dense view that its own stored bytes back (no zero-stride
   expansion, no overlapping strides, no sparse or meta tensor), and all of them
   together may take at most ``max_bytes`` (default: twice the file's size), so a
   small file cannot make the loader allocate a large model;
4. ``config`` and the ``state_dict``'s structure are checked: numbers bounded, only the
   ``backbone_kwargs`` the trunk takes (validated), no ``backbone_weights`` (a
   checkpoint never makes the loader read another file); :func:`load_checkpoint` then
   builds the model on the ``meta`` device (no memory) and compares every shape before
   allocating it.

Every problem raises one :class:`CorruptCheckpointError` (a ``ValueError``) naming the
file and what is wrong. Files are written atomically (temporary file, ``fsync``,
:func:`os.replace`, ``fsync`` of the directory); temporary files of saves that were
killed are removed by the next save to the same path. A new file gets the permissions
``open`` would give it under the umask, an overwritten one keeps its own; saving to a
symbolic link writes the file it points to and keeps the link.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._plumbing import atomic_save, remove_stale_temporaries

__all__ = [
    "CorruptCheckpointError",
    "load_checkpoint",
    "read_checkpoint",
    "remove_stale_temporaries",
    "save_checkpoint",
]

FORMAT = "interp_lib.protopnet.checkpoint/2"
_SCALARS = (str, int, float, bool, type(None))  # exact types: no str-enums, no numpy ints
_TORCH = (torch.Tensor, torch.dtype, torch.Size, torch.device)
#: Largest int and longest list a config may hold (a guard against configs that would
#: make the constructor allocate gigabytes before anything else can be checked).
_CONFIG_MAX_INT = 10**6


class CorruptCheckpointError(ValueError):
    """A checkpoint file cannot be used: damaged, truncated, unsafe, unverifiable, or
    inconsistent with its own config. The message names the file and the problem."""


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError unless ``value`` is made of tensors, numbers, strings, lists,
    tuples and string-keyed dicts (what ``torch.load(weights_only=True)`` reads back)."""
    if type(value) in _SCALARS or isinstance(value, _TORCH):
        return
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if type(value) in (dict, OrderedDict):
        for k, v in value.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str keys.")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}, which a safe checkpoint cannot hold: store "
        "only tensors, numbers, strings, and lists/tuples/dicts of them (e.g. an enum's "
        ".value, an optimiser's .state_dict())."
    )


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel / DataParallel hold the real model in .module
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while isinstance(model, (DataParallel, DistributedDataParallel)):
        model = model.module
    return model


def _digest(data) -> str:
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **training_state: Any) -> Path:
    """Write ``model`` (state_dict + config) and optional training state to ``path``.

    The contents are stored with their SHA-256 (see the module docstring). The file is
    written atomically: to a temporary file in the same directory, flushed to disk, then
    renamed over ``path`` with :func:`os.replace`, so a run killed while saving leaves
    the previous checkpoint intact; stale temporary files of earlier killed saves to
    ``path`` are removed first.

    Parameters
    ----------
    path : str or PathLike
        Destination file (its directory is created if needed). An existing file is
        replaced.
    model : ProtoPNet
        The model; it must have a ``config`` dict (``ProtoPNet.config``).
    **training_state
        Extra entries (optimiser state dicts, epoch, ...), made of tensors, numbers,
        strings, lists, tuples and dicts only.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    model = _unwrap(model)
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(
            f"save_checkpoint needs a model with a `config` dict (a ProtoPNet), got "
            f"{type(model).__name__}. For other models use torch.save(model.state_dict())."
        )
    reserved = {"format", "config", "state_dict"} & training_state.keys()
    if reserved:
        raise ValueError(f"training_state may not use the reserved keys {sorted(reserved)}.")
    payload = {"format": FORMAT, "config": config, "state_dict": model.state_dict()}
    payload.update(training_state)
    _check_plain(payload, "checkpoint")
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = bytearray(buf.getbuffer())
    del buf
    envelope = {
        "format": FORMAT,
        "sha256": _digest(data),
        "payload": torch.frombuffer(data, dtype=torch.uint8),
    }
    path = Path(path)
    atomic_save(envelope, path)
    return path


def _load(source, path: Path, map_location, what: str) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into one clear error."""
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptCheckpointError(
            f"refusing to load {str(path)!r}: it is not a safe interp_lib checkpoint, it "
            f"contains Python objects that torch.load(weights_only=True) will not "
            f"unpickle ({first}). Nothing in it was executed. Whole-model pickles (such as "
            "those of the original ProtoPNet code) can run arbitrary code; load one with "
            "weights_only=False only if you trust its source, then re-save it with "
            "save_checkpoint(path, model). (A damaged file can also look like this.)"
        ) from None
    except Exception as exc:  # zip/pickle damage surfaces as many exception types
        raise CorruptCheckpointError(
            f"{str(path)!r} is damaged or not a checkpoint: reading its {what} failed "
            f"({type(exc).__name__}: {str(exc)[:200]}). Is it a complete file written by "
            "save_checkpoint? Use an older copy or retrain."
        ) from None


def _is_envelope(obj: Any) -> bool:
    return isinstance(obj, dict) and ("sha256" in obj or "payload" in obj)


def _open_envelope(outer: dict, path: Path, map_location) -> Any:
    digest, data = outer.get("sha256"), outer.get("payload")
    if (
        outer.get("format") != FORMAT
        or set(outer) != {"format", "sha256", "payload"}
        or not isinstance(digest, str)
        or re.fullmatch(r"[0-9a-f]{64}", digest) is None
        or not isinstance(data, torch.Tensor)
        or data.dtype != torch.uint8
        or data.ndim != 1
        or not data.is_contiguous()
    ):
        raise CorruptCheckpointError(
            f"{str(path)!r} is damaged: its envelope (format, sha256, payload) is malformed "
            f"(keys {sorted(map(str, outer))}, format {outer.get('format')!r})."
        )
    raw = data.cpu().numpy()
    got = _digest(memoryview(raw))
    if got != digest:
        raise CorruptCheckpointError(
            f"{str(path)!r} is damaged: the SHA-256 of its contents is {got[:16]}..., but "
            f"{digest[:16]}... was stored when it was written ({raw.size} bytes). The file "
            "changed after it was saved (disk or copy error, or an edit); nothing in it was "
            "used. Use an older copy or retrain."
        )
    return _load(io.BytesIO(raw.tobytes()), path, map_location, "contents")


def _check_state_dict(state: Any, path: Path) -> None:
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CorruptCheckpointError(
            f"{str(path)!r}: 'state_dict' must map parameter names to tensors, got "
            f"{type(state).__name__}."
        )


def _tensor_bytes(t: torch.Tensor, where: str, path: Path) -> int:
    """The bytes ``t`` takes once materialised, after checking that it is a dense view
    its storage can back (no zero-stride expansion, no repeated elements, no sparse,
    quantised, nested or meta tensor)."""
    bad = None
    if t.layout != torch.strided or t.is_quantized or getattr(t, "is_nested", False):
        bad = f"a {t.layout} tensor (only dense tensors are stored)"
    elif t.device.type == "meta":
        bad = "a tensor without data (meta device)"
    if bad is None:
        need = t.numel() * t.element_size()
        if need == 0:
            return 0
        zero = [
            i
            for i, (n, st) in enumerate(zip(t.shape, t.stride(), strict=True))
            if n > 1 and st == 0
        ]
        have = t.untyped_storage().nbytes()
        if zero:
            bad = (
                f"a view of shape {tuple(t.shape)} that repeats its data along dimension "
                f"{zero[0]} (stride 0: an expanded tensor)"
            )
        elif need > have:
            bad = (
                f"a view of shape {tuple(t.shape)} ({need} bytes) over a storage of only "
                f"{have} bytes (its strides repeat elements)"
            )
        else:
            return need
    raise CorruptCheckpointError(
        f"{str(path)!r}: {where} is {bad}; a checkpoint written by save_checkpoint holds "
        "only dense tensors. The file is damaged or crafted; nothing was allocated."
    )


def _check_budget(payload: Any, path: Path, max_bytes: int) -> int:
    """Sum the bytes of every tensor of ``payload`` (checked by :func:`_tensor_bytes`)
    and refuse a total above ``max_bytes``. Returns the total."""
    total = 0
    stack: list[tuple[str, Any]] = [("checkpoint", payload)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, torch.Tensor):
            total += _tensor_bytes(v, where, path)
        elif isinstance(v, dict):
            stack.extend((f"{where}[{k!r}]", x) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{where}[{i}]", x) for i, x in enumerate(v))
    if total > max_bytes:
        raise CorruptCheckpointError(
            f"{str(path)!r}: its tensors would take {total} bytes once loaded, more than the "
            f"budget of {max_bytes} bytes (by default twice the file's size: tensors that "
            "share their data are counted once each). The file is damaged or crafted. If "
            "you trust it, pass a larger max_bytes."
        )
    return total


def _budget(path: Path, max_bytes: int | None) -> int:
    if max_bytes is None:
        return 2 * path.stat().st_size
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise TypeError(f"max_bytes must be a non-negative int or None, got {max_bytes!r}.")
    return max_bytes


def _check_config(config: Any, path: Path) -> None:
    """Types and bounds of a config, before anything is built from it."""
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise CorruptCheckpointError(
            f"{str(path)!r}: 'config' must be a dict with str keys, got {type(config).__name__}."
        )

    def walk(v: Any, where: str) -> None:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return
        if isinstance(v, int):
            if not -_CONFIG_MAX_INT <= v <= _CONFIG_MAX_INT:
                raise CorruptCheckpointError(
                    f"{str(path)!r}: config{where} = {v} is out of bounds (|value| <= "
                    f"{_CONFIG_MAX_INT}); the checkpoint is damaged or not from interp_lib."
                )
            return
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise CorruptCheckpointError(f"{str(path)!r}: config{where} = {v} is not finite.")
            return
        if isinstance(v, (list, tuple)):
            if len(v) > _CONFIG_MAX_INT:
                raise CorruptCheckpointError(f"{str(path)!r}: config{where} is too long.")
            for i, x in enumerate(v):
                walk(x, f"{where}[{i}]")
            return
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{where}[{k!r}]")
            return
        raise CorruptCheckpointError(
            f"{str(path)!r}: config{where} has type {type(v).__name__}; a config holds only "
            "numbers, strings, lists and dicts."
        )

    walk(config, "")
    if "backbone_weights" in config:
        raise CorruptCheckpointError(
            f"{str(path)!r}: its config names backbone_weights "
            f"({str(config['backbone_weights'])[:80]!r}); a checkpoint's config may not make "
            "the loader read another file (the trunk's weights are in its state_dict)."
        )
    from ..networks import check_backbone_kwargs

    name = config.get("backbone")
    try:
        check_backbone_kwargs(
            name if isinstance(name, str) else None, config.get("backbone_kwargs")
        )
    except (TypeError, ValueError) as exc:
        raise CorruptCheckpointError(f"{str(path)!r}: its config is refused: {exc}") from None


def read_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device | None = None,
    *,
    verify: bool = True,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Read a checkpoint safely, verify it, and return its contents as a dict.

    Keys: ``format``, ``config``, ``state_dict`` and any training state saved with it.

    Parameters
    ----------
    path : str or PathLike
    map_location : str or torch.device, optional
        As in :func:`torch.load`.
    verify : bool
        Refuse a file without a checksum (written by hand or by an interp_lib older than
        format 2) unless ``False``. Files with a checksum are always verified.
    max_bytes : int, optional
        Most bytes the checkpoint's tensors may take once loaded (all of them: the
        state dict and the training state). Default: twice the file's size. Every tensor
        must be a dense view that its own stored data can back: a tensor that repeats
        its data (an expanded, zero-stride view; strides that overlap) or is not dense
        (sparse, quantised, nested, meta) is refused, so a small file cannot make the
        loader allocate a large model.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CorruptCheckpointError
        (a ``ValueError``) If the file is damaged (checksum mismatch, truncated or
        garbled), unsafe (a pickle with arbitrary Python objects, refused by
        ``torch.load(weights_only=True)`` *without* running them), unverifiable, or not
        a checkpoint (no ``config``/``state_dict``, or a malformed config).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}.")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise CorruptCheckpointError(
            f"{str(path)!r} is damaged or not a checkpoint: it starts with bytes "
            f"{head.hex()}, not those of a torch.save file (a zip archive, 504b0304) or a "
            "pickle (80...). Use an older copy or retrain."
        )
    budget = _budget(path, max_bytes)
    outer = _load(path, path, map_location=None, what="file")
    if isinstance(outer, dict):
        _check_budget(outer.get("payload"), path, 2 * path.stat().st_size)
    if _is_envelope(outer):
        payload = _open_envelope(outer, path, map_location)
    else:
        payload = outer
        if isinstance(payload, dict) and "config" in payload and "state_dict" in payload:
            if verify:
                raise CorruptCheckpointError(
                    f"{str(path)!r} carries no checksum (written by hand or by an older "
                    "interp_lib), so its integrity cannot be verified. If you trust it, read "
                    "it with read_checkpoint(path, verify=False) and re-save it with "
                    "save_checkpoint."
                )
            if map_location is not None:
                payload = _load(path, path, map_location, "file")
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        got = sorted(map(str, payload)) if isinstance(payload, dict) else type(payload).__name__
        raise CorruptCheckpointError(
            f"{str(path)!r} is not an interp_lib ProtoPNet checkpoint: expected a dict with "
            f"'config' and 'state_dict', got {got}. Write checkpoints with save_checkpoint."
        )
    _check_budget(payload, path, budget)
    _check_config(payload["config"], path)
    _check_state_dict(payload["state_dict"], path)
    return payload


def _skeleton(config: dict[str, Any], path: Path, backbone: nn.Module | None) -> nn.Module:
    """The model of ``config`` on the meta device (shapes only, no memory)."""
    from .model import ProtoPNet

    try:
        with torch.device("meta"):
            return ProtoPNet.from_config(config, backbone=backbone)
    except (TypeError, ValueError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise CorruptCheckpointError(
            f"{str(path)!r}: its config does not describe a valid ProtoPNet: {exc}"
        ) from None


def check_state_matches(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`CorruptCheckpointError` unless ``state`` has exactly ``model``'s
    keys, shapes and dtypes."""
    want = model.state_dict()
    missing, extra = sorted(want.keys() - state.keys()), sorted(state.keys() - want.keys())
    bad = [
        f"{k}: {tuple(state[k].shape)} {state[k].dtype} (expected {tuple(v.shape)} {v.dtype})"
        for k, v in want.items()
        if k in state and (state[k].shape != v.shape or state[k].dtype != v.dtype)
    ]
    if missing or extra or bad:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else "",
                 f"wrong shape {bad[:5]}" if bad else ""]  # fmt: skip
        raise CorruptCheckpointError(
            f"{str(path)!r}: its state_dict does not match the model its config describes ("
            + "; ".join(p for p in parts if p)
            + ")."
        )


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device | None = None,
    *,
    backbone: nn.Module | None = None,
    verify: bool = True,
    max_bytes: int | None = None,
    state: str = "last",
):
    """Rebuild a :class:`~interp_lib.protopnet.ProtoPNet` from a checkpoint.

    The file is verified (:func:`interp_lib.protopnet.checkpoint.read_checkpoint`,
    including the bound on what its tensors may cost); the model is first built on the
    meta device and its shapes compared with the saved ``state_dict``, then rebuilt for
    real with ``ProtoPNet.from_config(config)`` (so the backbone is constructed, never
    unpickled, and never from a weights file the config names) and the ``state_dict``
    loaded strictly. The training state, if any, is available from
    :func:`interp_lib.protopnet.checkpoint.read_checkpoint`.

    **Last or best.** The checkpoint that ``fit(..., checkpoint=path)`` writes after
    every step is there to resume training: its ``state_dict`` is the model after the
    *last* completed step. ``fit`` itself returns (with ``restore_best=True``, its
    default) the model at the step with the best validation accuracy, which the same
    file keeps as ``best_state_dict``. ``state="last"`` (default) loads the former,
    ``state="best"`` the latter, i.e. what ``fit`` returned.

    Parameters
    ----------
    path : str or PathLike
        A file written by :func:`save_checkpoint` or by ``fit(..., checkpoint=path)``.
    map_location : str or torch.device, optional
        Where to put the tensors (as in :func:`torch.load`); default: where they were.
    backbone : nn.Module, optional
        The trunk module, for a model built with a custom backbone (whose config cannot
        name it); its weights are then loaded from the checkpoint.
    verify : bool
        See :func:`interp_lib.protopnet.checkpoint.read_checkpoint`.
    max_bytes : int, optional
        See :func:`interp_lib.protopnet.checkpoint.read_checkpoint` (default: twice the
        file's size).
    state : {"last", "best"}
        Which weights: the file's ``state_dict`` (the last step of a ``fit``), or the
        ``best_state_dict`` that ``fit`` keeps (the model ``fit`` returns with
        ``restore_best=True``). ``"best"`` needs a checkpoint written by ``fit`` with a
        validation set.

    Returns
    -------
    ProtoPNet
        The model in eval mode, on ``map_location`` (or the device it was saved from).

    Raises
    ------
    CorruptCheckpointError
        If the file is damaged, unsafe, or its config and state do not agree.
    ValueError
        If ``state="best"`` and the file holds no best state.
    """
    from .._validation import check_choice
    from .model import ProtoPNet

    check_choice(state, "state", ("last", "best"))
    path = Path(path)
    payload = read_checkpoint(path, map_location=map_location, verify=verify, max_bytes=max_bytes)
    weights = payload["state_dict"]
    if state == "best":
        weights = payload.get("best_state_dict")
        if weights is None:
            raise ValueError(
                f"{str(path)!r} holds no best state: state='best' needs a checkpoint written "
                "by fit(..., checkpoint=path) with a validation set; use state='last'."
            )
        _check_state_dict(weights, path)
    check_state_matches(_skeleton(payload["config"], path, backbone), weights, path)
    model = ProtoPNet.from_config(payload["config"], backbone=backbone)
    devices = {t.device for t in weights.values() if isinstance(t, torch.Tensor)}
    if len(devices) == 1:
        model.to(next(iter(devices)))
    model.load_state_dict(weights)
    return model.eval()
