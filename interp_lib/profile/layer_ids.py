"""The intrinsic dimension of every checkpoint of a network: :func:`layer_ids`.

Activations are collected group by group (see :func:`collect_activations`) and each
layer's estimate is computed, then its activations are freed, so peak memory is one group
of layers plus the estimator's working memory.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._plumbing import progress as progress_bar
from .._plumbing import require
from .._validation import check_fraction, check_int, make_generator
from .activations import ActivationCollector, Layers
from .checkpoints import depths_from_trace

__all__ = ["LayerProfile", "layer_ids"]

Estimator = str | Callable[[torch.Tensor], Any]
ESTIMATORS = ("twonn", "mle", "pca")


@dataclass(frozen=True)
class LayerProfile:
    """Intrinsic dimension per layer, in layer (execution) order.

    Attributes
    ----------
    layers : tuple of str
        Layer names (the aliases when a ``{name: alias}`` dict was given).
    modules : tuple of str
        The dotted module names (or ``"input"``/``"output"``).
    dimensions : tuple of float
        The estimate on all ``n_samples`` points.
    errors : tuple of float
        Standard deviation of the estimate over ``n_resamples`` random subsamples of
        ``subsample * n_samples`` points (NaN when ``n_resamples < 2``).
    n_features : tuple of int
        Embedding dimension: the width of each flattened representation.
    relative_depth : tuple of float
        Conv/linear layers up to the checkpoint over their total (input 0, output 1).
    resamples : tuple of tuple of float
        The subsample estimates behind each error bar. Ansuini et al. report their mean.
    estimator : str
    n_samples : int
    label : str, optional
        A name for the profile, used as legend by :meth:`plot`.
    """

    layers: tuple[str, ...]
    modules: tuple[str, ...]
    dimensions: tuple[float, ...]
    errors: tuple[float, ...]
    n_features: tuple[int, ...]
    relative_depth: tuple[float, ...]
    resamples: tuple[tuple[float, ...], ...] = field(repr=False)
    estimator: str = "twonn"
    n_samples: int = 0
    label: str | None = None

    def __len__(self) -> int:
        return len(self.layers)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per layer: layer, module, dimension, error, n_features, relative_depth."""
        return [
            {
                "layer": layer,
                "module": module,
                "dimension": dim,
                "error": err,
                "n_features": width,
                "relative_depth": depth,
            }
            for layer, module, dim, err, width, depth in zip(
                self.layers,
                self.modules,
                self.dimensions,
                self.errors,
                self.n_features,
                self.relative_depth,
                strict=True,
            )
        ]

    def to_dict(self) -> dict[str, list]:
        """Columns ``{field: [values in layer order]}`` (same fields as :meth:`to_records`)."""
        records = self.to_records()
        return {key: [r[key] for r in records] for key in records[0]}

    def to_pandas(self):
        """A ``pandas.DataFrame`` with one row per layer, indexed by layer name.

        Raises
        ------
        ModuleNotFoundError
            Without pandas, naming ``pip install "interp_lib[viz]"`` (or use
            :meth:`to_records` / :meth:`to_dict`).
        """
        pd = require("pandas", "LayerProfile.to_pandas")
        return pd.DataFrame(self.to_records()).set_index("layer")

    def plot(self, ax=None, **kwargs):
        """ID against relative depth with error bars: :func:`interp_lib.viz.plot_profile`.

        ``interp_lib.viz`` is imported here, not by :mod:`interp_lib.profile`. Without
        matplotlib: ``ModuleNotFoundError`` naming ``pip install "interp_lib[viz]"``.
        """
        require("matplotlib.pyplot", "LayerProfile.plot")
        from ..viz.profile import plot_profile

        return plot_profile(self, ax=ax, **kwargs)


def _twonn(method: str, kwargs: dict) -> Callable:
    from ..id import twonn

    def run(X: torch.Tensor, n_resamples: int, subsample: float, seed: int) -> tuple:
        result = twonn(
            X, method=method, n_resamples=n_resamples, subsample=subsample, seed=seed, **kwargs
        )
        values = () if result.resamples is None else tuple(result.resamples.tolist())
        return result.dimension, values

    return run


def _generic(fn: Callable[[torch.Tensor], Any]) -> Callable:
    def value(X: torch.Tensor) -> float:
        out = fn(X)
        return float(getattr(out, "dimension", out))

    def run(X: torch.Tensor, n_resamples: int, subsample: float, seed: int) -> tuple:
        from ..id import subsample_estimates

        values = subsample_estimates(
            X, value, n_resamples=n_resamples, subsample=subsample, seed=seed
        )
        return value(X), tuple(values.tolist())

    return run


