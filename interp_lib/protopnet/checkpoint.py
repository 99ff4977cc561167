"""Safe, atomic ProtoPNet checkpoints.

A checkpoint is a ``torch.save`` file holding only tensors and plain Python values:
the model's ``state_dict``, its ``config`` (which rebuilds it with
``ProtoPNet.from_config``) and, when written by :func:`~interp_lib.protopnet.fit`, the
training state (optimisers, scheduler, epoch, stage, RNG states, history). It is read with
``torch.load(weights_only=True)``, which never runs code hidden in a pickle; anything else
(e.g. a whole-model pickle from the original ProtoPNet repository) is refused.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_checkpoint", "read_checkpoint", "save_checkpoint"]

FORMAT = "interp_lib.protopnet.checkpoint/1"
_SCALARS = (str, int, float, bool, type(None))  # exact types: no str-enums, no numpy ints
_TORCH = (torch.Tensor, torch.dtype, torch.Size, torch.device)


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


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **training_state: Any) -> Path:
    """Write ``model`` (state_dict + config) and optional training state to ``path``.

    The file is written atomically: to a temporary file in the same directory, flushed to
    disk, then renamed over ``path`` with :func:`os.replace`, so a run killed while saving
    leaves the previous checkpoint intact.

    Parameters
    ----------
    path : str or PathLike
        Destination file (its directory is created if needed).
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device | None = None
) -> dict[str, Any]:
    """Read a checkpoint safely and return its contents as a dict.

    Keys: ``format``, ``config``, ``state_dict`` and any training state saved with it.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a safe interp_lib checkpoint: a pickle with arbitrary Python
        objects (refused by ``torch.load(weights_only=True)`` *without* running them), or a
        file without ``config``/``state_dict``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"refusing to load {str(path)!r}: it is not a safe interp_lib checkpoint, it "
            f"contains Python objects that torch.load(weights_only=True) will not "
            f"unpickle ({first}). Nothing in it was executed. Whole-model pickles (such as "
            "those of the original ProtoPNet code) can run arbitrary code; load one with "
            "weights_only=False only if you trust its source, then re-save it with "
            "save_checkpoint(path, model)."
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(
            f"could not read {str(path)!r} as a checkpoint ({exc}); is it a torch.save "
            "file written by save_checkpoint, and complete?"
        ) from exc
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        got = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{str(path)!r} is not an interp_lib ProtoPNet checkpoint: expected a dict with "
            f"'config' and 'state_dict', got {got}. Write checkpoints with save_checkpoint."
        )
    return payload


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device | None = None,
    *,
    backbone: nn.Module | None = None,
):
    """Rebuild a :class:`~interp_lib.protopnet.ProtoPNet` from a checkpoint.

    The model is rebuilt with ``ProtoPNet.from_config(config)`` (so the backbone is
    constructed, never unpickled) and its ``state_dict`` loaded strictly. The training
    state, if any, is available from :func:`interp_lib.protopnet.checkpoint.read_checkpoint`.

    Parameters
    ----------
    path : str or PathLike
        A file written by :func:`save_checkpoint` or by ``fit(..., checkpoint=path)``.
    map_location : str or torch.device, optional
        Where to put the tensors (as in :func:`torch.load`); default: where they were.
    backbone : nn.Module, optional
        The trunk module, for a model built with a custom backbone (whose config cannot
        name it); its weights are then loaded from the checkpoint.

    Returns
    -------
    ProtoPNet
        The model in eval mode, on ``map_location`` (or the device it was saved from).
    """
    from .model import ProtoPNet

    payload = read_checkpoint(path, map_location=map_location)
    model = ProtoPNet.from_config(payload["config"], backbone=backbone)
    state = payload["state_dict"]
    devices = {t.device for t in state.values() if isinstance(t, torch.Tensor)}
    if len(devices) == 1:
        model.to(next(iter(devices)))
    model.load_state_dict(state)
    return model.eval()
