"""Single-class profiles: the hunchback measurement of Ansuini et al. (2019).

The paper's hunchback is measured on **single-class** image sets (about 500 training
images of one ImageNet category each, seven categories), not on a mix of classes: the
ID of each set is estimated at every checkpoint (TwoNN, mean over 90 % subsamples),
and the profiles of the classes are averaged. :func:`class_profiles` does the same for
any network and any labelled image set, and also records, per class and layer,

- the PC-ID (components for 90 % of the variance of z-scored units, as in the paper);
- the Gride ID at growing neighbour ranks (the ID-vs-scale curve of every layer),

from one forward pass per class and **one** neighbour search per class and layer: the
TwoNN of every 90 % subsample is read off the neighbour lists of the whole set (a point's
two nearest neighbours inside a subsample are its two nearest surviving ones), which
gives the numbers of :func:`interp_lib.id.twonn` with ``n_resamples`` and of
:func:`interp_lib.id.gride` at several times less cost (the neighbour search of
high-dimensional activations is the expensive part).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._plumbing import require
from .._validation import as_points, check_fraction, check_int
from ..id import gride_mle, pca_dim, subsample_estimates, twonn_ls
from ..id._ratios import length_scale, ratio_table
from ..id.neighbors import knn
from ..profile import collect_activations, relative_depth

__all__ = ["ClassProfiles", "class_profiles"]


@dataclass(frozen=True)
class ClassProfiles:
    """Per-class ID profiles of one network.

    Attributes
    ----------
    classes : tuple of int
        The class labels, one row each.
    layers : tuple of str
    relative_depth : tuple of float
    n_features : tuple of int
    n_per_class : tuple of int
        Images used for each class.
    twonn : torch.Tensor, shape (n_classes, n_layers)
        TwoNN (least squares) on all images of the class: the mean over 90 % subsamples
        when ``n_resamples > 0`` (the paper's number), else the full-set estimate.
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
    """

    classes: tuple[int, ...]
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

    def mean(self, what: str = "twonn") -> torch.Tensor:
        """Mean over classes of ``"twonn"``, ``"pca"`` or ``"gride"`` (n_layers[, n_ranks])."""
        return self._values(what).nanmean(0)

    def sd(self, what: str = "twonn") -> torch.Tensor:
        """Standard deviation over classes (the paper's error band is over classes)."""
        v = self._values(what)
        m = v.nanmean(0, keepdim=True)
        count = torch.isfinite(v).sum(0)
        var = ((v - m).nan_to_num().square().sum(0)) / (count - 1).clamp(min=1)
        return var.sqrt()

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
) -> tuple[float, float, float, dict[int, float], dict[int, float]]:
    """TwoNN (resample mean and sd), PC-ID and Gride of one layer's points ``X`` (N, D).

    The same numbers as ``twonn(X, n_resamples=..., subsample=..., seed=...)`` (least
    squares on 90 % of the ratios), ``pca_dim(X)`` and ``gride(X, max_rank=...)``, from a
    single neighbour search.
    """
    X = as_points(X)
    n = X.shape[0]
    k = min(n - 1, max(2, max_rank or 2))
    dist, idx = knn(X, k)
    dist, idx = dist.cpu(), idx.cpu()
    full = twonn_ls(ratio_table(dist[:, :2]).mu)[0]

    def on_subset(sub: torch.Tensor) -> float | None:
        d2 = _first_two_surviving(dist, idx, sub)
        if d2 is None:  # a point lost its k neighbours: search inside the subsample
            d2 = knn(X[sub], 2).distances.cpu()
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
    return tw, err, pc, grides, scales


def class_profiles(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    layers: str | Sequence[str] | Mapping[str, str] | None = None,
    *,
    n_per_class: int | None = None,
    n_resamples: int = 5,
    subsample: float = 0.9,
    pca: bool = True,
    max_rank: int | None = 64,
    seed: int = 0,
    batch_size: int = 64,
    label: str | None = None,
) -> ClassProfiles:
    """Profile ``model`` on each class separately, as Ansuini et al. measure the hunchback.

    Parameters
    ----------
    model : torch.nn.Module
    images : torch.Tensor, shape (N, C, H, W)
    labels : torch.Tensor, shape (N,), int
    layers : str, list or dict, optional
        Checkpoints; default those of :func:`interp_lib.profile.layer_ids`.
    n_per_class : int, optional
        Use the first ``n_per_class`` images of each class (default all; the paper: 500).
    n_resamples : int, default 5
        90 % subsamples per estimate (the paper: 50); 0 for the full-set estimate only.
    subsample : float, default 0.9
    pca : bool, default True
        Also compute the PC-ID.
    max_rank : int or None, default 64
        Largest Gride rank (ranks 2, 4, ..., max_rank); None to skip Gride.
    seed : int, default 0
        Seed of the subsamples.
    batch_size : int, default 64
    label : str, optional

    Returns
    -------
    ClassProfiles
    """
    if not isinstance(images, torch.Tensor) or images.ndim < 2:
        raise TypeError("images must be a torch.Tensor of shape (N, ...).")
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.numel() != images.shape[0]:
        raise ValueError(
            f"labels must have shape ({images.shape[0]},), one per image, got {tuple(labels.shape)}."
        )
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    subsample = check_fraction(subsample, "subsample")
    if max_rank is not None:
        max_rank = check_int(max_rank, "max_rank", minimum=2)
    classes = sorted(int(c) for c in labels.unique())
    rows = {"twonn": [], "err": [], "pca": [], "gride": [], "scale": []}
    counts, ranks, names, depth, widths = [], (), None, None, None
    for c in classes:
        idx = (labels == c).nonzero().flatten()
        if n_per_class is not None:
            idx = idx[: check_int(n_per_class, "n_per_class", minimum=3)]
        if idx.numel() < 10:
            raise ValueError(f"class {c} has {idx.numel()} images; need at least 10.")
        counts.append(int(idx.numel()))
        x = images[idx]
        acts = collect_activations(model, x, layers, batch_size=batch_size, progress=False)
        if names is None:
            names = tuple(acts)
            modules = list(acts) if not isinstance(layers, Mapping) else list(layers)
            depth_of = relative_depth(model, x[:1], modules)
            depth = tuple(float(depth_of[m]) for m in modules)
            widths = tuple(int(a[0].numel()) for a in acts.values())
        tw, er, pc, gr, sc = [], [], [], [], []
        for X in acts.values():
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*dropped.*")
                t, e, p, g, s = _layer_estimates(
                    X.flatten(1).double(),
                    n_resamples=n_resamples,
                    subsample=subsample,
                    seed=seed,
                    pca=pca,
                    max_rank=max_rank,
                )
            if max_rank is not None:
                ranks = ranks or tuple(sorted(g))
                gr.append([g.get(r, float("nan")) for r in ranks])
                sc.append([s.get(r, float("nan")) for r in ranks])
            tw.append(t)
            er.append(e)
            pc.append(p)
        rows["twonn"].append(tw)
        rows["err"].append(er)
        rows["pca"].append(pc)
        rows["gride"].append(gr)
        rows["scale"].append(sc)
    n_layers = len(names)
    shape3 = (len(classes), n_layers, len(ranks))
    as3 = (
        (lambda v: torch.tensor(v, dtype=torch.float64).reshape(shape3))
        if ranks
        else (lambda v: torch.empty(shape3, dtype=torch.float64))
    )
    return ClassProfiles(
        classes=tuple(classes),
        layers=names,
        relative_depth=depth,
        n_features=widths,
        n_per_class=tuple(counts),
        twonn=torch.tensor(rows["twonn"], dtype=torch.float64),
        twonn_error=torch.tensor(rows["err"], dtype=torch.float64),
        pca=torch.tensor(rows["pca"], dtype=torch.float64),
        gride_ranks=ranks,
        gride=as3(rows["gride"]),
        gride_scale=as3(rows["scale"]),
        label=label,
    )
