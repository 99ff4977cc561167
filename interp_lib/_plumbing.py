"""Plumbing shared by every subpackage: batches, eval mode, devices, progress, extras.

One home for the small helpers that each subpackage used to write again. Nothing here
knows about intrinsic dimension or prototypes. Conventions are in ``CONTRIBUTING.md``.

Device policy (one for the whole library)
-----------------------------------------
* Functions that **read** a model (profile, push, explain, attribute, metrics) run on
  the model's device (:func:`model_device`) and move each batch there. An explicit
  ``device=`` must agree with the model's device, else :func:`check_device` raises a
  ``ValueError`` that says to move the model first.
* Functions that **train** (``protopnet.fit``, ``models.train_classifier``) take
  ``device=`` and move the model there (``None``: stay where the model is), through
  :func:`train_device`.
* Point clouds (``interp_lib.id``) are computed on the device the tensor lives on.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

__all__ = [
    "EXTRAS",
    "Batch",
    "NonFiniteLossError",
    "atomic_save",
    "atomic_write",
    "check_device",
    "check_writable",
    "current_umask",
    "evaluating",
    "file_mode",
    "forward_logits",
    "model_device",
    "postfix_due",
    "progress",
    "remove_stale_temporaries",
    "require",
    "resolve_target",
    "save_target",
    "to_device",
    "train_device",
    "unpack_batch",
]


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite (lower the learning rate or check the data)."""


# ---------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    """One batch as the library sees it: images, labels and (optional) masks.

    Attributes
    ----------
    x : torch.Tensor
        Inputs, shape ``(B, ...)`` (images: ``(B, C, H, W)``).
    y : torch.Tensor or None
        Integer labels, shape ``(B,)``.
    masks : torch.Tensor or None
        Ground-truth masks, shape ``(B, H, W)`` (object) or ``(B, P, H, W)`` (parts).
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    masks: torch.Tensor | None = None


_X_KEYS = ("image", "images", "x", "input", "inputs")
_Y_KEYS = ("label", "labels", "y", "target", "targets")
_M_KEYS = ("mask", "masks", "part_masks")


def _first(mapping: Mapping, keys: tuple[str, ...]) -> Any:
    return next((mapping[k] for k in keys if k in mapping), None)


def unpack_batch(batch: Any, *, need_labels: bool = False) -> Batch:
    """Split what a loader yields into :class:`Batch` ``(x, y, masks)``.

    Accepts a tensor or numpy array ``x``; a tuple/list ``(x, y, masks, ...)``; or a
    mapping with ``image``/``label``/``mask`` keys (and their plurals). Nothing is moved
    or copied; numpy arrays become tensors.

    Raises
    ------
    TypeError
        If the batch has none of these forms.
    ValueError
        If ``need_labels`` and the batch carries no labels.
    """
    if isinstance(batch, Mapping):
        x, y, m = _first(batch, _X_KEYS), _first(batch, _Y_KEYS), _first(batch, _M_KEYS)
    elif isinstance(batch, (tuple, list)) and batch:
        x = batch[0]
        y = batch[1] if len(batch) > 1 else None
        m = batch[2] if len(batch) > 2 else None
    else:
        x, y, m = batch, None, None
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or x.ndim == 0:
        raise TypeError(
            "each batch must be a tensor x of shape (B, ...), a tuple (x, y[, masks]) or a "
            f"dict with an 'image' key; got {type(batch).__name__}. Wrap the dataset so "
            "__getitem__ returns (x, y)."
        )
    if y is not None and not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y)
    if m is not None and not isinstance(m, torch.Tensor):
        m = torch.as_tensor(m)
    if need_labels and y is None:
        raise ValueError(
            "this function needs labels: the loader must yield (images, labels, ...) "
            f"tuples, got a batch with images only ({type(batch).__name__})."
        )
    return Batch(x, y, m)


def to_device(batch: Batch, device: torch.device, *, channels_last: bool = False) -> Batch:
    """``batch`` with every tensor on ``device`` (non-blocking), images optionally
    in ``channels_last`` memory format."""
    x = batch.x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    y = None if batch.y is None else batch.y.to(device, non_blocking=True)
    m = None if batch.masks is None else batch.masks.to(device, non_blocking=True)
    return Batch(x, y, m)


# ---------------------------------------------------------------------- model state


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore the mode of every submodule
    afterwards, even when the block raises (a frozen BatchNorm inside a training model
    stays in eval mode). Gradients are not switched off (attributions need them)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with none)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def check_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """The device a function that reads ``model`` runs on: ``device`` if given (it must
    be the model's device type), else the model's own device."""
    here = model_device(model)
    if device is None:
        return here
    device = torch.device(device)
    if device.type != here.type:
        raise ValueError(
            f"the model lives on {here} but device={str(device)!r}; move the model first "
            f"(model.to({str(device)!r})) or leave device=None."
        )
    return device


