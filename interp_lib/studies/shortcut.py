"""Which explanation reveals a planted shortcut? Scores against a known cause.

On the shortcut birds (:func:`interp_lib.datasets.shortcut.shortcut_birds`) the experimenter knows
what a network *could* cheat with (the class-coloured marker on the background) and can
measure whether it does (accuracy with the marker as in training, removed, or swapped:
:func:`marker_reliance`). An explanation of a cheating network *reveals* the shortcut
when it shows the marker. :func:`shortcut_scores` scores maps of any method by

* the share of the map's positive mass on the marker and on the bird
  (:func:`interp_lib.baselines.energy_in_mask`), against the areas' shares (a uniform
  map's mass);
* the share of decisions whose top evidence (the map's maximum) is on the marker
  (:func:`interp_lib.baselines.pointing_game` on the marker mask);

and, for a ProtoPNet, :func:`marker_prototypes` asks whether a pushed prototype *is* a
marker patch and how much of each decision's evidence comes from such prototypes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._plumbing import require
from .._validation import check_fraction, check_images, check_tensor_ndim
from ..baselines import attribute, deletion, energy_in_mask, mask_share, pointing_game, road
from .stats import paired_interval

__all__ = [
    "LAYER_METHODS",
    "MarkerPrototypes",
    "ShortcutScores",
    "box_coverage",
    "explanation_maps",
    "marker_prototypes",
    "marker_reliance",
    "proxy_scores",
    "reliance_table",
    "shortcut_scores",
]

#: Methods of :func:`interp_lib.baselines.attribute` that explain a layer.
LAYER_METHODS = ("cam", "grad_cam", "guided_grad_cam")


def _spec(spec: str | tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))


def explanation_maps(
    model: nn.Module,
    inputs: torch.Tensor,
    methods: Sequence[str | tuple[str, dict[str, Any]]],
    *,
    target: Any = None,
    layer: str = "features",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Maps of several methods of :func:`interp_lib.baselines.attribute` for one model.

    Parameters
    ----------
    model : nn.Module
        In eval mode.
    inputs : torch.Tensor, shape (N, C, H, W)
        Normalised images.
    methods : sequence of str or (str, dict)
        Method names, or ``(name, keyword arguments)``.
    target : optional
        Class explained (default: the predicted class).
    layer : str
        The layer of ``LAYER_METHODS``.
    seed : int
        Randomness of the ``random`` map.

    Returns
    -------
    dict of str to torch.Tensor, shape (N, 1, H, W)
    """
    check_images(inputs, nonempty=True, finite=True)
    out = {}
    for spec in methods:
        name, kw = _spec(spec)
        if name in LAYER_METHODS:
            kw.setdefault("layer", layer)
        out[name] = attribute(model, inputs, target, method=name, seed=seed, **kw)
    return out


@torch.no_grad()
def marker_reliance(
    model: nn.Module, images: Mapping[str, torch.Tensor], labels: torch.Tensor
) -> dict[str, float]:
    """Accuracy of ``model`` on the same birds under several marker conditions.

    Parameters
    ----------
    model : nn.Module
    images : dict of str to torch.Tensor, shape (N, C, H, W)
        Normalised images per condition (e.g. ``"as_trained"``, ``"removed"``,
        ``"swapped"``).
    labels : torch.Tensor, shape (N,)

    Returns
    -------
    dict of str to float
    """
    out = {}
    for name, x in images.items():
        check_images(x, nonempty=True)
        if len(x) != len(labels):
            raise ValueError(f"{name}: {len(x)} images for {len(labels)} labels.")
        out[name] = float((model(x).argmax(1) == labels).double().mean())
    return out


