"""Networks: the architectures of interp_lib, one model builder and one weight loader.

=====================================  =================================================
:func:`build`                          a network from a torchvision name or
                                       ``module:factory``, with optional weights
:func:`load_weights`                   a state-dict file (or dict) into a model, exact fit
:func:`read_weights`                   the state dict in a file (``weights_only=True``)
:func:`resolve_weights`                a path, or a torchvision weight name in the hub cache
=====================================  =================================================
"""

from .factory import build
from .weights import WeightsLike, load_weights, read_weights, resolve_weights

__all__ = ["WeightsLike", "build", "load_weights", "read_weights", "resolve_weights"]
