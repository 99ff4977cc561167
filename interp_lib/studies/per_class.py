"""Single-class profiles: the hunchback measurement of Ansuini et al. (2019), one protocol.

The paper's hunchback is measured on **single-class** image sets (about 500 training
images of one ImageNet category each, seven categories), not on a mix of classes: the
ID of each set is estimated at every checkpoint (TwoNN, mean over 90 % subsamples), and
the profiles of the classes are averaged. :func:`class_profiles` is that protocol, for
any network and any labelled image set (tensors in memory, or a map-style ``Dataset``
such as an ImageNet folder streamed class by class through a ``DataLoader``); the command
``python -m interp_lib.profile`` and the chapters call it. Its parameters are the
protocol's choices:

- ``choose``: which images of a class (:func:`class_indices`): its ``"first"`` ones, or a
  ``"random"`` subset drawn with ``seed + label``;
- ``shared_search``: how each layer is measured. ``True`` (TwoNN only): **one** neighbour
  search per class and layer gives the TwoNN of the whole set and of every 90 %
  subsample (a point's two nearest neighbours inside a subsample are its two nearest
  surviving ones), the PC-ID (components for 90 % of the variance of z-scored units, as
  in the paper) and the Gride ID at growing neighbour ranks (the ID-vs-scale curve),
  which gives the numbers of :func:`interp_lib.id.twonn` with ``n_resamples`` and of
  :func:`interp_lib.id.gride` at several times less cost. ``False``:
  :func:`interp_lib.profile.layer_ids` per class, with any of its estimators (``"twonn"``,
  ``"mle"``, ``"pca"`` or a function), each search rerun inside each subsample.

The authors' code (``scripts/pretrained/hunchback.py`` of ``ansuini/IntrinsicDimDeep``)
reads each category folder through a ``DataLoader`` with ``shuffle=True`` (under
``torch.manual_seed(999)``) until ``nsamples`` images are passed, i.e. a **random**
subset (whole batches: 512 images for ``nsamples=500, bs=16``), drawn afresh for every
layer; its subsamples are ``floor(0.9 * nsamples)`` rows of an unseeded
``np.random.permutation``, and it reports their mean and ``np.std`` (no full-set
estimate). Here a class's subset is drawn once and serves every layer, and every draw is
seeded. The command line draws at random (as the authors do); part I of the book takes
the first images of each class (its bird images are generated i.i.d., so the first ones
are already a random draw).

A caller that saves each class as it is done (the command line) passes ``on_class``, and
``done`` with the classes saved by an earlier run, which are then not recomputed. A
class's saved form is a JSON-ready dict (:meth:`ClassProfiles.to_records`,
:meth:`ClassProfiles.from_records`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .._plumbing import require
from .._validation import as_points, check_choice, check_fraction, check_int
from ..id import (
    gride_mle,
    length_scale,
    nearest_neighbors,
    pca_dim,
    ratio_table,
    subsample_estimates,
    twonn_ls,
)
from ..profile import LayerProfile, layer_ids
from ..profile.activations import ActivationCollector
from ..profile.checkpoints import depths_from_trace

__all__ = ["ClassProfiles", "class_indices", "class_profiles"]

#: Which images of a class are used: its first ones, or a seeded random subset.
CHOICES = ("first", "random")

Record = dict[str, Any]


def _finite(values: Sequence[float | None]) -> list[float | None]:
    """JSON-ready floats: NaN and infinities become ``None``."""
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def _floats(values: Sequence[float | None]) -> list[float]:
    """The inverse of :func:`_finite`: ``None`` becomes NaN."""
    return [math.nan if v is None else float(v) for v in values]


@dataclass(frozen=True)
class ClassProfiles:
    """Per-class ID profiles of one network.

    Attributes
    ----------
    classes : tuple of int or str
        The classes, one row each: the labels, or the class names of a dataset with a
        ``classes`` attribute (an ``ImageFolder``'s folder names).
    layers : tuple of str
    relative_depth : tuple of float
    n_features : tuple of int
    n_per_class : tuple of int
        Images used for each class.
    twonn : torch.Tensor, shape (n_classes, n_layers)
        The per-class ID of each layer by ``estimator`` (TwoNN, least squares, unless
        another estimator was asked for): the mean over 90 % subsamples when
        ``n_resamples > 0`` (the paper's number), else the full-set estimate.
    twonn_error : torch.Tensor, shape (n_classes, n_layers)
        Standard deviation over the subsamples (NaN without them).
    pca : torch.Tensor, shape (n_classes, n_layers)
        PC-ID (90 % of the variance of z-scored units); NaN when not computed.
    gride_ranks : tuple of int
        The ranks ``n2`` of the Gride estimates (``n1 = n2 / 2``); empty when not computed.
    gride : torch.Tensor, shape (n_classes, n_layers, n_ranks)
        Gride ID at each rank (NaN where a rank was degenerate).
    gride_scale : torch.Tensor, shape (n_classes, n_layers, n_ranks)
        Mean distance to the ``n2``-th neighbour: the length scale of each estimate.
    label : str, optional
    modules : tuple of str, optional
        The dotted module names of the layers (default: ``layers``).
    dimension : torch.Tensor, shape (n_classes, n_layers), optional
        The estimate on all images of the class (default: ``twonn``).
    resamples : tuple, optional
        ``resamples[i][j]``: the subsample estimates of class ``i`` at layer ``j``.
    estimator : str, default "twonn"
        The estimator behind ``twonn``, ``twonn_error`` and ``dimension``.
    """

    classes: tuple[int | str, ...]
    layers: tuple[str, ...]
    relative_depth: tuple[float, ...]
    n_features: tuple[int, ...]
    n_per_class: tuple[int, ...]
    twonn: torch.Tensor
    twonn_error: torch.Tensor
    pca: torch.Tensor
    gride_ranks: tuple[int, ...]
    gride: torch.Tensor
    gride_scale: torch.Tensor
    label: str | None = None
    modules: tuple[str, ...] | None = None
    dimension: torch.Tensor | None = None
    resamples: tuple[tuple[tuple[float, ...], ...], ...] | None = None
    estimator: str = "twonn"

    def mean(self, what: str = "twonn") -> torch.Tensor:
        """Mean over classes of ``"twonn"``, ``"pca"`` or ``"gride"`` (n_layers[, n_ranks])."""
        return self._values(what).nanmean(0)

    def sd(self, what: str = "twonn") -> torch.Tensor:
        """Standard deviation over classes (the paper's error band is over classes).

        NaN classes are left out; NaN with fewer than two classes.
        """
        v = self._values(what)
        mean = v.nanmean(0)
        if v.shape[0] < 2:
            return torch.full_like(mean, math.nan)
        return ((v - mean).square().nansum(0) / ((~v.isnan()).sum(0) - 1).clamp_min(1)).sqrt()

    def _values(self, what: str) -> torch.Tensor:
        if what not in ("twonn", "pca", "gride"):
            raise ValueError(f"what must be 'twonn', 'pca' or 'gride', got {what!r}.")
        return getattr(self, what)

    def at_rank(self, rank: int) -> torch.Tensor:
        """Gride ID at neighbour rank ``rank`` (an entry of ``gride_ranks``), (n_classes, n_layers)."""
        if rank not in self.gride_ranks:
            raise ValueError(f"rank must be one of {self.gride_ranks}, got {rank!r}.")
        return self.gride[:, :, self.gride_ranks.index(rank)]

    def to_pandas(self):
        """One row per layer: depth, units, and mean and sd over classes of each estimate."""
        pd = require("pandas", "ClassProfiles.to_pandas")

        data = {
            "relative_depth": self.relative_depth,
            "n_features": self.n_features,
            "twonn": self.mean().tolist(),
            "twonn_sd": self.sd().tolist(),
            "pca": self.mean("pca").tolist(),
        }
        for j, rank in enumerate(self.gride_ranks):
            data[f"gride_{rank}"] = self.mean("gride")[:, j].tolist()
        return pd.DataFrame(data, index=pd.Index(self.layers, name="layer"))

    def mean_profile(self) -> LayerProfile:
        """The class-averaged profile as a :class:`interp_lib.profile.LayerProfile`.

        ``dimensions`` are the means over classes of ``twonn``, ``errors`` the standard
        deviations over classes (:meth:`sd`), ready for :func:`interp_lib.viz.plot_profile`.
        """
        return LayerProfile(
            layers=self.layers,
            modules=self.modules or self.layers,
            dimensions=tuple(self.mean().tolist()),
            errors=tuple(self.sd().tolist()),
            n_features=self.n_features,
            relative_depth=self.relative_depth,
            resamples=tuple(() for _ in self.layers),
            estimator=self.estimator,
            n_samples=0,
            label=f"mean ± sd over {len(self.classes)} classes",
        )

    def to_records(self) -> list[Record]:
        """One JSON-ready dict per class (NaN written as ``None``), the saved form of a class.

        Keys: ``class``, ``n_images``, ``layers``, ``modules``, ``relative_depth``,
        ``n_features``, ``dimension`` (full set), ``id`` (``twonn``), ``id_sd``
        (``twonn_error``), ``resamples``; and ``pca``, ``gride_ranks``, ``gride``,
        ``gride_scale`` when the PC-ID or Gride were computed.
        """
        dimension = self.twonn if self.dimension is None else self.dimension
        records = []
        for i, c in enumerate(self.classes):
            record = {
                "class": c,
                "n_images": self.n_per_class[i],
                "layers": list(self.layers),
                "modules": list(self.modules or self.layers),
                "relative_depth": _finite(self.relative_depth),
                "n_features": list(self.n_features),
                "dimension": _finite(dimension[i].tolist()),
                "id": _finite(self.twonn[i].tolist()),
                "id_sd": _finite(self.twonn_error[i].tolist()),
                "resamples": (
                    [_finite(r) for r in self.resamples[i]]
                    if self.resamples
                    else [[] for _ in self.layers]
                ),
            }
            if not bool(self.pca[i].isnan().all()):
                record["pca"] = _finite(self.pca[i].tolist())
            if self.gride_ranks:
                record["gride_ranks"] = list(self.gride_ranks)
                record["gride"] = [_finite(g) for g in self.gride[i].tolist()]
                record["gride_scale"] = [_finite(g) for g in self.gride_scale[i].tolist()]
            records.append(record)
        return records

    @classmethod
    def from_records(
        cls, records: Sequence[Record], *, estimator: str = "twonn", label: str | None = None
    ) -> ClassProfiles:
        """The profiles back from :meth:`to_records` (or the command line's class files).

        Every record must list the same layers. The Gride ranks are those of the first
        record that has Gride estimates at its first layer; the other records are read
        at those ranks (NaN where they have none).

        Raises
        ------
        ValueError
            No records, or records of other layers.
        """
        if not records:
            raise ValueError("records is empty; pass one record per class.")
        first = records[0]
        for r in records[1:]:
            if r["layers"] != first["layers"]:
                raise ValueError(
                    f"the records of classes {first['class']!r} and {r['class']!r} list other "
                    f"layers ({first['layers']} and {r['layers']}); profile every class with "
                    "the same layers."
                )
        n_layers = len(first["layers"])
        ranks: tuple[int, ...] = ()
        rows = (
            (r["gride_ranks"], row) for r in records if r.get("gride_ranks") for row in r["gride"]
        )
        for kept, row in rows:  # the first layer with a Gride estimate
            ranks = tuple(k for k, v in zip(kept, row, strict=True) if v is not None)
            if ranks:
                break

        def at_ranks(r: Record, key: str) -> list[list[float]]:
            if not r.get("gride_ranks"):
                return [[math.nan] * len(ranks) for _ in range(n_layers)]
            where = {k: j for j, k in enumerate(r["gride_ranks"])}
            return [
                [math.nan if k not in where else _floats(row)[where[k]] for k in ranks]
                for row in r[key]
            ]

        def table(key: str) -> torch.Tensor:
            return torch.tensor([_floats(r[key]) for r in records], dtype=torch.float64)

        def table3(key: str) -> torch.Tensor:
            shape = (len(records), n_layers, len(ranks))
            if not ranks:
                return torch.empty(shape, dtype=torch.float64)
            return torch.tensor([at_ranks(r, key) for r in records], dtype=torch.float64)

        nan_rows = [[math.nan] * n_layers for _ in records]
        return cls(
            classes=tuple(r["class"] for r in records),
            layers=tuple(first["layers"]),
            relative_depth=tuple(_floats(first["relative_depth"])),
            n_features=tuple(first["n_features"]),
            n_per_class=tuple(r["n_images"] for r in records),
            twonn=table("id"),
            twonn_error=table("id_sd"),
            pca=torch.tensor(
                [_floats(r["pca"]) if "pca" in r else nan_rows[0] for r in records],
                dtype=torch.float64,
            ),
            gride_ranks=ranks,
            gride=table3("gride"),
            gride_scale=table3("gride_scale"),
            label=label,
            modules=tuple(first["modules"]),
            dimension=table("dimension"),
            resamples=tuple(tuple(tuple(_floats(v)) for v in r["resamples"]) for r in records),
            estimator=estimator,
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per layer the mean and sd over classes of ``twonn``, with every class's record."""
        return {
            "layers": list(self.layers),
            "modules": list(self.modules or self.layers),
            "relative_depth": _finite(self.relative_depth),
            "n_features": list(self.n_features),
            "n_classes": len(self.classes),
            "id_mean": _finite(self.mean().tolist()),
            "id_sd_over_classes": _finite(self.sd().tolist()),
            "classes": {r["class"]: r for r in self.to_records()},
        }


def class_indices(
    labels: Sequence[int] | torch.Tensor,
    n_per_class: int | None = None,
    *,
    choose: str = "first",
    seed: int = 0,
) -> dict[int, list[int]]:
    """Up to ``n_per_class`` indices of each class, in increasing order.

    Parameters
    ----------
    labels : sequence of int or torch.Tensor, shape (N,)
        The class of every image (e.g. an ``ImageFolder``'s ``targets``).
    n_per_class : int, optional
        Images per class (default all of them).
    choose : {"first", "random"}, default "first"
        A class with more images keeps its first ``n_per_class`` ones, or a random subset
        drawn with ``torch.Generator().manual_seed(seed + label)`` (one draw per class,
        independent of the other classes).
    seed : int, default 0

    Returns
    -------
    dict int -> list of int
        ``{label: indices}`` for every label present, labels in increasing order.
    """
    check_choice(choose, "choose", CHOICES)
    if n_per_class is not None:
        n_per_class = check_int(n_per_class, "n_per_class")
    seed = check_int(seed, "seed", minimum=0)
    out: dict[int, list[int]] = {}
    for i, t in enumerate(torch.as_tensor(labels).tolist()):
        out.setdefault(int(t), []).append(i)
    out = dict(sorted(out.items()))
    if n_per_class is None:
        return out
    for c, idx in out.items():
        if len(idx) <= n_per_class:
            continue
        if choose == "first":
            out[c] = idx[:n_per_class]
        else:
            gen = torch.Generator().manual_seed(seed + c)
            pick = torch.randperm(len(idx), generator=gen)[:n_per_class]
            out[c] = sorted(idx[int(j)] for j in pick)
    return out


def _first_two_surviving(
    dist: torch.Tensor, idx: torch.Tensor, sub: torch.Tensor
) -> torch.Tensor | None:
    """Distances from each point of ``sub`` to its two nearest neighbours inside ``sub``.

    ``dist``, ``idx`` (N, k): the sorted neighbour lists of the whole set. Returns
    (len(sub), 2), or None when some point has fewer than 2 of its k neighbours in ``sub``.
    """
    member = torch.zeros(dist.shape[0], dtype=torch.bool)
    member[sub] = True
    alive = member[idx[sub]]  # (m, k): which listed neighbours are in the subsample
    if int(alive.sum(1).min()) < 2:
        return None
    # positions of the first two surviving neighbours of each row (lists are sorted)
    pos = torch.argsort((~alive).to(torch.int8), dim=1, stable=True)[:, :2]
    return dist[sub].gather(1, pos)


def _layer_estimates(
    X: torch.Tensor,
    *,
    n_resamples: int,
    subsample: float,
    seed: int,
    pca: bool,
    max_rank: int | None,
) -> tuple[float, float, float, dict[int, float], dict[int, float], float, list[float]]:
    """TwoNN (resample mean and sd), PC-ID and Gride of one layer's points ``X`` (N, D).

    The same numbers as ``twonn(X, n_resamples=..., subsample=..., seed=...)`` (least
    squares on 90 % of the ratios), ``pca_dim(X)`` and ``gride(X, max_rank=...)``, from a
    single neighbour search. Also returns the full-set TwoNN and the subsample values.
    """
    X = as_points(X)
    n = X.shape[0]
    k = min(n - 1, max(2, max_rank or 2))
    dist, idx = nearest_neighbors(X, k)
    dist, idx = dist.cpu(), idx.cpu()
    full = twonn_ls(ratio_table(dist[:, :2]).mu)[0]

    def on_subset(sub: torch.Tensor) -> float | None:
        d2 = _first_two_surviving(dist, idx, sub)
        if d2 is None:  # a point lost its k neighbours: search inside the subsample
            d2 = nearest_neighbors(X[sub], 2).distances.cpu()
        mu = ratio_table(d2).mu
        return twonn_ls(mu)[0] if mu.numel() >= 3 else None

    res = subsample_estimates(
        torch.arange(n), on_subset, n_resamples=n_resamples, subsample=subsample, seed=seed
    )
    tw, err = (float(res.mean()), float(res.std())) if res.numel() > 1 else (full, math.nan)
    pc = float(pca_dim(X)) if pca else math.nan
    grides, scales = {}, {}
    if max_rank is not None:
        n1 = 1
        while 2 * n1 <= k:
            table = ratio_table(dist, n1, 2 * n1)
            if table.mu.numel() >= 3:
                grides[2 * n1] = gride_mle(table.mu, n1, 2 * n1)[0]
                scales[2 * n1] = length_scale(table)
            n1 *= 2
    return tw, err, pc, grides, scales, full, res.tolist()


def _shared_search_record(
    model: nn.Module, data: Any, layers: Any, name: int | str, n_images: int, *,
    n_resamples: int, subsample: float, seed: int, pca: bool, max_rank: int | None,
    collect: dict[str, Any],
) -> Record:  # fmt: skip
    """One class measured with one neighbour search per layer (``shared_search=True``)."""
    collector = ActivationCollector(model, data, layers, **collect)
    found: dict[str, tuple] = {}
    for part in collector.iter_groups():
        for alias in list(part):
            X = part.pop(alias)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*dropped.*")
                found[alias] = _layer_estimates(
                    X.flatten(1).double(),
                    n_resamples=n_resamples,
                    subsample=subsample,
                    seed=seed,
                    pca=pca,
                    max_rank=max_rank,
                )
            del X
    modules = list(collector.spec)  # the requested order
    aliases = [collector.spec[m] for m in modules]
    depth = depths_from_trace(model, collector.trace, modules)
    rows = [found[a] for a in aliases]
    ranks = sorted({r for row in rows for r in row[3]})
    record = {
        "class": name,
        "n_images": n_images,
        "layers": aliases,
        "modules": modules,
        "relative_depth": _finite([depth[m] for m in modules]),
        "n_features": [collector.features[m] for m in modules],
        "dimension": _finite([row[5] for row in rows]),
        "id": _finite([row[0] for row in rows]),
        "id_sd": _finite([row[1] for row in rows]),
        "resamples": [_finite(row[6]) for row in rows],
    }
    if pca:
        record["pca"] = _finite([row[2] for row in rows])
    if max_rank is not None:
        record["gride_ranks"] = ranks
        record["gride"] = [_finite([row[3].get(r) for r in ranks]) for row in rows]
        record["gride_scale"] = [_finite([row[4].get(r) for r in ranks]) for row in rows]
    return record


def _layer_ids_record(prof: LayerProfile, name: int | str, n_images: int) -> Record:
    """One class measured by :func:`interp_lib.profile.layer_ids` (``shared_search=False``)."""
    means = [
        sum(r) / len(r) if r else d for r, d in zip(prof.resamples, prof.dimensions, strict=True)
    ]
    return {
        "class": name,
        "n_images": n_images,
        "layers": list(prof.layers),
        "modules": list(prof.modules),
        "relative_depth": _finite(prof.relative_depth),
        "n_features": list(prof.n_features),
        "dimension": _finite(prof.dimensions),
        "id": _finite(means),
        "id_sd": _finite(prof.errors),
        "resamples": [_finite(r) for r in prof.resamples],
    }


def _class_names(data: Any, labels: list[int]) -> dict[int, int | str]:
    """``{label: name}``: a dataset's ``classes`` names, else the labels themselves."""
    names = getattr(data, "classes", None)
    if isinstance(data, Dataset) and isinstance(names, Sequence) and not isinstance(names, str):
        if all(0 <= c < len(names) for c in labels):
            return {c: names[c] for c in labels}
    return {c: c for c in labels}


def class_profiles(
    model: nn.Module,
    data: torch.Tensor | Dataset,
    labels: torch.Tensor | Sequence[int] | None = None,
    layers: str | Sequence[str] | Mapping[str, str] | None = None,
    *,
    choose: str = "first",
    n_per_class: int | None = None,
    classes: Sequence[int | str] | None = None,
    shared_search: bool = True,
    estimator: str | Callable[[torch.Tensor], Any] = "twonn",
    n_resamples: int = 5,
    subsample: float = 0.9,
    pca: bool = True,
    max_rank: int | None = 64,
    seed: int = 0,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    max_bytes: int | None = None,
    progress: bool = False,
    done: Mapping[int | str, Record] | None = None,
    on_class: Callable[[Record], None] | None = None,
    label: str | None = None,
) -> ClassProfiles:
    """Profile ``model`` on each class separately, as Ansuini et al. measure the hunchback.

    Parameters
    ----------
    model : torch.nn.Module
    data : torch.Tensor, shape (N, C, H, W), or a map-style Dataset
        The images. A ``Dataset`` (e.g. :func:`interp_lib.datasets.image_folder`) yields
        ``(image, label)`` and is read one class at a time through a ``DataLoader``, so
        it need not fit in memory.
    labels : torch.Tensor or sequence of int, shape (N,), optional
        The class of each image; for a ``Dataset``, default its ``targets``.
    layers : str, list or dict, optional
        Checkpoints; default those of :func:`interp_lib.profile.layer_ids`.
    choose : {"first", "random"}, default "first"
        Which ``n_per_class`` images of a class: see :func:`class_indices`.
    n_per_class : int, optional
        Images per class (default all; the paper: 500).
    classes : sequence of int or str, optional
        The classes to profile, in this order (labels, or names of ``data.classes``);
        default all, in label order.
    shared_search : bool, default True
        ``True``: TwoNN, PC-ID and Gride of each layer from one neighbour search (the
        numbers of :func:`interp_lib.id.twonn`, :func:`interp_lib.id.pca_dim` and
        :func:`interp_lib.id.gride`), activations in float64. ``False``:
        :func:`interp_lib.profile.layer_ids` on each class with ``estimator`` (the
        command line's).
    estimator : {"twonn", "mle", "pca"} or callable, default "twonn"
        As in :func:`interp_lib.profile.layer_ids`; only ``"twonn"`` with
        ``shared_search=True``.
    n_resamples : int, default 5
        90 % subsamples per estimate (the paper: 50); 0 for the full-set estimate only.
    subsample : float, default 0.9
    pca : bool, default True
        Also compute the PC-ID (``shared_search=True`` only).
    max_rank : int or None, default 64
        Largest Gride rank (ranks 2, 4, ..., max_rank); None to skip Gride
        (``shared_search=True`` only).
    seed : int, default 0
        Seed of the random images (``choose="random"``) and of the subsamples.
    batch_size, num_workers : int
        Images per forward pass; ``DataLoader`` workers for a ``Dataset``.
    device, dtype, max_bytes, progress
        As in :func:`interp_lib.profile.collect_activations`: where the model runs, the
        storage type of the activations, the memory budget of the activations held at
        once.
    done : mapping, optional
        ``{class: record}`` of classes finished earlier (records of
        :meth:`ClassProfiles.to_records`, e.g. read back from files); they are not
        recomputed.
    on_class : callable, optional
        Called with the record of each class as soon as it is computed (to save it).
    label : str, optional

    Returns
    -------
    ClassProfiles

    Raises
    ------
    ValueError
        Labels that do not match the images, a class with too few images (10 with
        ``shared_search``, else 3), an unknown class, bad options.
    TypeError
        ``data`` neither a tensor nor a ``Dataset``.
    """
    if isinstance(data, torch.Tensor):
        if data.ndim < 2:
            raise TypeError("images must be a torch.Tensor of shape (N, ...).")
        if labels is None:
            raise ValueError("labels are needed with an image tensor: one label per image.")
    elif isinstance(data, Dataset):
        if labels is None:
            labels = getattr(data, "targets", None)
            if labels is None:
                raise ValueError(
                    f"pass labels=: the {type(data).__name__} has no 'targets' attribute."
                )
    else:
        raise TypeError(
            f"data must be an image tensor (N, C, H, W) or a map-style Dataset, got "
            f"{type(data).__name__}."
        )
    labels = torch.as_tensor(labels)
    n = data.shape[0] if isinstance(data, torch.Tensor) else len(data)
    if labels.ndim != 1 or labels.numel() != n:
        raise ValueError(
            f"labels must have shape ({n},), one per image, got {tuple(labels.shape)}."
        )
    check_choice(choose, "choose", CHOICES)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    subsample = check_fraction(subsample, "subsample")
    if max_rank is not None:
        max_rank = check_int(max_rank, "max_rank", minimum=2)
    if shared_search:
        if estimator != "twonn":
            raise ValueError(
                f"shared_search=True measures TwoNN (with PC-ID and Gride), got estimator="
                f"{estimator!r}; pass shared_search=False for another estimator."
            )
    elif pca or max_rank is not None:
        raise ValueError(
            "pca and max_rank need shared_search=True; pass pca=False and max_rank=None "
            "with shared_search=False."
        )
    subsets = class_indices(labels, n_per_class, choose=choose, seed=seed)
    names = _class_names(data, list(subsets))
    by_name = {name: c for c, name in names.items()}
    wanted = list(subsets) if classes is None else list(classes)
    unknown = [c for c in wanted if c not in by_name]
    if unknown:
        raise ValueError(
            f"classes {unknown} are not among the classes of the data {list(by_name)[:10]}."
        )
    done = dict(done or {})
    minimum = 10 if shared_search else 3
    collect = {"batch_size": batch_size, "device": device, "dtype": dtype,
               "max_bytes": max_bytes, "progress": progress}  # fmt: skip
    records = []
    for name in wanted:
        if name in done:
            records.append(done[name])
            continue
        idx = subsets[by_name[name]]
        if len(idx) < minimum:
            raise ValueError(f"class {name!r} has {len(idx)} images; need at least {minimum}.")
        if isinstance(data, torch.Tensor):
            class_data = data[idx]
        else:
            class_data = DataLoader(
                Subset(data, idx), batch_size=batch_size, num_workers=num_workers
            )
        if shared_search:
            record = _shared_search_record(
                model, class_data, layers, name, len(idx), n_resamples=n_resamples,
                subsample=subsample, seed=seed, pca=pca, max_rank=max_rank, collect=collect,
            )  # fmt: skip
        else:
            prof = layer_ids(
                model, class_data, layers, estimator=estimator, n_resamples=n_resamples,
                subsample=subsample, seed=seed, label=str(name), **collect,
            )  # fmt: skip
            record = _layer_ids_record(prof, name, len(idx))
        if on_class is not None:
            on_class(record)
        records.append(record)
    if not records:
        raise ValueError("no class to profile: the data has no labels in classes.")
    name_of_estimator = (
        estimator if isinstance(estimator, str) else getattr(estimator, "__name__", "custom")
    )
    return ClassProfiles.from_records(records, estimator=name_of_estimator, label=label)