def reliance_table(records: Sequence[Mapping[str, Any]]):
    """Accuracy per model and marker condition, with a 95 % t-interval over seeds.

    Parameters
    ----------
    records : sequence of dict
        Rows ``{"model", "condition", "seed", "accuracy"}`` (e.g. one per network and
        condition of :func:`marker_reliance`); ``model`` may name the training too
        (``"CNN, marker"``, ``"CNN, plain"``).

    Returns
    -------
    pandas.DataFrame
        Index ``(model, condition)``; columns ``accuracy``, ``low``, ``high``, ``seeds``
        (the interval is NaN for one seed).
    """
    pd = require("pandas", "reliance_table")
    df = pd.DataFrame.from_records(list(records))
    rows = {}
    for key, grp in df.groupby(["model", "condition"], sort=False):
        m, lo, hi = _interval(torch.tensor(grp["accuracy"].to_numpy(dtype=float)))
        rows[key] = {"accuracy": m, "low": lo, "high": hi, "seeds": len(grp)}
    out = pd.DataFrame(rows).T
    out.index.names = ["model", "condition"]
    return out


def _interval(values: torch.Tensor) -> tuple[float, float, float]:
    v = values[torch.isfinite(values)].double()
    if v.numel() == 0:
        return (math.nan, math.nan, math.nan)
    if v.numel() == 1:
        return (float(v[0]), math.nan, math.nan)
    iv = paired_interval(v, torch.zeros_like(v))
    return (iv.mean, iv.low, iv.high)


