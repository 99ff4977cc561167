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
from torch.nn.modules.conv import _ConvNd

from .._validation import check_module
from .capture import first_tensor, hooks_installed
from .layers import INPUT, OUTPUT

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


def expected_input(model: nn.Module) -> str:
    """What the model's first layer takes, in words (for error messages)."""
    first = next((m for m in model.modules() if isinstance(m, (nn.Linear, _ConvNd))), None)
    params = next(iter(model.parameters()), None)
    dtype = f" of dtype {params.dtype}" if params is not None else ""
    if isinstance(first, _ConvNd):
        dims = {1: "L", 2: "H, W", 3: "D, H, W"}[len(first.kernel_size)]
        return f"{first.in_channels}-channel inputs (B, {first.in_channels}, {dims}){dtype}"
    if isinstance(first, nn.Linear):
        return f"inputs with {first.in_features} features in the last dimension{dtype}"
    return f"inputs{dtype}"


def _input_error(model: nn.Module, example: torch.Tensor, exc: Exception) -> Exception:
    params = next(iter(model.parameters()), None)
    got = f"shape {tuple(example.shape)} and dtype {example.dtype}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if params is not None and params.is_floating_point() and example.dtype != params.dtype:
        return TypeError(
            f"the model failed on an input of {got} ({text}). Its parameters are "
            f"{params.dtype}: convert the inputs, e.g. x.to({params.dtype}) (uint8 "
            "images: x.float() / 255, or torchvision.transforms.ToTensor())."
        )
    return ValueError(
        f"the model failed on an input of {got}: {text}. It expects "
        f"{expected_input(model)}; check the number of channels, the image size and the "
        "dtype of the data (e.g. the dataset's transform)."
    )


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
    # a module registered under several names (``self.head = self.body[2]``) is traced under
    # its first name, the one list_layers prints and resolve_layer returns
    names = {m: (n or OUTPUT) for n, m in model.named_modules()}

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

    if not isinstance(example, torch.Tensor) or example.ndim == 0:
        raise TypeError(
            "example must be a tensor of shape (B, ...) (one input batch), got "
            f"{type(example).__name__}."
        )
    modules = {m: [hook] for m in names}
    with torch.no_grad(), hooks_installed(model, modules):
        try:
            out = model(example)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise _input_error(model, example, exc) from exc
    try:
        out = first_tensor(out, OUTPUT)
    except TypeError:  # e.g. a dict of outputs: inner layers can still be profiled
        output_modules: frozenset[str] = frozenset()
    else:
        output_modules = frozenset(n for n, t in last.items() if t is out and n != OUTPUT)
    return ModuleTrace(tuple(events), calls, shapes, in_numel, output_modules)
