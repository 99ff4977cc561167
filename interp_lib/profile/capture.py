"""Forward hooks that are always removed: :func:`capture` and its plumbing.

Every hook of :mod:`interp_lib.profile` is installed by :func:`hooks_installed`, a
context manager whose ``finally`` removes the hooks and restores the ``training`` flag of
every submodule, whatever happens: a normal exit, an exception inside ``forward``, or an
error while the hooks were being registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .layers import INPUT, OUTPUT, check_module, resolve_layers

__all__ = ["capture", "first_tensor", "hooks_installed"]

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
    """
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


@contextmanager
def capture(
    model: nn.Module,
    layers: str | Sequence[str] | Mapping[str, str],
    *,
    on_output: Callable[[str, torch.Tensor], None] | None = None,
    eval_mode: bool = True,
) -> Iterator[dict[str, torch.Tensor]]:
    """Record what chosen layers produce while the model runs inside a ``with`` block.

    Parameters
    ----------
    model : torch.nn.Module
    layers : str, list of str, or dict str -> str
        Dotted module names (see :func:`list_layers`), or ``{name: alias}``. The
        pseudo-layers ``"input"`` (the model's first positional argument) and
        ``"output"`` (its return value) are accepted.
    on_output : callable ``(alias, tensor) -> None``, optional
        Called inside the hook with the detached output, instead of storing a copy. The
        tensor must be consumed (copied, reduced) right there: in-place operations later
        in the forward pass may overwrite it.
    eval_mode : bool, default True
        Run in eval mode (dropout off, batch-norm running statistics) inside the block.
        The ``training`` flag of every submodule is restored on exit.

    Yields
    ------
    dict str -> torch.Tensor
        ``{alias: output}`` of the most recent forward pass, detached and **cloned** when
        the hook fires, so that a later in-place op (torchvision VGG's
        ``ReLU(inplace=True)``) cannot change it. A module called several times in one
        forward pass (ResNet's shared ``relu``) keeps its last output. Empty when
        ``on_output`` is given.

    Raises
    ------
    TypeError
        If ``model`` is not a module or ``layers`` has the wrong type.
    ValueError
        Unknown layer names (with a "did you mean" suggestion) or repeated aliases.
        Nothing is registered then.

    Notes
    -----
    Hooks are removed and ``training`` flags restored on every exit path, including an
    exception raised inside ``forward``. ``capture`` does not switch off autograd; wrap
    the forward in ``torch.no_grad()`` when gradients are not needed.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 2))
    >>> with capture(net, {"0": "hidden", "output": "logits"}) as acts:
    ...     _ = net(torch.randn(5, 3))
    >>> {k: tuple(v.shape) for k, v in acts.items()}
    {'hidden': (5, 4), 'logits': (5, 2)}
    """
    check_module(model)
    spec = resolve_layers(model, layers)
    store: dict[str, torch.Tensor] = {}

    def emit(alias: str, value: Any, layer: str) -> None:
        tensor = first_tensor(value, layer).detach()
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
            module = model if name == OUTPUT else model.get_submodule(name)
            forward.setdefault(module, []).append(forward_hook(alias, name))
    with hooks_installed(model, forward, pre, eval_mode=eval_mode):
        yield store
