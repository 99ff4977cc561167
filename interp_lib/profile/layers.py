"""Layer names: discover them, and resolve what a user asks for.

Layers are addressed by their dotted module names, as in ``model.named_modules()`` and
torchvision's ``return_nodes`` (``"features.4"``, ``"layer2.1.conv1"``), or by the module
object itself (``model.features[4]``). Two pseudo-layers are understood everywhere in
:mod:`interp_lib.profile`:

- ``"input"``: the tensor handed to the model (its first positional argument);
- ``"output"``: what the model returns (the first tensor of a tuple output).

A pseudo-layer name wins over a submodule that happens to be called ``input``/``output``.

This module is the library's one layer resolver: :func:`resolve_layer` (one layer) and
:func:`resolve_layers` (a selection) are used by :mod:`interp_lib.profile` and
:mod:`interp_lib.baselines` alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from torch import nn

from .._validation import check_module

__all__ = [
    "INPUT",
    "OUTPUT",
    "PSEUDO_LAYERS",
    "LayerRef",
    "get_layer",
    "list_layers",
    "resolve_layer",
    "resolve_layers",
]

INPUT = "input"
OUTPUT = "output"
PSEUDO_LAYERS = (INPUT, OUTPUT)

#: One layer: its dotted name (or a pseudo-layer) or the submodule object itself.
LayerRef = str | nn.Module


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


def _unknown(name: str, known: list[str], pseudo: bool = True) -> ValueError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?"
    else:
        shown = ", ".join(repr(k) for k in known[:8])
        more = f", ... ({len(known)} in all)" if len(known) > 8 else ""
        hint = f" Valid names: {shown}{more}." if known else " The model has no submodules."
    extra = ", plus the pseudo-layers 'input' and 'output'" if pseudo else ""
    return ValueError(
        f"the model has no layer named {name!r}.{hint} "
        f"See interp_lib.profile.list_layers(model) for the valid names{extra}."
    )


def _module_name(model: nn.Module, module: nn.Module) -> str:
    """The dotted name of a submodule object (the model itself is ``"output"``)."""
    if module is model:
        return OUTPUT
    for name, m in model.named_modules():
        if m is module:
            return name
    same = [n for n, m in model.named_modules() if n and type(m) is type(module)]
    hint = f" The model's {type(module).__name__} layers are {same[:6]}." if same else ""
    raise ValueError(
        f"layer {type(module).__name__} is not a submodule of the model.{hint} If it "
        "belongs to a copy of the model, pass its dotted name instead (see "
        "interp_lib.profile.list_layers(model))."
    )


def resolve_layer(model: nn.Module, layer: LayerRef, *, pseudo: bool = True) -> str:
    """The dotted name of one layer, given by name or by module object.

    Parameters
    ----------
    model : torch.nn.Module
    layer : str or torch.nn.Module
        A dotted name as printed by :func:`list_layers` (``"features.4"``), a pseudo-layer
        (``"input"``, ``"output"``) or a submodule of ``model``. The model itself
        resolves to ``"output"``.
    pseudo : bool, default True
        Accept the pseudo-layers. With ``False`` only real submodules are valid (e.g. a
        layer whose gradient is needed).

    Returns
    -------
    str
        The canonical dotted name; look the module up with :func:`get_layer`.

    Raises
    ------
    TypeError
        ``model`` is not a module, or ``layer`` is neither a string nor a module.
    ValueError
        Unknown name (the closest valid names are suggested), or a module that is not
        part of ``model``.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> resolve_layer(net, net[2]), resolve_layer(net, "0")
    ('2', '0')
    """
    check_module(model)
    if isinstance(layer, nn.Module):
        name = _module_name(model, layer)
        if pseudo or name != OUTPUT:
            return name
        raise ValueError(
            "layer is the model itself; pass one of its submodules (see list_layers(model))."
        )
    if not isinstance(layer, str):
        raise TypeError(
            f"a layer must be a dotted module name (str) or a submodule of the model, got "
            f"{type(layer).__name__}. See interp_lib.profile.list_layers(model)."
        )
    if pseudo and layer in PSEUDO_LAYERS:
        return layer
    names = [n for n, _ in model.named_modules() if n]
    if layer in names:
        return layer
    aliases = {n: m for n, m in model.named_modules(remove_duplicate=False) if n}
    if layer in aliases:  # a second name of a module (``self.head = self.body[2]``)
        return _module_name(model, aliases[layer])
    raise _unknown(layer, [*PSEUDO_LAYERS, *names] if pseudo else names, pseudo)


def get_layer(model: nn.Module, layer: LayerRef) -> nn.Module:
    """The module of one layer (for ``"input"``/``"output"``: the model itself)."""
    name = resolve_layer(model, layer)
    return model if name in PSEUDO_LAYERS else model.get_submodule(name)


def resolve_layers(
    model: nn.Module,
    layers: LayerRef | Sequence[LayerRef] | Mapping[LayerRef, str],
) -> dict[str, str]:
    """Validate requested layers and return ``{dotted name: alias}`` in the given order.

    Parameters
    ----------
    model : torch.nn.Module
    layers : str, module, sequence of them, or mapping of them -> str
        Dotted names or submodules (the alias is the dotted name), or ``{layer: alias}``.

    Raises
    ------
    TypeError
        If ``layers`` is not a string, module, sequence or mapping of them.
    ValueError
        Empty selection, a repeated layer or alias, or an unknown name (with the closest
        valid names suggested).
    """
    check_module(model)
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    if isinstance(layers, Mapping):
        pairs = list(layers.items())
    elif isinstance(layers, Sequence):
        pairs = [(layer, None) for layer in layers]
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
    spec: dict[str, str] = {}
    for layer, alias in pairs:
        if not isinstance(layer, (str, nn.Module)) or not isinstance(alias, (str, type(None))):
            raise TypeError(
                f"layer names and aliases must be strings (or modules), got {layer!r}: {alias!r}."
            )
        name = resolve_layer(model, layer)
        if name in spec:
            raise ValueError(
                f"layer {name!r} is requested twice"
                + (f" ({layer!r} is another name of it)." if layer != name else ".")
            )
        if alias is None:  # the name the caller used (a second name of a module stays)
            alias = layer if isinstance(layer, str) else name
        spec[name] = alias
    aliases = list(spec.values())
    repeated = sorted({a for a in aliases if aliases.count(a) > 1})
    if repeated:
        raise ValueError(f"aliases must be unique, got {repeated} more than once.")
    return spec
