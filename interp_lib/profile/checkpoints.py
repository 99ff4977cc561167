"""Where to measure: the default checkpoints of a network, and their relative depth.

Ansuini et al. (2019) measure the intrinsic dimension at the input, after every pooling
layer, after every fully connected layer and at the output, and place each checkpoint at
the **relative depth** = (number of convolutional and linear layers that have run up to
and including the checkpoint) / (their total). The input is at 0, the output at 1.

Default checkpoints
-------------------
Found by a dry run of the model on one sample (modules that never run are skipped), in
execution order:

1. ``"input"``;
2. every **pooling** module (max, average, adaptive, LP pooling), except adaptive pools
   that do not shrink their input (torchvision VGG's ``avgpool`` at 224 px is an
   identity);
3. every **stage** of blocks: a container whose children are all custom (non
   ``torch.nn``) blocks holding a convolution, i.e. ResNet's ``layer1`` ... ``layer4``
   and DenseNet's ``denseblock1`` ... ``denseblock4``;
4. every ``nn.Linear``;
5. ``"output"``, unless the last checkpoint already produces the model's output (the
   final ``Linear`` of VGG, ResNet and DenseNet).

For torchvision these give (at 224 px):

- VGG-11/16: input, the five max-pools ``features.*``, ``avgpool`` only when it shrinks,
  ``classifier.0``, ``classifier.3``, ``classifier.6`` (the output);
- ResNet-18/50: input, ``maxpool``, ``layer1`` ... ``layer4``, ``avgpool``, ``fc``;
- DenseNet-121: input, ``features.pool0``, the four dense blocks, the three transition
  pools, ``classifier`` (the global pooling is functional and has no module);
- a small ``Sequential`` CNN: input, its pools, its linear layers, and the output if a
  non-linear module (e.g. ``LogSoftmax``) follows the last linear layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules import conv, pooling

from .._validation import check_module
from .layers import INPUT, OUTPUT, resolve_layers
from .trace import ModuleTrace, trace_model

__all__ = [
    "checkpoints_from_trace",
    "default_checkpoints",
    "depths_from_trace",
    "relative_depth",
]

POOLS = (
    pooling._MaxPoolNd,
    pooling._AvgPoolNd,
    pooling._AdaptiveAvgPoolNd,
    pooling._AdaptiveMaxPoolNd,
    pooling._LPPoolNd,
)
ADAPTIVE = (pooling._AdaptiveAvgPoolNd, pooling._AdaptiveMaxPoolNd)
WEIGHTED = (conv._ConvNd, nn.Linear)


def _is_custom_block(module: nn.Module) -> bool:
    if module.__class__.__module__.startswith("torch.nn"):
        return False
    return any(isinstance(m, conv._ConvNd) for m in module.modules())


def _is_stage(module: nn.Module) -> bool:
    children = list(module.children())
    return bool(children) and all(_is_custom_block(c) for c in children)


def _is_checkpoint(module: nn.Module, name: str, trace: ModuleTrace) -> bool:
    if isinstance(module, ADAPTIVE):
        return trace.in_numel.get(name, 0) > math.prod(trace.shapes[name])
    return isinstance(module, (*POOLS, nn.Linear)) or _is_stage(module)


def _one_sample(example: torch.Tensor) -> torch.Tensor:
    """The first sample of an example batch, shape (1, ...)."""
    if not isinstance(example, torch.Tensor):
        raise TypeError(
            f"example must be an input batch, a tensor of shape (B, ...), got "
            f"{type(example).__name__}."
        )
    if example.ndim == 0 or len(example) == 0:
        raise ValueError(
            f"example must hold at least one sample, shape (B, ...) with B >= 1, got shape "
            f"{tuple(example.shape)}."
        )
    return example[:1]


def checkpoints_from_trace(model: nn.Module, trace: ModuleTrace) -> list[str]:
    """The default checkpoints (see the module docstring) from an existing trace."""
    found = [
        name
        for name, module in model.named_modules()
        if name and trace.ran(name) and _is_checkpoint(module, name, trace)
    ]
    found.sort(key=trace.position)
    names = [INPUT, *found]
    if names[-1] not in trace.output_modules and trace.ran(OUTPUT):  # not a dict output
        names.append(OUTPUT)
    return names


def default_checkpoints(model: nn.Module, example: torch.Tensor) -> list[str]:
    """The layers Ansuini et al. would measure, in execution order.

    Parameters
    ----------
    model : torch.nn.Module
    example : torch.Tensor, shape (B, ...)
        An input batch on the model's device (one sample suffices); the model is run on
        it once in eval mode to find which modules run and in what order.

    Returns
    -------
    list of str
        Starts with ``"input"``; ends with the module producing the output, or
        ``"output"``. The rules are in :mod:`interp_lib.profile.checkpoints`.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    ...                     nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> default_checkpoints(net, torch.zeros(1, 1, 8, 8))
    ['input', '2', '4', '6']
    """
    check_module(model)
    return checkpoints_from_trace(model, trace_model(model, _one_sample(example)))


def depths_from_trace(
    model: nn.Module, trace: ModuleTrace, layers: Iterable[str]
) -> dict[str, float]:
    """Relative depth of each layer name from an existing trace (NaN without conv/linear)."""
    weighted = {(n or OUTPUT) for n, m in model.named_modules() if isinstance(m, WEIGHTED)}
    is_weighted = [name in weighted for name in trace.events]
    total = sum(is_weighted)
    depths = {}
    for name in layers:
        if total == 0:
            depths[name] = math.nan
        elif name == INPUT:
            depths[name] = 0.0
        else:
            depths[name] = sum(is_weighted[: trace.position(name) + 1]) / total
    return depths


def relative_depth(
    model: nn.Module, example: torch.Tensor, layers: Iterable[str]
) -> dict[str, float]:
    """Relative depth of layers, as in Ansuini et al. (2019).

    The number of convolutional and linear layer calls completed when the layer's
    output is ready (the layer itself included), over their total in one forward pass.

    Parameters
    ----------
    model : torch.nn.Module
    example : torch.Tensor, shape (B, ...)
        An input batch (one sample suffices).
    layers : iterable of str
        Dotted names, ``"input"`` (depth 0) or ``"output"`` (depth 1).

    Returns
    -------
    dict str -> float
        Values in [0, 1]; NaN for every layer if the model has no conv/linear layer.
    """
    layers = list(resolve_layers(model, list(layers)))
    trace = trace_model(model, _one_sample(example))
    missing = [n for n in layers if n != INPUT and n not in trace.calls]
    if missing:
        raise ValueError(f"layers {missing} did not run in the forward pass of the model.")
    return depths_from_trace(model, trace, layers)
