"""Forward hooks that are always removed: :func:`capture` and its plumbing.

Every hook of :mod:`interp_lib.profile` (and of :mod:`interp_lib.baselines`) is installed
by ``hooks_installed``, a context manager whose ``finally`` removes the hooks and
restores the ``training`` flag of every submodule, whatever happens: a normal exit, an
exception inside ``forward``, or an error while the hooks were being registered.

Hooks belong to modules, not to a call, so two threads hooking the same model at once
would see each other's batches. ``hooks_installed`` therefore holds a per-model
re-entrant lock for the duration of the block: hooked runs of one model from several
threads are serialised (each gets its own, correct result); different models, or copies
of one model, still run in parallel.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .._validation import check_module
from .layers import INPUT, LayerRef, get_layer, resolve_layers

__all__ = ["Captured", "capture", "first_tensor", "hooks_installed", "model_lock"]

ForwardHook = Callable[[nn.Module, tuple, Any], None]
PreHook = Callable[[nn.Module, tuple], None]


def first_tensor(value: Any, layer: str) -> torch.Tensor:
    """The tensor a layer produced: itself, or the first element of a tuple/list.

    Models such as ProtoPNet return ``(logits, distances)``; the first tensor is the one
    kept. Anything else (a dict, ``None``) raises ``TypeError`` naming the layer.
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise TypeError(
        f"layer {layer!r} produced a {type(value).__name__}, not a tensor (or a tuple whose "
        "first element is a tensor). Capture one of its submodules instead; see "
        "list_layers(model)."
    )


_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock that serialises hooked runs of ``model`` across threads."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


class Captured(dict):
    """``{alias: output}`` of the hooked layers, plus ``gradients``: ``{alias: d out}``.

    A plain ``dict`` of the most recent outputs; ``gradients`` is filled during the
    backward pass when :func:`capture` was called with ``gradients=True`` (empty
    otherwise).
    """

    def __init__(self) -> None:
        super().__init__()
        self.gradients: dict[str, torch.Tensor] = {}


@contextmanager
def hooks_installed(
    model: nn.Module,
    forward: Mapping[nn.Module, Sequence[ForwardHook]] | None = None,
    pre: Mapping[nn.Module, Sequence[PreHook]] | None = None,
    *,
    eval_mode: bool = True,
) -> Iterator[None]:
    """Register forward (pre-)hooks for the duration of a ``with`` block.

    Parameters
    ----------
    model : torch.nn.Module
        Its own and its submodules' ``training`` flags are saved and restored on exit.
    forward, pre : mapping module -> list of hooks, optional
        Forward hooks ``hook(module, args, output)`` and pre-hooks ``hook(module, args)``.
    eval_mode : bool, default True
        Put the model in eval mode inside the block.

    Notes
    -----
    Holds :func:`model_lock` for the block. The flags are restored module by module (not
    with ``model.train(was_training)``, which would flatten mixed modes such as a frozen
    BatchNorm inside a training model).
    """
    lock = model_lock(model)
    lock.acquire()
    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        for module, hooks in (pre or {}).items():
            handles.extend(module.register_forward_pre_hook(h) for h in hooks)
        for module, hooks in (forward or {}).items():
            handles.extend(module.register_forward_hook(h) for h in hooks)
        if eval_mode:
            model.eval()
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
        lock.release()


