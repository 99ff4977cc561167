"""One model builder: a network from a spec string, with optional weights."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from .weights import WeightsLike, load_weights, resolve_weights

__all__ = ["build"]


def build(spec: str, weights: WeightsLike = None, **kwargs: Any) -> nn.Module:
    """A network from a torchvision name or ``module:factory``, with optional weights.

    Parameters
    ----------
    spec : str
        ``"vgg16"`` (any name of ``torchvision.models.list_models()``, built with
        ``weights=None``: nothing is downloaded) or ``"package.module:function"``, e.g.
        ``"interp_lib.networks:cnn_classifier"``.
    weights : str or path, optional
        A state dict, or a dict holding one under ``"state_dict"`` or ``"model"``, loaded
        by :func:`interp_lib.networks.load_weights` (``weights_only=True``, exact fit, a
        ``module.`` prefix left by ``DataParallel`` removed). For a torchvision ``spec``
        also the name of its torchvision weights (``"IMAGENET1K_V1"``) if the file is in
        the torch hub cache (:func:`interp_lib.networks.resolve_weights`).
    **kwargs
        Keyword arguments of the factory (e.g. ``num_classes`` for torchvision).

    Returns
    -------
    torch.nn.Module
        In eval mode.

    Raises
    ------
    ValueError
        Unknown model name, a factory that does not return a module, weights that do not
        fit the model.
    FileNotFoundError
        Missing weights file.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str, got {type(spec).__name__}.")
    arch = None
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"cannot import the model factory {spec!r} ({exc}). Give 'module:function' "
                "with the module importable from here (e.g. on PYTHONPATH)."
            ) from exc
        model = factory(**kwargs)
    else:
        import torchvision

        names = torchvision.models.list_models()
        if spec not in names:
            import difflib

            close = difflib.get_close_matches(spec, names, n=3)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"{spec!r} is not a torchvision model name.{hint} Give a name of "
                "torchvision.models.list_models() or 'module:factory'."
            )
        model = torchvision.models.get_model(spec, weights=None, **kwargs)
        arch = spec
    if not isinstance(model, nn.Module):
        raise ValueError(f"{spec!r} returned a {type(model).__name__}, not a torch.nn.Module.")
    if weights is not None:
        load_weights(model, resolve_weights(weights, arch))
    return model.eval()