def _one_by_one(groups: Iterable[dict[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """``(alias, activations)`` one layer at a time; each is freed once the caller drops it.

    Within a group the narrowest layers come first: the widest one, whose estimate needs
    the most working memory, then runs when the other buffers are already freed (the
    estimates do not depend on the order).
    """
    for part in groups:
        for alias in sorted(part, key=lambda a: part[a].shape[1]):
            yield alias, part.pop(alias)


def layer_seed(seed: int | torch.Generator | None) -> int:
    """One integer seed shared by every layer (so that all layers use the same subsets).

    An int is kept as is (it must be non-negative); a generator, or ``None`` (fresh
    randomness), is drawn from once.
    """
    if isinstance(seed, torch.Generator) or seed is None:
        return int(torch.randint(0, 2**62, (1,), generator=make_generator(seed)))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}."
        )
    return check_int(seed, "seed", minimum=0)


def _resolve_estimator(estimator: Estimator, kwargs: dict) -> tuple[str, Callable]:
    if callable(estimator):
        return getattr(estimator, "__name__", "custom"), _generic(lambda X: estimator(X, **kwargs))
    if estimator in ("twonn", "mle"):
        return estimator, _twonn("ls" if estimator == "twonn" else "mle", kwargs)
    if estimator == "pca":
        from ..id import pca_dim

        return estimator, _generic(lambda X: pca_dim(X, **kwargs))
    raise ValueError(
        f"estimator must be one of {list(ESTIMATORS)} or a callable X -> float, got {estimator!r}."
    )


def layer_ids(
    model: nn.Module,
    data: torch.Tensor | Dataset | DataLoader | Iterable,
    layers: Layers = None,
    *,
    estimator: Estimator = "twonn",
    n_samples: int | None = None,
    n_resamples: int = 5,
    subsample: float = 0.9,
    seed: int | torch.Generator | None = 0,
    estimator_kwargs: dict | None = None,
    label: str | None = None,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    storage_device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    reduce: str = "flatten",
    max_bytes: int | None = None,
    progress: bool = True,
) -> LayerProfile:
    """Estimate the intrinsic dimension of the representation at each layer of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
    data : torch.Tensor (N, ...), Dataset, DataLoader or iterable of batches
        A batch is ``x`` or ``(x, y, ...)``.
    layers : str, list of str or dict str -> str, optional
        Default: :func:`default_checkpoints` (input, pooling layers, residual/dense
        stages, linear layers, output), as in Ansuini et al. (2019).
    estimator : {"twonn", "mle", "pca"} or callable, default "twonn"
        ``"twonn"``: :func:`interp_lib.id.twonn` (least squares, the paper's);
        ``"mle"``: ``twonn(method="mle")``; ``"pca"``: :func:`interp_lib.id.pca_dim`
        (PC-ID, 90 % of the variance of z-scored features); or any function of an
        ``(n, features)`` tensor returning a float or an object with ``.dimension``.
    n_samples : int, optional
        Points per layer (the first ``n_samples`` of ``data``); default all of it.
    n_resamples : int, default 5
        Subsamples for the error bar (0 for none).
    subsample : float in (0, 1], default 0.9
        Size of each subsample as a share of ``n_samples`` (the paper's 90 %).
    seed : int, torch.Generator or None, default 0
        Seed of the subsampling; every layer uses the same subsets of images (a
        generator or ``None`` is drawn from once, and that seed serves every layer).
    estimator_kwargs : dict, optional
        Extra keyword arguments of the estimator (e.g. ``{"fraction": 0.9}`` for TwoNN,
        ``{"variance": 0.95}`` for PC-ID, ``{"chunk_size": 1024}`` to bound TwoNN's
        working memory on very wide layers).
    label : str, optional
        Name of the profile in plots.
    batch_size, device, storage_device, dtype, reduce, max_bytes, progress
        As in :func:`collect_activations`. ``max_bytes`` bounds the activations held at
        once: layers are estimated one group at a time.

    Returns
    -------
    LayerProfile

    Notes
    -----
    ``dimensions`` are the estimates on all points, ``errors`` the standard deviation
    over subsamples; Ansuini et al. plot the subsample mean, kept in ``resamples``.
    Warnings of the estimator (e.g. duplicate points dropped by TwoNN, common after
    ReLU layers on few images) are re-issued with the layer's name.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    >>> prof = layer_ids(net, torch.randn(300, 10), n_resamples=2, progress=False)
    >>> prof.layers, prof.relative_depth
    (('input', '0', '2'), (0.0, 0.5, 1.0))
    """
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    subsample = check_fraction(subsample, "subsample")
    seed = layer_seed(seed)
    name, run = _resolve_estimator(estimator, dict(estimator_kwargs or {}))
    collector = ActivationCollector(
        model,
        data,
        layers,
        n_samples,
        batch_size=batch_size,
        device=device,
        storage_device=storage_device,
        dtype=dtype,
        reduce=reduce,
        max_bytes=max_bytes,
        progress=progress,
    )
    results: dict[str, tuple[float, float, tuple[float, ...]]] = {}
    n_rows = collector.n_samples
    layers_done = progress_bar(
        _one_by_one(collector.iter_groups()), progress, f"ID ({name})", total=len(collector.spec)
    )
    for alias, X in layers_done:
        n_rows = X.shape[0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dim, values = run(X, n_resamples, subsample, seed)
        for w in caught:
            warnings.warn(f"layer {alias!r}: {w.message}", w.category, stacklevel=2)
        err = float(torch.tensor(values).std()) if len(values) > 1 else math.nan
        results[alias] = (float(dim), err, values)
        del X
    order = sorted(collector.spec, key=collector.trace.position)
    depth = depths_from_trace(model, collector.trace, order)
    aliases = [collector.spec[n] for n in order]
    return LayerProfile(
        layers=tuple(aliases),
        modules=tuple(order),
        dimensions=tuple(results[a][0] for a in aliases),
        errors=tuple(results[a][1] for a in aliases),
        n_features=tuple(collector.features[n] for n in order),
        relative_depth=tuple(depth[n] for n in order),
        resamples=tuple(results[a][2] for a in aliases),
        estimator=name,
        n_samples=n_rows,
        label=label,
    )