@contextmanager
def capture(
    model: nn.Module,
    layers: LayerRef | Sequence[LayerRef] | Mapping[LayerRef, str],
    *,
    on_output: Callable[[str, torch.Tensor], None] | None = None,
    gradients: bool = False,
    eval_mode: bool = True,
) -> Iterator[Captured]:
    """Record what chosen layers produce while the model runs inside a ``with`` block.

    Parameters
    ----------
    model : torch.nn.Module
    layers : str, module, list of them, or dict of them -> str
        Dotted module names (see :func:`list_layers`) or submodule objects, or
        ``{layer: alias}``. The pseudo-layers ``"input"`` (the model's first positional
        argument) and ``"output"`` (its return value) are accepted. Outputs are keyed by
        alias, which defaults to the dotted name (also for a module object).
    on_output : callable ``(alias, tensor) -> None``, optional
        Called inside the hook with the detached output, instead of storing a copy. The
        tensor must be consumed (copied, reduced) right there: in-place operations later
        in the forward pass may overwrite it.
    gradients : bool, default False
        Also record the gradient of the loss with respect to each layer's output
        (Grad-CAM's ``d y_c / d A``) in ``captured.gradients[alias]`` when ``backward``
        runs, inside or after the block. The forward pass must then run with autograd on
        (not under ``torch.no_grad()``), and the outputs must require grad (the input
        with ``requires_grad_()`` or trainable parameters upstream). The gradient is with
        respect to the value the layer returned, even when a later in-place op (ReLU)
        modifies that tensor.
    eval_mode : bool, default True
        Run in eval mode (dropout off, batch-norm running statistics) inside the block.
        The ``training`` flag of every submodule is restored on exit.

    Yields
    ------
    Captured
        A ``dict`` ``{alias: output}`` of the most recent forward pass, detached and
        **cloned** when the hook fires, so that a later in-place op (torchvision VGG's
        ``ReLU(inplace=True)``) cannot change it; its ``gradients`` attribute holds
        ``{alias: gradient}`` (same shapes) with ``gradients=True``. A module called
        several times in one forward pass (ResNet's shared ``relu``) keeps its last
        output and that call's gradient. Empty when ``on_output`` is given.

    Raises
    ------
    TypeError
        If ``model`` is not a module or ``layers`` has the wrong type.
    ValueError
        Unknown layer names (with a "did you mean" suggestion), modules that are not part
        of the model, or repeated aliases: nothing is registered then. With
        ``gradients=True``, a layer output that does not require grad.

    Notes
    -----
    Hooks are removed and ``training`` flags restored on every exit path, including an
    exception raised inside ``forward``. ``capture`` does not switch off autograd; wrap
    the forward in ``torch.no_grad()`` when gradients are not needed. Hooked runs of one
    model from several threads are serialised (see ``hooks_installed``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 2))
    >>> with capture(net, {"0": "hidden", "output": "logits"}) as acts:
    ...     _ = net(torch.randn(5, 3))
    >>> {k: tuple(v.shape) for k, v in acts.items()}
    {'hidden': (5, 4), 'logits': (5, 2)}

    Grad-CAM's ingredients for one layer, given as a module:

    >>> x = torch.randn(5, 3)
    >>> with capture(net, net[0], gradients=True) as acts:
    ...     net(x)[:, 1].sum().backward()
    >>> acts["0"].shape == acts.gradients["0"].shape == (5, 4)
    True
    """
    check_module(model)
    spec = resolve_layers(model, layers)
    store = Captured()
    calls: dict[str, int] = {}

    def record_gradient(alias: str, tensor: torch.Tensor, layer: str) -> None:
        if not tensor.requires_grad:
            raise ValueError(
                f"gradients=True but the output of layer {layer!r} does not require grad. "
                "Run the forward pass outside torch.no_grad(), and give the input "
                "requires_grad_() when the model's parameters are frozen."
            )
        call = calls[alias] = calls.get(alias, 0) + 1

        def on_grad(grad: torch.Tensor) -> None:
            if calls.get(alias) == call:  # only the last call of a shared module
                store.gradients[alias] = grad.detach().clone()

        tensor.register_hook(on_grad)

    def emit(alias: str, value: Any, layer: str) -> None:
        tensor = first_tensor(value, layer)
        if gradients:
            record_gradient(alias, tensor, layer)
        tensor = tensor.detach()
        if on_output is None:
            store[alias] = tensor.clone()
        else:
            on_output(alias, tensor)

    def forward_hook(alias: str, layer: str) -> ForwardHook:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            emit(alias, output, layer)

        return hook

    def input_hook(alias: str) -> PreHook:
        def hook(module: nn.Module, args: tuple) -> None:
            if not args:
                raise TypeError(
                    "the 'input' pseudo-layer needs the model to be called with its input "
                    "as the first positional argument."
                )
            emit(alias, args[0], INPUT)

        return hook

    forward: dict[nn.Module, list[ForwardHook]] = {}
    pre: dict[nn.Module, list[PreHook]] = {}
    for name, alias in spec.items():
        if name == INPUT:
            pre.setdefault(model, []).append(input_hook(alias))
        else:
            forward.setdefault(get_layer(model, name), []).append(forward_hook(alias, name))
    with hooks_installed(model, forward, pre, eval_mode=eval_mode):
        yield store
