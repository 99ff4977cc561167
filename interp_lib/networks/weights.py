"""One weight loader: state dicts from files, fitted to a model.

Every network of interp_lib that takes weights from disk goes through here: the profile
command line (``--weights``), :func:`interp_lib.networks.build` and the ProtoPNet trunks
(:func:`interp_lib.networks.build_backbone`). Files are read with
``torch.load(weights_only=True)`` (no pickled code runs), and nothing is ever downloaded:
a torchvision weight name (``"IMAGENET1K_V1"``, ``"DEFAULT"``) is looked up in the torch
hub cache only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

__all__ = ["load_weights", "read_weights", "resettable_layers", "resolve_weights"]

#: A weights argument: a path to a state-dict file, a torchvision weight name (for
#: torchvision architectures), or ``None`` (keep the random initial weights).
WeightsLike = str | os.PathLike | None

# the key names of torchvision's DenseNet before 0.3 ("norm.1" for "norm1"), which
# torchvision itself renames when it loads a DenseNet state dict
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _hub_file(arch: str, name: str) -> Path:
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    try:
        entry = enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(
            f"{arch} has no torchvision weights named {name!r}; choose one of "
            f"{[w.name for w in enum]} or pass a local state-dict path."
        ) from None
    filename = os.path.basename(urlparse(entry.url).path)
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"the {arch} weights {entry} are not in the torch hub cache ({path}). "
            "interp_lib never downloads: fetch the file yourself (e.g. "
            f"torchvision.models.{arch}(weights='{entry.name}') on a machine with "
            "internet) and copy it there, or pass weights=<path to a state dict>."
        )
    return path


def resolve_weights(weights: str | os.PathLike, arch: str | None = None) -> Path:
    """The file that a weights argument names.

    Parameters
    ----------
    weights : str or path
        A path to a state-dict file; or, when ``arch`` is a torchvision model name, the
        name of one of its torchvision weights (``"IMAGENET1K_V1"``, ``"DEFAULT"``) whose
        file is already in ``torch.hub.get_dir()/checkpoints``. A string with a path
        separator, a ``.pt`` / ``.pth`` suffix, or naming an existing file is a path.
    arch : str, optional
        The torchvision architecture the weights are for (``None``: ``weights`` is a path).

    Returns
    -------
    pathlib.Path
        An existing file.

    Raises
    ------
    FileNotFoundError
        The file does not exist, or the named torchvision weights are not in the hub cache
        (they are never downloaded).
    ValueError
        ``arch`` has no torchvision weights of that name.
    """
    text = os.fspath(weights)
    looks_like_path = os.sep in text or text.endswith((".pt", ".pth")) or os.path.exists(text)
    path = Path(text) if looks_like_path or arch is None else _hub_file(arch, text)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist.")
    return path


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict saved in a file.

    Parameters
    ----------
    path : str or path
        A file written by ``torch.save``: a state dict, or a checkpoint dict holding one
        under ``"state_dict"`` or ``"model"``. Read with ``torch.load(weights_only=True)``
        onto the CPU; a ``module.`` prefix on every key (left by ``DataParallel`` /
        ``DistributedDataParallel``) is removed.

    Returns
    -------
    dict of str to torch.Tensor

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(
            f"{str(path)!r} does not hold a state dict (got {type(state).__name__}); save "
            "the weights with torch.save(model.state_dict(), path)."
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _fitted_keys(state: Mapping[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    """Rename old DenseNet keys that the model knows under their new name."""
    out = {}
    for key, value in state.items():
        if key not in wanted and (m := _OLD_DENSENET_KEY.match(key)):
            if (new := m.group(1) + m.group(2)) in wanted:
                key = new
        out[key] = value
    return out


def load_weights(
    model: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor]
) -> nn.Module:
    """Load weights into ``model``, requiring an exact fit.

    Parameters
    ----------
    model : torch.nn.Module
        Changed in place.
    weights : path or mapping of str to torch.Tensor
        A state-dict file (read by :func:`read_weights`) or a state dict. Old torchvision
        DenseNet key names (``norm.1``) are renamed where the model has the new name
        (``norm1``), as torchvision does.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    FileNotFoundError
        Missing weights file.
    ValueError
        The weights do not fit the model: missing or unexpected keys, or a tensor of
        another shape (the first few are named).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    where = ""
    if isinstance(weights, Mapping):
        state = dict(weights)
    else:
        state = read_weights(weights)
        where = f" in {os.fspath(weights)!r}"
    state = _fitted_keys(state, set(model.state_dict()))
    hint = "Check the architecture and its arguments (e.g. num_classes)."
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        reason = " ".join(str(exc).split())  # one line
        raise ValueError(f"the weights{where} do not fit the model: {reason} {hint}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"the weights{where} do not fit the model: missing keys "
            f"{result.missing_keys[:5]}, unexpected keys {result.unexpected_keys[:5]}. {hint}"
        )
    return model


def resettable_layers(model: nn.Module) -> list[str]:
    """The layers that can draw fresh weights, last registered first.

    Every submodule with a ``reset_parameters`` method and parameters of its own, in
    reverse registration order (Quantus' ``top_down``): the order in which
    :func:`interp_lib.baselines.model_randomisation` and
    :func:`interp_lib.protopnet.untrained_protopnet` re-initialise a network.

    Returns
    -------
    list of str
        Module names as in ``model.named_modules()``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    names = [
        name
        for name, m in model.named_modules()
        if callable(getattr(m, "reset_parameters", None))
        and any(True for _ in m.parameters(recurse=False))
    ]
    names.reverse()
    return names