def train_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """The device a function that **trains** ``model`` runs on, with the model moved there:
    ``device`` if given, else the model's own device (the model then stays where it is)."""
    device = model_device(model) if device is None else torch.device(device)
    model.to(device)
    return device


# ------------------------------------------------------------------ images and targets


@torch.no_grad()
def forward_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The model's logits ``(N, K)``; fails clearly when the output is not 2-D."""
    out = model(inputs)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the model must return logits of shape (N, n_classes), got {got}. Wrap it so "
            "that forward returns one logit tensor."
        )
    return out


def resolve_target(
    model: nn.Module, inputs: torch.Tensor, target: Any, *, logits: torch.Tensor | None = None
) -> torch.Tensor:
    """The class to explain for each image, as a long tensor ``(N,)``.

    ``None`` means the predicted class; an int applies to every image; a sequence or tensor
    gives one class per image. Out-of-range classes fail with the valid range.
    """
    if logits is None:
        logits = forward_logits(model, inputs)
    n, k = logits.shape
    if target is None:
        return logits.argmax(1)
    try:
        t = torch.as_tensor(target, device=inputs.device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            "target must be None, an int, or a sequence/tensor of class indices, got "
            f"{type(target).__name__} {target!r:.40}."
        ) from exc
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {t.dtype}.")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(
            f"target must be one int or {n} class indices (one per image), got {t.numel()}."
        )
    if bool(((t < 0) | (t >= k)).any()):
        bad = t[(t < 0) | (t >= k)].unique().tolist()
        raise ValueError(f"target {bad} out of range: the model has {k} classes (0 to {k - 1}).")
    return t.contiguous()


# ------------------------------------------------------------------- atomic files


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


_TMP_RE = r"\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers (an interrupted save of this process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed saves to ``path`` left behind.

    A save writes ``.<name>.<pid>.<random>.tmp`` next to ``path``; the file of a process
    that no longer exists (or of this process, outside a save) is stale. Files of live
    processes are kept (another process may be saving right now).

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for f in path.parent.iterdir():
        m = re.fullmatch(_TMP_RE, f.name)
        if m and m["name"] == path.name and not _pid_alive(int(m["pid"])):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
                removed.append(f)
    return removed


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/file system allows it
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def current_umask() -> int:
    """The process's file-mode creation mask, read without changing it where the system
    allows (``/proc/self/status`` on Linux); elsewhere set and restored at once."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_target(path: str | os.PathLike) -> Path:
    """The file a save to ``path`` writes: ``path`` itself, or, when ``path`` is a
    symbolic link, the file it points to (so the link is kept and written through)."""
    path = Path(path)
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def file_mode(path: str | os.PathLike) -> int:
    """The permission bits a save to ``path`` gives the file: those of the file it
    replaces when there is one, else ``0o666`` less the umask (what ``open`` gives a new
    file)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def check_writable(path: str | os.PathLike, what: str = "file") -> Path:
    """Check that a save to ``path`` can succeed, before any work is done: its folder
    exists or can be created, is a folder, and accepts a new file (one is created and
    removed); ``path`` itself is not a folder.

    Raises
    ------
    OSError
        (``PermissionError``, ``NotADirectoryError``, ``IsADirectoryError``...) naming
        ``path`` and what is wrong.
    """
    target = save_target(path)
    if target.is_dir():
        raise IsADirectoryError(f"cannot write the {what} {str(path)!r}: it is a folder.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_tmp_prefix(target), suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise type(exc)(
            exc.errno,
            f"cannot write the {what} {str(path)!r}: its folder {str(target.parent)!r} "
            f"is not writable ({exc.strerror or exc})",
        ) from None
    return target


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Write a file atomically: ``write(f)`` fills a temporary binary file beside
    ``path``, which is flushed and fsynced, then renamed into place (and the folder
    fsynced), so a reader sees the old file or the new one, never half a file.
    Temporaries of killed saves to the same path are removed first
    (:func:`remove_stale_temporaries`); this save's own is removed if it fails.

    The file gets the permission bits of the file it replaces, or those a new file gets
    under the umask (:func:`file_mode`; not the ``0600`` of a temporary file), so a shared
    folder stays shared. When ``path`` is a symbolic link, the file it points to is
    replaced and the link kept (:func:`save_target`).

    Parameters
    ----------
    path : path
        The file to write.
    write : callable
        Called once with the open temporary file (binary mode), e.g.
        ``lambda f: torch.save(obj, f)`` (:func:`atomic_save`) or
        ``lambda f: f.write(text.encode())``.

    Returns
    -------
    pathlib.Path
        The path written (``path`` as given).
    """
    given = Path(path)
    path = save_target(given)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    mode = file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(OSError, NotImplementedError):  # e.g. no fchmod
                os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return given


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, with :func:`atomic_write` (a reader
    sees the old file or the new one, never half a file; permissions and symbolic links
    kept).

    Returns
    -------
    pathlib.Path
        The path written (``path`` as given).
    """
    return atomic_write(path, lambda f: torch.save(obj, f))


