"""The intrinsic dimension of every layer of any PyTorch model.

=================================  ===================================================
:func:`list_layers`                dotted names of a model's submodules
:func:`resolve_layer`              one layer (dotted name or module) -> its dotted name,
                                   with "did you mean ..." for unknown names
:func:`capture`                    context manager recording layer outputs (and, on
                                   request, their gradients); hooks are always removed,
                                   training flags restored
:func:`collect_activations`        ``{layer: (n_samples, features)}`` over a data set,
                                   with a memory budget
:func:`default_checkpoints`        input, pooling layers, residual/dense stages, linear
                                   layers, output (Ansuini et al., 2019)
:func:`relative_depth`             conv/linear layers before a checkpoint over the total
:func:`layer_ids`                  ID per layer -> :class:`LayerProfile`
=================================  ===================================================

Layers are named as in ``model.named_modules()``, plus the pseudo-layers ``"input"`` and
``"output"``.
"""

from __future__ import annotations

from .activations import ActivationCollector, collect_activations
from .capture import Captured, capture
from .checkpoints import default_checkpoints, relative_depth
from .layer_ids import LayerProfile, layer_ids
from .layers import get_layer, list_layers, resolve_layer, resolve_layers
from .trace import ModuleTrace, trace_model

__all__ = [
    "ActivationCollector",
    "Captured",
    "LayerProfile",
    "ModuleTrace",
    "capture",
    "collect_activations",
    "default_checkpoints",
    "get_layer",
    "layer_ids",
    "list_layers",
    "relative_depth",
    "resolve_layer",
    "resolve_layers",
    "trace_model",
]
