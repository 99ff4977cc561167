"""Layer names: discover them, and resolve what a user asks for.

Layers are addressed by their dotted module names, as in ``model.named_modules()`` and
torchvision's ``return_nodes`` (``"features.4"``, ``"layer2.1.conv1"``). Two pseudo-layers
are understood everywhere in :mod:`interp_lib.profile`:

- ``"input"``: the tensor handed to the model (its first positional argument);
- ``"output"``: what the model returns (the first tensor of a tuple output).

A pseudo-layer name wins over a submodule that happens to be called ``input``/``output``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from torch import nn

__all__ = ["INPUT", "OUTPUT", "PSEUDO_LAYERS", "check_module", "list_layers", "resolve_layers"]

INPUT = "input"
OUTPUT = "output"
PSEUDO_LAYERS = (INPUT, OUTPUT)


def check_module(model: object, name: str = "model") -> nn.Module:
    """Raise ``TypeError`` unless ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"{name} must be a torch.nn.Module, got {type(model).__name__}. "
            "Pass the network itself (e.g. torchvision.models.resnet18()), not its "
            "state_dict or a function that builds it."
        )
    return model


def list_layers(model: nn.Module, types: type | tuple[type, ...] | None = None) -> list[str]:
    """The dotted names of a model's submodules, in registration order.

    Parameters
    ----------
    model : torch.nn.Module
    types : type or tuple of types, optional
        Keep only modules that are instances of these classes, e.g.
        ``(torch.nn.Conv2d, torch.nn.Linear)`` or ``torch.nn.MaxPool2d``.

    Returns
    -------
    list of str
        Names accepted by :func:`capture`, :func:`collect_activations` and
        :func:`layer_ids` (the pseudo-layers ``"input"`` and ``"output"`` are not listed).

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    >>> list_layers(net)
    ['0', '1', '2', '3']
    >>> list_layers(net, types=nn.Conv2d)
    ['0']
    """
    check_module(model)
    if types is not None:
        classes = types if isinstance(types, tuple) else (types,)
        if not classes or not all(isinstance(t, type) for t in classes):
            raise TypeError(
                f"types must be a class or a tuple of classes, got {types!r}. "
                "Example: types=(torch.nn.Conv2d, torch.nn.Linear)."
            )
    return [
        name
        for name, module in model.named_modules()
        if name and (types is None or isinstance(module, types))
    ]


def _unknown(name: str, known: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"the model has no layer named {name!r}.{hint} "
        "See interp_lib.profile.list_layers(model) for the valid names, plus the "
        "pseudo-layers 'input' and 'output'."
    )


def resolve_layers(
    model: nn.Module, layers: str | Sequence[str] | Mapping[str, str]
) -> dict[str, str]:
    """Validate requested layers and return ``{dotted name: alias}`` in the given order.

    Parameters
    ----------
    model : torch.nn.Module
    layers : str, sequence of str, or mapping str -> str
        Dotted names (the alias is the name itself), or ``{name: alias}``.

    Raises
    ------
    TypeError
        If ``layers`` is not a string, a sequence of strings or a mapping of strings.
    ValueError
        Empty selection, a repeated name or alias, or an unknown name (with the closest
        valid names suggested).
    """
    check_module(model)
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, Mapping):
        pairs = list(layers.items())
    elif isinstance(layers, Sequence):
        pairs = [(name, name) for name in layers]
    else:
        raise TypeError(
            f"layers must be a list of dotted module names or a {{name: alias}} dict, "
            f"got {type(layers).__name__}."
        )
    if not pairs:
        raise ValueError(
            "layers is empty. Pass at least one name, e.g. ['input', 'output'], or see "
            "list_layers(model)."
        )
    modules = dict(model.named_modules())
    known = [*PSEUDO_LAYERS, *(n for n in modules if n)]
    spec: dict[str, str] = {}
    for name, alias in pairs:
        if not isinstance(name, str) or not isinstance(alias, str):
            raise TypeError(f"layer names and aliases must be strings, got {name!r}: {alias!r}.")
        if name in spec:
            raise ValueError(f"layer {name!r} is requested twice.")
        if name not in PSEUDO_LAYERS and (name == "" or name not in modules):
            raise _unknown(name, known)
        spec[name] = alias
    aliases = list(spec.values())
    repeated = sorted({a for a in aliases if aliases.count(a) > 1})
    if repeated:
        raise ValueError(f"aliases must be unique, got {repeated} more than once.")
    return spec
