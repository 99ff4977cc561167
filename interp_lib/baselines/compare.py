"""Run several explanation methods over a dataset and score them on the same footing."""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._plumbing import check_device, require, unpack_batch
from .._plumbing import progress as _progress
from ..profile.layers import resolve_layer
from ..protopnet.model import is_protopnet
from ._utils import without_inplace
from .attribution import attribute
from .methods import Method, get_method
from .metrics import deletion, energy_in_mask, insertion, pointing_game

__all__ = ["METRICS", "ComparisonResult", "compare", "summarize"]

METRICS = ("deletion", "insertion", "pointing_game", "energy_in_mask", "seconds")
COLUMNS = ("model", "method", "index", "metric", "value")


@dataclass
class ComparisonResult:
    """What :func:`compare` returns: one tidy record per image, method and metric.

    Attributes
    ----------
    records : list of dict
        Rows ``{"model", "method", "index", "metric", "value"}`` (``index`` counts images
        over the whole dataset; NaN values, e.g. the pointing game on an empty mask, are
        kept).
    skipped : list of (model, method, reason)
        Method labels that did not run on a model (a prototype method on a CNN, a layer
        method without a layer).
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def to_pandas(self) -> Any:
        """The records as a ``pandas.DataFrame`` with columns ``model, method, index,
        metric, value`` (needs pandas: ``pip install "interp_lib[viz]"``)."""
        pd = require("pandas", "ComparisonResult.to_pandas")
        return pd.DataFrame.from_records(self.records, columns=list(COLUMNS))

    def summary(self) -> list[dict[str, Any]]:
        """Mean and standard deviation per model, method and metric, NaNs ignored.

        Returns
        -------
        list of dict
            Rows ``model, method, metric, mean, std, n`` in first-seen order (``std`` is
            the sample standard deviation, NaN for one value). :func:`summarize` gives the
            same numbers as a wide ``DataFrame``.
        """
        groups: dict[tuple[str, str, str], list[float]] = {}
        for r in self.records:
            key = (r["model"], r["method"], r["metric"])
            vals = groups.setdefault(key, [])
            if not math.isnan(r["value"]):
                vals.append(r["value"])
        rows = []
        for (model, method, metric), vals in groups.items():
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "metric": metric,
                    "mean": statistics.fmean(vals) if vals else math.nan,
                    "std": statistics.stdev(vals) if len(vals) > 1 else math.nan,
                    "n": len(vals),
                }
            )
        return rows


def _object_mask(masks: torch.Tensor | None) -> torch.Tensor | None:
    """Part masks ``(B, J, H, W)`` -> the object (their union); object masks as given."""
    if masks is not None and masks.ndim == 4 and masks.shape[1] > 1:
        return masks.bool().any(1)
    return masks


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
) -> ComparisonResult:
    """Explain every image with every method and score each map.

    Parameters
    ----------
    models : nn.Module or {name: nn.Module}
        Classifiers in eval mode. Prototype methods run only on ProtoPNets (others skip
        them with one warning); layer methods need a layer for that model.
    data : iterable of batches
        ``(images (B, C, H, W), labels (B,)[, masks])`` tuples, dicts with ``image``,
        ``label`` and ``mask``/``part_masks`` keys, or a ``DataLoader`` of either
        (``interp_lib._plumbing.unpack_batch``). Masks ``(B, H, W)`` or part masks
        ``(B, J, H, W)`` (their union is the object) enable the pointing game and the
        energy inside the mask.
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
        Must agree with each model's device (the library's device policy,
        ``interp_lib._plumbing.check_device``); default each model's own device.
    progress : bool
        Show a progress bar over batches.

    Returns
    -------
    ComparisonResult
        Tidy records ``model, method, index, metric, value`` (one per image, method and
        metric): ``.records``, ``.to_pandas()``, ``.summary()``; see also
        :func:`summarize`.
    """
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
        specs.append((kw.pop("label", name), get_method(name), kw))
    # One copy without in-place ops per model, so attribute() does not copy per batch.
    layer_of: dict[str, str | None] = {}
    for k, m in models.items():
        lay = layers.get(k) if isinstance(layers, Mapping) else layers
        layer_of[k] = None if lay is None else resolve_layer(m, lay, pseudo=False)
    devices = {k: check_device(m, device) for k, m in models.items()}
    work = {k: without_inplace(m) for k, m in models.items()}
    result = ComparisonResult()
    offset = 0
    for batch in _progress(data, progress, "compare"):
        b = unpack_batch(batch)
        x, y, masks = b.x, b.y, _object_mask(b.masks)
        for mname, model in work.items():
            dev = devices[mname]
            xb = x.to(dev)
            layer = layer_of[mname]
            tgt = None
            if target == "label":
                if y is None:
                    raise ValueError("target='label' needs batches with labels.")
                tgt = torch.as_tensor(y, device=dev)
            for label, method, kw in specs:
                why = _cannot_run(method, model, layer)
                if why is not None:
                    if not any(s[:2] == (mname, label) for s in result.skipped):
                        warnings.warn(
                            f"skipping {label!r} on {mname!r}: the model {why}.", stacklevel=2
                        )
                        result.skipped.append((mname, label, why))
                    continue
                start = time.perf_counter()
                layer_kw = {"layer": layer} if method.needs_layer else {}
                sal = attribute(model, xb, tgt, method=method.name, **layer_kw, **kw)
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
                        result.records.append(
                            dict(zip(COLUMNS, (mname, label, offset + i, metric, v), strict=True))
                        )
        offset += len(x)
    return result


def _cannot_run(method: Method, model: nn.Module, layer: str | None) -> str | None:
    """Why ``method`` cannot run on ``model`` (``None`` when it can)."""
    if method.needs_protopnet and not is_protopnet(model):
        return "is not a ProtoPNet"
    if method.needs_layer and layer is None:
        return "has no layer in layers="
    return None


def summarize(result: ComparisonResult) -> Any:
    """Mean and standard deviation per model, method and metric (NaNs ignored), wide.

    Parameters
    ----------
    result : ComparisonResult
        The output of :func:`compare`.

    Returns
    -------
    pandas.DataFrame
        Index ``(model, method)``, columns ``(metric, mean|std)``. Needs pandas
        (``pip install "interp_lib[viz]"``); :meth:`ComparisonResult.summary` gives the
        same numbers as plain rows.
    """
    if not isinstance(result, ComparisonResult):
        raise TypeError(
            f"summarize takes the ComparisonResult of compare(), got {type(result).__name__}."
        )
    df = result.to_pandas()
    out = df.groupby(["model", "method", "metric"], sort=False)["value"].agg(["mean", "std"])
    return out.unstack("metric").swaplevel(0, 1, axis=1).sort_index(axis=1, level=0)