# ------------------------------------------------------------------------- progress


def progress(iterable: Iterable, enabled: bool, desc: str, *, total: int | None = None) -> Iterable:
    """``iterable`` wrapped in a tqdm bar when ``enabled`` (the bar is cleared at the end).

    The bar only displays: it iterates ``iterable`` once, when it is itself iterated, and
    draws no random number, so a run gives the same results with and without it.
    (``tqdm.auto``'s bar calls ``iter()`` on what it wraps as soon as it is made; for a
    ``DataLoader`` that draws a worker seed from the loader's generator or torch's global
    one, which would move every later shuffle and augmentation. It is handed a generator
    that starts ``iterable`` only when the bar is iterated.)
    """
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except (TypeError, AttributeError):  # no length: a bar without a total
            total = None
    return tqdm(_started_when_iterated(iterable), desc=desc, total=total, leave=False)


def postfix_due(bar: Iterable, b: int, *, most: int = 25, per_pass: int = 4) -> bool:
    """Whether batch ``b`` (counted from 0) of a pass shown by ``bar`` should refresh the
    bar's postfix (with a running loss, say, whose read is a host sync).

    A bar over ``n`` batches refreshes at batch 0, at every ``max(1, min(most, n //
    per_pass))``-th batch and at the last one, so the value shown is never left at the
    first batch's: at every batch of a pass shorter than ``2 * per_pass`` batches, at
    most ``2 * per_pass + 1`` times in a pass shorter than ``most * per_pass``, and
    once in ``most`` batches (and at the last) in a longer one. A bar without a total
    refreshes every ``most``-th batch. ``False`` for anything that is not a bar
    (``progress`` off: :func:`progress` returned the iterable itself), so nothing is
    read then. It only decides: it draws no random number.

    Parameters
    ----------
    bar : Iterable
        What :func:`progress` returned for the pass.
    b : int
        The batch just done, from 0.
    most, per_pass : int
        The longest stride between two refreshes, and the number of refreshes a pass of
        fewer than ``most * per_pass`` batches aims at.

    Returns
    -------
    bool

    Examples
    --------
    >>> bar = progress(range(3), True, "demo")
    >>> [b for b, _ in enumerate(bar) if postfix_due(bar, b)]
    [0, 1, 2]
    >>> bar = progress(range(200), True, "demo")
    >>> [b for b, _ in enumerate(bar) if postfix_due(bar, b)][:3]
    [0, 25, 50]
    >>> postfix_due(range(3), 0)  # progress off: no bar, nothing to refresh
    False
    """
    if not hasattr(bar, "set_postfix"):
        return False
    n = getattr(bar, "total", None)
    if not n:
        return b % most == 0
    every = max(1, min(most, n // per_pass))
    return b % every == 0 or b == n - 1


def _started_when_iterated(iterable: Iterable) -> Iterator:
    """A generator over ``iterable``: ``iter(iterable)`` runs at the first ``next``."""
    yield from iterable


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block under ``torch.set_num_threads(n)`` and restore the caller's setting
    afterwards (``None``: leave it as it is). The thread count changes the order of
    floating-point sums, so a training run repeats exactly only under the same count."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -------------------------------------------------------------- optional dependencies

#: Which extra of ``pip install "interp_lib[extra]"`` provides each optional package.
EXTRAS: dict[str, str] = {
    "matplotlib": "viz",
    "ipywidgets": "viz",
    "pandas": "viz",
    "captum": "captum",
    "pytorch_grad_cam": "test",
    "quantus": "test",
}


def require(module: str, feature: str) -> Any:
    """Import an optional dependency or fail with the exact command that installs it.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"matplotlib.pyplot"`` or ``"captum.attr"``.
    feature : str
        What needs it, for the message, e.g. ``"LayerProfile.plot"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS.get(top, "all")
        raise ModuleNotFoundError(
            f"{feature} needs {top}, which is not installed. Install it with "
            f'`pip install "interp_lib[{extra}]"` (or `pip install {top}`).'
        ) from exc
