"""Run several explanation methods over a dataset and score them on the same footing."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._utils import layer_name, without_inplace
from .attribution import METHODS, attribute
from .metrics import deletion, energy_in_mask, insertion, pointing_game

METRICS = ("deletion", "insertion", "pointing_game", "energy_in_mask", "seconds")
_PROTO = ("prototype", "prototype_box")
_LAYER = ("grad_cam", "guided_grad_cam", "cam")


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(x, y[, masks, ...])`` tuples or dicts with image/label/mask(s) keys."""
    if isinstance(batch, Mapping):
        x = batch.get("image", batch.get("images", batch.get("x")))
        y = batch.get("label", batch.get("labels", batch.get("y")))
        m = next((batch[k] for k in ("mask", "masks", "part_masks") if k in batch), None)
    elif isinstance(batch, (tuple, list)):
        x = batch[0]
        y = batch[1] if len(batch) > 1 else None
        m = batch[2] if len(batch) > 2 else None
    else:
        x, y, m = batch, None, None
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            "each batch must be a tensor, an (images, labels[, masks]) tuple or a dict with "
            f"an 'image' key; got {type(batch).__name__}."
        )
    if m is not None and m.ndim == 4 and m.shape[1] > 1:
        m = m.bool().any(1)  # part masks -> object mask (union of parts)
    return x, y, m