@dataclass
class ShortcutScores:
    """Per-image scores of explanation maps against the marker and the bird.

    Attributes
    ----------
    records : list of dict
        One row per map and image: ``model``, ``method``, ``seed``, ``index``,
        ``marker_energy``, ``bird_energy`` (shares of the positive mass),
        ``marker_top`` (1.0 when the map's maximum is on the marker), ``marker_area``,
        ``bird_area`` (the uniform map's shares).
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: ShortcutScores) -> ShortcutScores:
        return ShortcutScores(self.records + other.records)

    def to_pandas(self):
        """The records as a ``pandas.DataFrame`` (one row per map and image)."""
        pd = require("pandas", "ShortcutScores.to_pandas")
        return pd.DataFrame.from_records(self.records)

    def summary(self, *, over: str = "seed"):
        """One row per model and method, sorted by the mass on the marker.

        Parameters
        ----------
        over : {"seed", "index"}
            The unit of the 95 % t-intervals: per-seed means (several networks) or
            images (one network).

        Returns
        -------
        pandas.DataFrame
            Index ``(model, method)``; columns ``marker``, ``marker low``, ``marker high``
            (share of the positive mass on the marker), ``bird`` (and its interval),
            ``marker - bird`` (and its interval), ``top on marker`` (share of decisions
            whose maximum is on the marker, and its interval), ``marker area`` and
            ``bird area`` (the uniform map), ``n`` (units).
        """
        pd = require("pandas", "ShortcutScores.summary")
        if over not in ("seed", "index"):
            raise ValueError(f"over must be 'seed' or 'index', got {over!r}.")
        df = self.to_pandas()
        df["diff"] = df["marker_energy"] - df["bird_energy"]
        rows = {}
        for (model, method), grp in df.groupby(["model", "method"], sort=False):
            units = grp.groupby(over).mean(numeric_only=True) if over == "seed" else grp
            row: dict[str, float] = {}
            for col, name in (("marker_energy", "marker"), ("bird_energy", "bird"),
                              ("diff", "marker - bird"), ("marker_top", "top on marker")):  # fmt: skip
                m, lo, hi = _interval(torch.tensor(units[col].to_numpy(dtype=float)))
                row.update({name: m, f"{name} low": lo, f"{name} high": hi})
            row["marker area"] = float(grp["marker_area"].mean())
            row["bird area"] = float(grp["bird_area"].mean())
            row["n"] = len(units)
            rows[(model, method)] = row
        out = pd.DataFrame(rows).T
        out.index.names = ["model", "method"]
        return out.sort_values("marker", ascending=False)


def shortcut_scores(
    maps: Mapping[str, torch.Tensor],
    bird: torch.Tensor,
    marker: torch.Tensor,
    *,
    model: str = "model",
    seed: int = 0,
) -> ShortcutScores:
    """Score explanation maps by how much they show the marker and the bird.

    Parameters
    ----------
    maps : dict of str to torch.Tensor, shape (N, 1, H, W)
        One map per image for each method (:func:`explanation_maps`, or any map: the
        marker mask itself is the perfect explanation of a model that reads only the
        marker).
    bird, marker : torch.Tensor, shape (N, H, W), bool
        The bird's pixels and the marker's (disjoint; every image has a marker).
    model : str
        Label of the model in the records.
    seed : int
        Label of the network's seed in the records.

    Returns
    -------
    ShortcutScores
    """
    bird = check_tensor_ndim(bird, "bird", "(N, H, W)").bool()
    marker = check_tensor_ndim(marker, "marker", "(N, H, W)").bool()
    if bird.shape != marker.shape:
        raise ValueError(f"bird {tuple(bird.shape)} and marker {tuple(marker.shape)} differ.")
    if not bool(marker.flatten(1).any(1).all()):
        raise ValueError("every image needs a marker (paint it as in training).")
    if bool((bird & marker).any()):
        raise ValueError("the marker overlaps the bird; the masks must be disjoint.")
    marker_area, bird_area = mask_share(marker), mask_share(bird)
    records = []
    for method, m in maps.items():
        on_marker = energy_in_mask(m, marker)
        on_bird = energy_in_mask(m, bird)
        top = pointing_game(m, marker)
        for i in range(len(bird)):
            records.append({
                "model": model, "method": method, "seed": seed, "index": i,
                "marker_energy": float(on_marker[i]), "bird_energy": float(on_bird[i]),
                "marker_top": float(top[i]), "marker_area": float(marker_area[i]),
                "bird_area": float(bird_area[i]),
            })  # fmt: skip
    return ShortcutScores(records)


@dataclass(frozen=True)
class MarkerPrototypes:
    """Result of :func:`marker_prototypes`.

    Attributes
    ----------
    is_marker : torch.Tensor, shape (P,), bool
        The prototype's source patch covers at least ``min_fraction`` of the marker on
        its source image.
    covered : torch.Tensor, shape (P,), float
        Share of the source image's marker inside the patch's receptive-field box.
    evidence_share : torch.Tensor, shape (N,), float
        Share of each decision's positive points (similarity x weight of the predicted
        class) that comes from marker prototypes (NaN: no positive points).
    prototype_classes : torch.Tensor, shape (P,), long
    """

    is_marker: torch.Tensor
    covered: torch.Tensor
    evidence_share: torch.Tensor
    prototype_classes: torch.Tensor

    @property
    def n_marker(self) -> int:
        """Number of marker prototypes."""
        return int(self.is_marker.sum())

    @property
    def classes_with_marker(self) -> int:
        """Number of classes that own at least one marker prototype."""
        return int(torch.unique(self.prototype_classes[self.is_marker]).numel())

    @property
    def mean_evidence_share(self) -> float:
        """Mean of ``evidence_share`` (NaN shares count as 0)."""
        return float(torch.nan_to_num(self.evidence_share, nan=0.0).mean())


@torch.no_grad()
def marker_prototypes(
    protopnet: nn.Module,
    push,
    train_marker: torch.Tensor,
    inputs: torch.Tensor,
    *,
    min_fraction: float = 0.5,
) -> MarkerPrototypes:
    """Which pushed prototypes are marker patches, and how much evidence they give.

    Parameters
    ----------
    protopnet : ProtoPNet
        In eval mode.
    push : PushResult
        Its push (``sample_index`` into the push images, ``box`` the receptive-field
        box ``(x0, y0, x1, y1)`` of each source patch, end exclusive).
    train_marker : torch.Tensor, shape (N_push, H, W), bool
        The marker of every push image, in the push loader's order.
    inputs : torch.Tensor, shape (N, C, H, W)
        Normalised test images (with their markers) whose decisions are read.
    min_fraction : float in (0, 1]
        Share of the marker a source patch must cover to count as a marker patch.

    Returns
    -------
    MarkerPrototypes
    """
    train_marker = check_tensor_ndim(train_marker, "train_marker", "(N, H, W)").bool()
    min_fraction = check_fraction(min_fraction, "min_fraction", inclusive_low=False)
    check_images(inputs, nonempty=True)
    src = train_marker[push.sample_index.long()]  # (P, H, W)
    h, w = src.shape[-2:]
    rows = torch.arange(h).view(1, -1, 1)
    cols = torch.arange(w).view(1, 1, -1)
    x0, y0, x1, y1 = (push.box[:, k].view(-1, 1, 1) for k in range(4))
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
    total = src.flatten(1).sum(1).double()
    covered = (src & inside).flatten(1).sum(1).double() / total.clamp_min(1)
    is_marker = (covered >= min_fraction) & (total > 0)
    sims = protopnet.pooled_similarities(protopnet.latent(inputs)).double()  # (N, P)
    weights = protopnet.last_layer.weight.double()  # (K, P)
    predicted = (sims @ weights.T).argmax(1)
    points = (sims * weights[predicted]).clamp_min(0)  # (N, P)
    tot = points.sum(1)
    share = (points * is_marker.double()).sum(1) / tot
    share[tot == 0] = math.nan
    return MarkerPrototypes(is_marker, covered, share, protopnet.prototype_classes.cpu())


def proxy_scores(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    *,
    step: int | None = None,
    percentages: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90),
    model_name: str = "model",
    seed: int = 0,
):
    """The proxy metrics of the same maps: deletion (zeros) and ROAD (imputed removal).

    For comparing the proxies' ranking of the methods with the ground truth of
    :func:`shortcut_scores`. Deletion (:func:`interp_lib.baselines.deletion`) sets pixels
    to 0 in the model's input space, from the most salient; ROAD
    (:func:`interp_lib.baselines.road`, ``ties="rank"``) removes a share of the pixels
    and imputes them from their neighbours, most relevant first (MoRF, lower is better)
    and least relevant first (LeRF, higher is better).

    Parameters
    ----------
    model : nn.Module
        In eval mode.
    inputs : torch.Tensor, shape (N, C, H, W)
        Normalised images.
    maps : dict of str to torch.Tensor, shape (N, 1, H, W)
        Explanations of the predicted class.
    step : int, optional
        Pixels per deletion step (default: one image row).
    percentages : sequence of float
        ROAD's removed shares, in percent.
    model_name : str
        Label of the model in the rows.
    seed : int
        Label of the network, and seed of ROAD's imputation noise.

    Returns
    -------
    pandas.DataFrame
        One row per method and image: ``model``, ``method``, ``seed``, ``index``,
        ``deletion`` (AUC of the probability, lower is better), ``road_morf``,
        ``road_lerf`` (mean probability over the removed shares), ``road_combined``
        (``(LeRF - MoRF) / 2``, higher is better).
    """
    pd = require("pandas", "proxy_scores")
    check_images(inputs, nonempty=True, finite=True)
    rows = []
    for method, m in maps.items():
        d = deletion(model, inputs, m, step=step)
        r = road(model, inputs, m, percentages=percentages, ties="rank", seed=seed)
        for i in range(len(inputs)):
            rows.append({
                "model": model_name, "method": method, "seed": seed, "index": i,
                "deletion": float(d.auc[i]), "road_morf": float(r.morf_mean[i]),
                "road_lerf": float(r.lerf_mean[i]), "road_combined": float(r.combined[i]),
            })  # fmt: skip
    return pd.DataFrame(rows)


def box_coverage(boxes: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Share of each image's region (e.g. its marker) inside each of its boxes.

    Parameters
    ----------
    boxes : torch.Tensor, shape (N, P, 4), long
        ``(x0, y0, x1, y1)`` per image and prototype, end exclusive (the boxes of
        :func:`interp_lib.protopnet.patch_visualisation_check`).
    region : torch.Tensor, shape (N, H, W), bool

    Returns
    -------
    torch.Tensor, shape (N, P), float64
        NaN where the region is empty.
    """
    region = check_tensor_ndim(region, "region", "(N, H, W)").bool()
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != region.shape[0]:
        raise ValueError(
            f"boxes must have shape (N, P, 4) for N = {region.shape[0]}, got {tuple(boxes.shape)}."
        )
    h, w = region.shape[-2:]
    rows = torch.arange(h).view(1, 1, -1, 1)
    cols = torch.arange(w).view(1, 1, 1, -1)
    x0, y0, x1, y1 = (boxes[..., k, None, None] for k in range(4))
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # (N, P, H, W)
    total = region.flatten(1).sum(1).double()  # (N,)
    covered = (inside & region[:, None]).flatten(2).sum(2).double()
    out = covered / total[:, None].clamp_min(1)
    out[total == 0] = math.nan
    return out
