"""A dry run of the model on one sample: which modules run, in what order, with what shapes.

:func:`trace_model` is the probe behind the default checkpoints, the relative depths and
the memory plan of :func:`collect_activations`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .capture import first_tensor, hooks_installed
from .layers import INPUT, OUTPUT, check_module

__all__ = ["ModuleTrace", "trace_model"]


@dataclass(frozen=True)
class ModuleTrace:
    """What one forward pass did.

    Attributes
    ----------
    events : tuple of str
        Module names in the order their ``forward`` **finished**, one entry per call
        (a parent finishes after its children). The root module is ``"output"``.
    calls : dict str -> int
        Forward calls per module name (``"input"`` counts 1).
    shapes : dict str -> tuple of int
        Per-sample shape (batch dimension dropped) of each module's last output, and of
        ``"input"``. Modules whose output is not a tensor are absent.
    in_numel : dict str -> int
        Per-sample size of each module's first tensor argument.
    output_modules : frozenset of str
        Modules whose output **is** the model's output tensor (e.g. the last linear
        layer, and the ``Sequential`` that holds it).
    """

    events: tuple[str, ...]
    calls: dict[str, int]
    shapes: dict[str, tuple[int, ...]]
    in_numel: dict[str, int] = field(repr=False)
    output_modules: frozenset[str] = frozenset()

    def position(self, name: str) -> int:
        """Index of the last completion of ``name`` in ``events`` (``-1`` for input)."""
        if name == INPUT:
            return -1
        last = len(self.events) - 1 - self.events[::-1].index(name)
        return last

    def ran(self, name: str) -> bool:
        """Whether ``name`` ran (and produced a tensor) during the traced pass."""
        return name in self.shapes

    def features(self, name: str, reduce: str = "flatten") -> int:
        """Columns of ``name``'s activations: all entries, or channels after a spatial mean."""
        shape = self.shapes[name]
        if reduce == "spatial_mean" and len(shape) > 1:
            return shape[0]
        return math.prod(shape)


def trace_model(model: nn.Module, example: torch.Tensor) -> ModuleTrace:
    """Run ``model`` once in eval mode without grad and record every module's call.

    Parameters
    ----------
    model : torch.nn.Module
    example : torch.Tensor, shape (B, ...)
        An input batch on the model's device; one sample is enough and is cheapest.

    Returns
    -------
    ModuleTrace
    """
    check_module(model)
    events: list[str] = []
    calls: dict[str, int] = {INPUT: 1}
    shapes: dict[str, tuple[int, ...]] = {INPUT: tuple(example.shape[1:])}
    in_numel: dict[str, int] = {}
    last: dict[str, torch.Tensor] = {}
    names = {m: (n or OUTPUT) for n, m in model.named_modules(remove_duplicate=False)}

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        name = names[module]
        events.append(name)
        calls[name] = calls.get(name, 0) + 1
        if args and isinstance(args[0], torch.Tensor):
            in_numel[name] = args[0][:1].numel()
        try:
            tensor = first_tensor(output, name)
        except TypeError:
            return
        if tensor.ndim == 0:
            return
        shapes[name] = tuple(tensor.shape[1:])
        last[name] = tensor

    modules = {m: [hook] for m in names}
    with torch.no_grad(), hooks_installed(model, modules):
        out = model(example)
    out = first_tensor(out, OUTPUT)
    output_modules = frozenset(n for n, t in last.items() if t is out and n != OUTPUT)
    return ModuleTrace(tuple(events), calls, shapes, in_numel, output_modules)