def _records_to_table(records: list[dict[str, Any]]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        return records
    return pd.DataFrame.from_records(
        records, columns=["model", "method", "index", "metric", "value"]
    )


def compare(
    models: nn.Module | Mapping[str, nn.Module],
    data: Iterable[Any],
    methods: Sequence[str | tuple[str, dict[str, Any]]],
    *,
    layers: nn.Module | str | Mapping[str, nn.Module | str | None] | None = None,
    metrics: Sequence[str] = METRICS,
    target: str = "predicted",
    step: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> Any:
    """Explain every image with every method and score each map.

    Parameters
    ----------
    models : nn.Module or {name: nn.Module}
        Classifiers in eval mode. Prototype methods run only on ProtoPNets (others skip
        them with one warning); layer methods need a layer for that model.
    data : iterable of batches
        ``(images (B, C, H, W), labels (B,)[, masks])`` tuples, dicts with ``image``,
        ``label`` and ``mask``/``part_masks`` keys, or a ``DataLoader`` of either.
        Masks ``(B, H, W)`` or part masks ``(B, J, H, W)`` (their union is the object)
        enable the pointing game and the energy inside the mask.
    methods : sequence of str or (str, kwargs)
        Names from :data:`interp_lib.baselines.METHODS`, optionally with keyword arguments for
        :func:`attribute` (e.g. ``("integrated_gradients", {"n_steps": 32})``). A label
        can be given as ``{"label": "ig32"}`` inside kwargs.
    layers : module, dotted name, or {model name: layer}
        The layer used by Grad-CAM, guided Grad-CAM and CAM.
    metrics : sequence of str
        Any of ``deletion``, ``insertion`` (AUCs), ``pointing_game``, ``energy_in_mask``,
        ``seconds`` (attribution time per image).
    target : {"predicted", "label"}
        Explain (and track in deletion/insertion) the predicted class or the true label.
    step : int, optional
        Pixels per deletion/insertion step (default: image width).
    device : torch.device or str, optional
        Where to run; default the first model parameter's device.
    progress : bool
        Show a progress bar over batches.

    Returns
    -------
    pandas.DataFrame or list of dict
        Tidy rows ``model, method, index, metric, value`` (one per image, method and
        metric); a list of dicts when pandas is missing. See :func:`summarize`.
    """
    from tqdm.auto import tqdm

    if isinstance(models, nn.Module):
        models = {"model": models}
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid metrics are {list(METRICS)}.")
    if target not in ("predicted", "label"):
        raise ValueError(f"target must be 'predicted' or 'label', got {target!r}.")
    specs = []
    for spec in methods:
        name, kw = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; valid methods are {sorted(METHODS)}.")
        specs.append((kw.pop("label", name), name, kw))
    # One copy without in-place ops per model, so attribute() does not copy per batch.
    layer_of: dict[str, nn.Module | str | None] = {}
    for k, m in models.items():
        lay = layers.get(k) if isinstance(layers, Mapping) else layers
        layer_of[k] = layer_name(m, lay) if isinstance(lay, nn.Module) else lay
    work = {k: without_inplace(m) for k, m in models.items()}
    records: list[dict[str, Any]] = []
    skipped: set[tuple[str, str]] = set()
    offset = 0
    for batch in tqdm(data, desc="compare", disable=not progress):
        x, y, masks = _unpack(batch)
        for mname, model in work.items():
            dev = device or next(model.parameters()).device
            xb = x.to(dev)
            layer = layer_of[mname]
            tgt = None
            if target == "label":
                if y is None:
                    raise ValueError("target='label' needs batches with labels.")
                tgt = torch.as_tensor(y, device=dev)
            for label, name, kw in specs:
                is_proto = hasattr(model, "forward_all")
                if (name in _PROTO and not is_proto) or (name in _LAYER and layer is None):
                    if (mname, label) not in skipped:
                        why = "is not a ProtoPNet" if name in _PROTO else "has no layer in layers="
                        warnings.warn(
                            f"skipping {label!r} on {mname!r}: the model {why}.", stacklevel=2
                        )
                        skipped.add((mname, label))
                    continue
                start = time.perf_counter()
                layer_kw = {"layer": layer} if name in _LAYER else {}
                sal = attribute(model, xb, tgt, method=name, **layer_kw, **kw)
                if sal.device.type == "cuda":
                    torch.cuda.synchronize(sal.device)
                per_image = (time.perf_counter() - start) / len(xb)
                values: dict[str, torch.Tensor] = {}
                if "deletion" in metrics:
                    values["deletion"] = deletion(model, xb, sal, tgt, step=step).auc
                if "insertion" in metrics:
                    values["insertion"] = insertion(model, xb, sal, tgt, step=step).auc
                if masks is not None and "pointing_game" in metrics:
                    values["pointing_game"] = pointing_game(sal, masks.to(dev))
                if masks is not None and "energy_in_mask" in metrics:
                    values["energy_in_mask"] = energy_in_mask(sal, masks.to(dev))
                if "seconds" in metrics:
                    values["seconds"] = torch.full((len(xb),), per_image)
                for metric, vals in values.items():
                    for i, v in enumerate(vals.tolist()):
                        records.append(
                            {
                                "model": mname,
                                "method": label,
                                "index": offset + i,
                                "metric": metric,
                                "value": v,
                            }
                        )
        offset += len(x)
    return _records_to_table(records)


def summarize(table: Any) -> Any:
    """Mean and standard deviation per model, method and metric (NaNs ignored).

    Parameters
    ----------
    table : pandas.DataFrame or list of dict
        The output of :func:`compare`.

    Returns
    -------
    pandas.DataFrame or list of dict
        With pandas: index ``(model, method)``, columns ``(metric, mean|std)``. Without:
        rows ``model, method, metric, mean, std, n``.
    """
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        df = table if isinstance(table, pd.DataFrame) else pd.DataFrame.from_records(table)
        out = df.groupby(["model", "method", "metric"], sort=False)["value"].agg(["mean", "std"])
        return out.unstack("metric").swaplevel(0, 1, axis=1).sort_index(axis=1, level=0)
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in table:
        if r["value"] == r["value"]:  # drop NaN
            groups.setdefault((r["model"], r["method"], r["metric"]), []).append(r["value"])
    rows = []
    for (model, method, metric), vals in groups.items():
        t = torch.tensor(vals, dtype=torch.float64)
        std = float(t.std()) if len(vals) > 1 else float("nan")
        rows.append(
            {
                "model": model,
                "method": method,
                "metric": metric,
                "mean": float(t.mean()),
                "std": std,
                "n": len(vals),
            }
        )
    return rows
