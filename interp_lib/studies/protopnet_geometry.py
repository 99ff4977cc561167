"""The geometry of a prototype network: intrinsic dimension through a ProtoPNet.

Part III of the book puts the two papers together. Ansuini et al. (2019) measure how the
intrinsic dimension (ID) of the representation changes along a network; Chen et al.
(2019) build a network whose last stages *are* geometry: the squared distance of every
latent patch to every prototype (the **distance map**, ``(P, H, W)`` per image), its
min-pool turned into the **similarity vector** (``P`` numbers per image, the last
layer's input). Neither is a module of :class:`interp_lib.protopnet.ProtoPNet` (its
forward calls functions), so :class:`ProtoPNetLayers` wraps a ProtoPNet with one module
per stage, which the profiler (:func:`interp_lib.studies.class_profiles`) can name:

==========================  =========================================================
``features.*``              the trunk (shared with the same-trunk CNN)
``add_on``                  the latent map ``z`` (N, D, H, W), values in (0, 1)
``distances``               the distance map (N, P, H, W)
``similarities``            the similarity vector (N, P): the last hidden layer
``last_layer``              the logits (N, K)
==========================  =========================================================

One study function per experiment, each returning a result object with ``to_pandas``:

- ``geometry_study``: single-class ID profiles of ProtoPNets and their same-trunk
  CNNs (one pair per seed), paired ProtoPNet - CNN at every shared layer
  (:class:`GeometryStudy`);
- ``prototype_space_study``: the ID of the similarity vectors per class and over
  all classes, against the number of classes and of prototypes per class (prototypes
  removed and the last layer solved again), with the test accuracy of each network
  (:class:`PrototypeSpaceStudy`);
- ``stage_study``: profiles after every training step of a run
  (:func:`interp_lib.zoo.protopnet_birds_stages`) and of its untrained twin
  (:class:`StageStudy`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._plumbing import require
from .._validation import check_int, check_module
from ..id import twonn
from ..profile import collect_activations, list_layers
from .per_class import ClassProfiles, class_profiles
from .stats import CorrelationResult, PairedInterval, correlation_bootstrap, paired_interval

__all__ = [
    "GeometryStudy",
    "ProtoPNetLayers",
    "PrototypeSpaceStudy",
    "StageStudy",
    "cnn_layers",
    "geometry_study",
    "protopnet_layers",
    "prototype_space_study",
    "stage_study",
]

#: The shared name of the last hidden layer: the similarity vector of a ProtoPNet, the
#: pooled features of a CNN.
LAST_HIDDEN = "last hidden"


class _DistanceMap(nn.Module):
    """Latent map (N, D, H, W) -> distance map (N, P, H, W) of a ProtoPNet."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model = (model,)  # a tuple: not registered again as a submodule

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._model[0].distances(z)


class _SimilarityVector(nn.Module):
    """Distance map (N, P, H, W) -> similarity vector (N, P): min-pool, then similarity."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model = (model,)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        from ..protopnet import functional as PF

        m = self._model[0]
        return PF.similarity(PF.min_pool(d), m.similarity, m.eps)


class ProtoPNetLayers(nn.Module):
    """A ProtoPNet with its distance map and similarity vector as named modules.

    Computes exactly the ProtoPNet's logits, through the submodules ``features`` (the
    trunk), ``add_on``, ``distances`` (output: the distance map, shape (N, P, H, W)),
    ``similarities`` (output: the similarity vector, shape (N, P)) and ``last_layer``
    (output: logits, shape (N, K)). The ProtoPNet's own modules are shared, not copied.

    Parameters
    ----------
    model : interp_lib.protopnet.ProtoPNet

    Examples
    --------
    >>> import torch
    >>> from interp_lib.protopnet import ProtoPNet
    >>> net = ProtoPNet("small_cnn", n_classes=2, n_prototypes_per_class=2, image_size=32,
    ...                 prototype_dim=8, backbone_kwargs={"widths": (4, 8)}).eval()
    >>> x = torch.rand(3, 3, 32, 32)
    >>> bool(torch.allclose(ProtoPNetLayers(net)(x), net(x)))
    True
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        check_module(model)
        from ..protopnet import is_protopnet

        if not is_protopnet(model):
            raise TypeError(f"model must be a ProtoPNet, got {type(model).__name__}.")
        self.features = model.features
        self.add_on = model.add_on
        self.distances = _DistanceMap(model)
        self.similarities = _SimilarityVector(model)
        self.last_layer = model.last_layer
        self.training = model.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) of images (N, C, H, W)."""
        z = self.add_on(self.features(x))
        return self.last_layer(self.similarities(self.distances(z)))


def _trunk_layers(features: nn.Module, prefix: str) -> dict[str, str]:
    """Every max-pool of a trunk and its last module, ``{dotted name: short name}``."""
    pools = list_layers(features, types=(nn.MaxPool2d, nn.AvgPool2d))
    children = [name for name, _ in features.named_children()]
    if not children:
        raise ValueError("the trunk has no submodules to profile.")
    names = [*pools, children[-1]] if children[-1] not in pools else pools
    return {f"{prefix}.{n}": n for n in names}


def protopnet_layers(model: nn.Module) -> dict[str, str]:
    """The checkpoints of a :class:`ProtoPNetLayers` (or a ProtoPNet, which is wrapped).

    Returns
    -------
    dict
        ``{dotted name: alias}``: ``"input"``, the trunk's pooling layers and its last
        module, ``"add_on"`` (``"add-on"``), ``"distances"`` (``"distance map"``),
        ``"similarities"`` (``LAST_HIDDEN``) and ``"output"`` (``"logits"``).
    """
    net = model if isinstance(model, ProtoPNetLayers) else ProtoPNetLayers(model)
    return {
        "input": "input",
        **_trunk_layers(net.features, "features"),
        "add_on": "add-on",
        "distances": "distance map",
        "similarities": LAST_HIDDEN,
        "output": "logits",
    }


def cnn_layers(cnn: nn.Module) -> dict[str, str]:
    """The checkpoints of a pooled CNN (``features``, a global pool, ``head``).

    The trunk's layers carry the same aliases as in :func:`protopnet_layers`; the input
    of the last linear layer is ``LAST_HIDDEN``.

    Raises
    ------
    ValueError
        A model without a ``features`` trunk or without a linear layer.
    """
    check_module(cnn)
    if not isinstance(getattr(cnn, "features", None), nn.Module):
        raise ValueError(
            "cnn must have a `features` trunk (interp_lib.networks.pooled_classifier)."
        )
    children = [name for name, _ in cnn.named_children()]
    linear = [n for n in children if isinstance(getattr(cnn, n), nn.Linear)]
    if not linear:
        raise ValueError("cnn has no linear head among its children.")
    before = children[children.index(linear[-1]) - 1]
    return {
        "input": "input",
        **_trunk_layers(cnn.features, "features"),
        before: LAST_HIDDEN,
        "output": "logits",
    }


def _normalised_images(split: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(images the models take, labels) of a zoo split (``TensorImageDataset``)."""
    return split.transform(split.images), split.labels


def _class_means(p: ClassProfiles, alias: str) -> torch.Tensor:
    return p.twonn[:, p.layers.index(alias)]


@dataclass(frozen=True)
class GeometryStudy:
    """Single-class ID profiles of ProtoPNets and their same-trunk CNNs.

    Attributes
    ----------
    seeds : tuple
        One label per pair of networks.
    protopnet, cnn : tuple of ClassProfiles
        One per seed, on the same images and classes.
    shared : tuple of str
        The layers both networks have (``"input"``, the trunk's, ``LAST_HIDDEN``,
        ``"logits"``), in order.
    protopnet_accuracy, cnn_accuracy : tuple of float
        Test accuracy of each network.
    """

    seeds: tuple
    protopnet: tuple[ClassProfiles, ...]
    cnn: tuple[ClassProfiles, ...]
    shared: tuple[str, ...]
    protopnet_accuracy: tuple[float, ...]
    cnn_accuracy: tuple[float, ...]

    def values(self, network: str, layer: str) -> torch.Tensor:
        """TwoNN ID of ``layer`` in ``network`` (``"protopnet"`` or ``"cnn"``), shape
        (n_seeds, n_classes)."""
        runs = {"protopnet": self.protopnet, "cnn": self.cnn}.get(network)
        if runs is None:
            raise ValueError(f"network must be 'protopnet' or 'cnn', got {network!r}.")
        return torch.stack([_class_means(p, layer) for p in runs]).to(torch.float64)

    def difference(self, layer: str, *, over: str = "seeds") -> PairedInterval:
        """ProtoPNet - CNN at a shared ``layer``: paired over seeds (class means of each
        seed) or over all (seed, class) pairs (``over="pairs"``)."""
        if layer not in self.shared:
            raise ValueError(f"layer must be one of the shared layers {self.shared}.")
        a, b = self.values("protopnet", layer), self.values("cnn", layer)
        return _paired(a, b, over)

    def peak(self, network: str) -> tuple[str, torch.Tensor]:
        """The hidden layer (not input, not logits) with the highest mean ID, and its ID
        per (seed, class), shape (n_seeds, n_classes)."""
        prof = (self.protopnet if network == "protopnet" else self.cnn)[0]
        hidden = [x for x in prof.layers if x not in ("input", "logits")]
        means = {x: float(self.values(network, x).mean()) for x in hidden}
        best = max(means, key=means.get)
        return best, self.values(network, best)

    def compression(self, network: str) -> torch.Tensor:
        """Last hidden ID / peak ID per (seed, class): the final compression, shape
        (n_seeds, n_classes) (1 = none)."""
        _, peak = self.peak(network)
        return self.values(network, LAST_HIDDEN) / peak

    def rise(self, network: str, *, over: str = "seeds") -> PairedInterval:
        """Peak ID minus input ID of ``network``."""
        _, peak = self.peak(network)
        return _paired(peak, self.values(network, "input"), over)

    def fall(self, network: str, *, over: str = "seeds") -> PairedInterval:
        """Last hidden ID minus peak ID of ``network`` (negative: a final compression)."""
        _, peak = self.peak(network)
        return _paired(self.values(network, LAST_HIDDEN), peak, over)

    def to_pandas(self):
        """One row per shared layer: mean ID of each network, ProtoPNet - CNN with its 95 %
        interval over seeds and over (seed, class) pairs."""
        pd = require("pandas", "GeometryStudy.to_pandas")

        rows = []
        for layer in self.shared:
            s, p = self.difference(layer), self.difference(layer, over="pairs")
            rows.append({
                "layer": layer,
                "ProtoPNet": float(self.values("protopnet", layer).mean()),
                "CNN": float(self.values("cnn", layer).mean()),
                "ProtoPNet - CNN": s.mean,
                "low (seeds)": s.low,
                "high (seeds)": s.high,
                "low (seed x class)": p.low,
                "high (seed x class)": p.high,
            })  # fmt: skip
        return pd.DataFrame(rows).set_index("layer")


def _paired(a: torch.Tensor, b: torch.Tensor, over: str) -> PairedInterval:
    if over == "seeds":
        return paired_interval(a.nanmean(1), b.nanmean(1))
    if over == "pairs":
        return paired_interval(a.flatten(), b.flatten())
    raise ValueError(f"over must be 'seeds' or 'pairs', got {over!r}.")


def geometry_study(
    pairs: Sequence[Any],
    *,
    split: str = "train",
    n_per_class: int | None = None,
    n_resamples: int = 5,
    max_rank: int | None = 64,
    pca: bool = False,
    seed: int = 0,
    labels: Sequence | None = None,
) -> GeometryStudy:
    """Single-class ID profiles of ProtoPNets and their same-trunk CNNs.

    Parameters
    ----------
    pairs : sequence of BirdsModels
        One zoo pair per seed (:func:`interp_lib.zoo.protopnet_birds`): objects with
        ``protopnet``, ``cnn``, the split named by ``split`` (a ``TensorImageDataset``),
        ``protopnet_test_accuracy`` and ``cnn_test_accuracy``.
    split : {"train", "val", "test"}, default "train"
        The images profiled (the paper profiles training images).
    n_per_class : int, optional
        Images per class (default all).
    n_resamples, max_rank, pca, seed
        As in :func:`interp_lib.studies.class_profiles` (TwoNN over 90 % subsamples,
        Gride up to rank ``max_rank``, the PC-ID when ``pca``).
    labels : sequence, optional
        A label per pair (default ``0, 1, ...``).

    Returns
    -------
    GeometryStudy
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs is empty; pass at least one zoo pair.")
    kw = {"n_per_class": n_per_class, "n_resamples": n_resamples, "max_rank": max_rank,
          "pca": pca, "seed": seed}  # fmt: skip
    ppn, cnn, acc_p, acc_c = [], [], [], []
    for pair in pairs:
        images, y = _normalised_images(getattr(pair, split))
        net = ProtoPNetLayers(pair.protopnet).eval()
        ppn.append(class_profiles(net, images, y, protopnet_layers(net), **kw))
        cnn.append(class_profiles(pair.cnn.eval(), images, y, cnn_layers(pair.cnn), **kw))
        acc_p.append(float(pair.protopnet_test_accuracy))
        acc_c.append(float(pair.cnn_test_accuracy))
    shared = tuple(x for x in ppn[0].layers if x in cnn[0].layers)
    return GeometryStudy(
        seeds=tuple(labels) if labels is not None else tuple(range(len(pairs))),
        protopnet=tuple(ppn),
        cnn=tuple(cnn),
        shared=shared,
        protopnet_accuracy=tuple(acc_p),
        cnn_accuracy=tuple(acc_c),
    )


@torch.no_grad()
def _similarities(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Similarity vectors (N, P) of a ProtoPNet, in float64."""
    net = ProtoPNetLayers(model).eval()
    acts = collect_activations(net, images, ["similarities"], batch_size=batch_size,
                               progress=False)  # fmt: skip
    return acts["similarities"].to(torch.float64)


def _id(points: torch.Tensor, n_resamples: int, seed: int) -> float:
    """TwoNN over ``n_resamples`` 90 % subsamples (mean), or the full-set estimate."""
    with warnings.catch_warnings():  # ties (saturated similarities) are dropped, said once
        warnings.filterwarnings("ignore", message=".*dropped.*")
        res = twonn(points, n_resamples=n_resamples, seed=seed)
    if res.resamples is not None and res.resamples.numel():
        return float(res.resamples.mean())
    return float(res.dimension)


def _keep_indices(classes: torch.Tensor, per_class: int) -> torch.Tensor:
    """The first ``per_class`` prototypes of each class (indices into P)."""
    keep = []
    for c in classes.unique().tolist():
        keep.extend(torch.nonzero(classes == c).flatten()[:per_class].tolist())
    return torch.tensor(sorted(keep))


def _solve(s: torch.Tensor, y: torch.Tensor, identity: torch.Tensor, nonpositive: bool):
    """The convex last layer (K, P) on similarities ``s`` (the zoo recipe's rule)."""
    from ..protopnet.last_layer import solve_last_layer

    mask = 1 - identity.T  # (K, P): 1 off-class
    w0 = (identity.T - 0.5 * mask).to(torch.float64)
    sol = solve_last_layer(s, y, w0, mask, nonpositive=mask.bool() if nonpositive else None)
    return sol.weight.to(torch.float64)


@dataclass(frozen=True)
class PrototypeSpaceStudy:
    """The ID of the similarity vectors against classes and prototypes per class.

    Attributes
    ----------
    networks : tuple of dict
        One row per (seed, prototypes per class): ``seed``, ``per_class``,
        ``n_prototypes``, ``id_all`` (all classes mixed), ``id_class`` (mean over the
        single-class sets), ``test_accuracy`` (last layer solved again on the training
        similarities of the kept prototypes).
    classes : tuple of dict
        One row per (seed, number of classes k): ``seed``, ``n_classes``, ``id_all``
        (the similarity vectors of the images of the first k classes).
    cnn : tuple of dict
        One row per seed: ``seed``, ``id_all``, ``id_class`` of the CNN's last hidden
        layer, ``n_units``, ``test_accuracy``.
    """

    networks: tuple[dict[str, Any], ...]
    classes: tuple[dict[str, Any], ...]
    cnn: tuple[dict[str, Any], ...]

    def to_pandas(self, what: str = "networks"):
        """``"networks"``, ``"classes"`` or ``"cnn"`` as a DataFrame."""
        pd = require("pandas", "PrototypeSpaceStudy.to_pandas")
        if what not in ("networks", "classes", "cnn"):
            raise ValueError(f"what must be 'networks', 'classes' or 'cnn', got {what!r}.")
        return pd.DataFrame(list(getattr(self, what)))

    def correlation(
        self, *, what: str = "id_all", n_resamples: int = 2000, seed: int = 0
    ) -> CorrelationResult:
        """Correlation of the last-hidden ID (``what``) with the test **error** over the
        networks, bootstrap resampling whole seeds (the prototype counts of one seed share
        their trunk and prototypes)."""
        x = [r[what] for r in self.networks]
        y = [1 - r["test_accuracy"] for r in self.networks]
        groups = [r["seed"] for r in self.networks]
        return correlation_bootstrap(
            x, y, groups=groups if len(set(groups)) > 1 else None,
            n_resamples=n_resamples, seed=seed,
        )  # fmt: skip


def prototype_space_study(
    pairs: Sequence[Any],
    *,
    per_class: Sequence[int | None] = (1, 2, 3, None),
    class_counts: Sequence[int] | None = None,
    n_resamples: int = 5,
    nonpositive: bool = True,
    seed: int = 0,
    labels: Sequence | None = None,
) -> PrototypeSpaceStudy:
    """The similarity vectors' ID per class and overall, against classes and prototypes.

    For each pair (seed): the similarity vectors (N, P) of the training images and of the
    test images. For each entry of ``per_class``, only the first that many prototypes of
    every class are kept, the last layer is solved again on the training similarities
    (the convex rule of the zoo's recipe,
    :func:`interp_lib.protopnet.last_layer.solve_last_layer`; ``None`` keeps every
    prototype and also solves again, for a like-for-like comparison) and the test
    accuracy measured; the ID of the kept coordinates is measured on all training images
    (classes mixed) and on each class. For each ``k`` of ``class_counts``, the ID of all
    similarity vectors of the images of the first ``k`` classes. The CNN's last hidden
    layer is measured on the same images.

    Parameters
    ----------
    pairs : sequence of BirdsModels
        As in :func:`geometry_study`.
    per_class : sequence of int or None, default (1, 2, 3, None)
        Prototypes kept per class.
    class_counts : sequence of int, optional
        Default ``2, 4, ...`` up to the number of classes.
    n_resamples : int, default 5
        TwoNN subsamples per estimate.
    nonpositive : bool, default True
        Solve with off-class weights ``<= 0`` (the zoo's default rule).
    seed : int, default 0
    labels : sequence, optional
        A label per pair (default ``0, 1, ...``).

    Returns
    -------
    PrototypeSpaceStudy
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs is empty; pass at least one zoo pair.")
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    names = list(labels) if labels is not None else list(range(len(pairs)))
    nets, by_classes, cnn_rows = [], [], []
    for name, pair in zip(names, pairs, strict=True):
        model = pair.protopnet.eval()
        x_tr, y_tr = _normalised_images(pair.train)
        x_te, y_te = _normalised_images(pair.test)
        s_tr, s_te = _similarities(model, x_tr), _similarities(model, x_te)
        identity = model.class_identity.detach().to(torch.float64)
        proto_class = identity.argmax(1)
        n_max = int(torch.bincount(proto_class).max())
        for m in per_class:
            k = n_max if m is None else check_int(m, "per_class entries", minimum=1)
            keep = _keep_indices(proto_class, min(k, n_max))
            w = _solve(s_tr[:, keep], y_tr, identity[keep], nonpositive)
            acc = float(((s_te[:, keep] @ w.T).argmax(1) == y_te).double().mean())
            per = [_id(s_tr[y_tr == c][:, keep], n_resamples, seed) for c in y_tr.unique()]
            nets.append({
                "seed": name, "per_class": k, "n_prototypes": int(keep.numel()),
                "id_all": _id(s_tr[:, keep], n_resamples, seed),
                "id_class": float(torch.tensor(per).nanmean()), "test_accuracy": acc,
            })  # fmt: skip
        n_classes = int(identity.shape[1])
        counts = class_counts if class_counts is not None else range(2, n_classes + 1, 2)
        for k in counts:
            k = check_int(k, "class_counts entries", minimum=2)
            rows = y_tr < k
            by_classes.append({"seed": name, "n_classes": k,
                               "id_all": _id(s_tr[rows], n_resamples, seed)})  # fmt: skip
        cnn = pair.cnn.eval()
        layer = next(n for n, a in cnn_layers(cnn).items() if a == LAST_HIDDEN)
        h = collect_activations(cnn, x_tr, [layer], progress=False)[layer].to(torch.float64)
        h = h.flatten(1)
        per = [_id(h[y_tr == c], n_resamples, seed) for c in y_tr.unique()]
        cnn_rows.append({"seed": name, "n_units": int(h.shape[1]),
                         "id_all": _id(h, n_resamples, seed),
                         "id_class": float(torch.tensor(per).nanmean()),
                         "test_accuracy": float(pair.cnn_test_accuracy)})  # fmt: skip
    return PrototypeSpaceStudy(tuple(nets), tuple(by_classes), tuple(cnn_rows))


@dataclass(frozen=True)
class StageStudy:
    """Single-class ID profiles after every training step, and of the untrained twin.

    Attributes
    ----------
    stages : tuple of str
        The steps (labels of :class:`interp_lib.zoo.BirdsStages`).
    kinds : tuple of str
    profiles : tuple of ClassProfiles
        One per stage.
    untrained : ClassProfiles
    test_accuracy : tuple of float
        Test accuracy after each stage.
    """

    stages: tuple[str, ...]
    kinds: tuple[str, ...]
    profiles: tuple[ClassProfiles, ...]
    untrained: ClassProfiles
    test_accuracy: tuple[float, ...]

    @property
    def layers(self) -> tuple[str, ...]:
        return self.untrained.layers

    @property
    def gride_ranks(self) -> tuple[int, ...]:
        return self.untrained.gride_ranks

    def grid(self, rank: int | None = None) -> torch.Tensor:
        """Mean ID over classes, shape (n_stages, n_layers): TwoNN, or Gride at ``rank``."""
        if rank is None:
            return torch.stack([p.mean() for p in self.profiles])
        return torch.stack([p.at_rank(rank).nanmean(0) for p in self.profiles])

    def twin(self, rank: int | None = None) -> torch.Tensor:
        """The untrained twin's mean ID, shape (n_layers,)."""
        return self.untrained.mean() if rank is None else self.untrained.at_rank(rank).nanmean(0)

    def change(self, layer: str, first: int | str = 0, last: int | str = -1) -> PairedInterval:
        """ID at stage ``last`` minus at stage ``first`` of ``layer``, paired by class."""
        i, j = (self.stages.index(s) if isinstance(s, str) else s for s in (first, last))
        a, b = self.profiles[j], self.profiles[i]
        return paired_interval(_class_means(a, layer), _class_means(b, layer))

    def versus_twin(self, layer: str, stage: int | str = -1) -> PairedInterval:
        """ID at ``stage`` minus the untrained twin's, paired by class."""
        i = self.stages.index(stage) if isinstance(stage, str) else stage
        return paired_interval(
            _class_means(self.profiles[i], layer), _class_means(self.untrained, layer)
        )

    def to_pandas(self, rank: int | None = None):
        """Stages x layers of mean ID (TwoNN, or Gride at ``rank``), with the untrained twin
        as the last row and the test accuracy as a column."""
        pd = require("pandas", "StageStudy.to_pandas")
        grid = torch.cat([self.grid(rank), self.twin(rank)[None]]).tolist()
        df = pd.DataFrame(grid, columns=list(self.layers),
                          index=pd.Index([*self.stages, "untrained"], name="stage"))  # fmt: skip
        df["test accuracy"] = [*self.test_accuracy, math.nan]
        return df


def _body_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of a ProtoPNet's state but its last layer's."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("last_layer.")}


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _splice(base: ClassProfiles, logits: ClassProfiles) -> ClassProfiles:
    """``base`` with its ``"logits"`` layer replaced by the one layer of ``logits``."""
    j = base.layers.index("logits")
    per_layer = ("relative_depth", "n_features", "dimension", "id", "id_sd", "resamples",
                 "pca", "gride", "gride_scale")  # fmt: skip
    records = []
    for old, new in zip(base.to_records(), logits.to_records(), strict=True):
        rec = dict(old)
        for key in per_layer:
            if key in rec and key in new:
                rec[key] = [*rec[key][:j], new[key][0], *rec[key][j + 1 :]]
        records.append(rec)
    return ClassProfiles.from_records(records, estimator=base.estimator, label=base.label)


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).double().mean())


def stage_study(
    run: Any,
    *,
    n_per_class: int | None = None,
    n_resamples: int = 5,
    max_rank: int | None = 32,
    seed: int = 0,
    stages: Sequence[int | str] | None = None,
) -> StageStudy:
    """Single-class ID profiles of a ProtoPNet after every training step.

    Parameters
    ----------
    run : BirdsStages
        From :func:`interp_lib.zoo.protopnet_birds_stages`: ``stages``, ``kinds``,
        ``model(stage)`` (also ``model("untrained")``), ``train`` and ``test`` splits.
    n_per_class, n_resamples, max_rank, seed
        As in :func:`interp_lib.studies.class_profiles`; profiles of the training images
        (TwoNN and Gride, no PC-ID). A stage that changed only the last layer (a
        last-layer solve) is measured at the logits only; its other layers are those of
        the stage before.
    stages : sequence of int or str, optional
        The stages to profile (default all).

    Returns
    -------
    StageStudy
    """
    picked = list(range(len(run.stages))) if stages is None else [
        run.stages.index(s) if isinstance(s, str) else int(s) for s in stages
    ]  # fmt: skip
    x, y = _normalised_images(run.train)
    x_te, y_te = _normalised_images(run.test)
    kw = {"n_per_class": n_per_class, "n_resamples": n_resamples, "max_rank": max_rank,
          "seed": seed, "pca": False}  # fmt: skip

    def profile(model: nn.Module, layers: dict[str, str] | None = None) -> ClassProfiles:
        net = ProtoPNetLayers(model).eval()
        return class_profiles(net, x, y, layers or protopnet_layers(net), **kw)

    profiles: list[ClassProfiles] = []
    acc, previous = [], None
    for i in picked:
        model = run.model(i)
        body = _body_state(model)
        if previous is not None and _same_state(body, previous[0]):
            # only the last layer changed (a last-layer solve): only the logits are new
            profiles.append(_splice(previous[1], profile(model, {"output": "logits"})))
        else:
            profiles.append(profile(model))
        previous = (body, profiles[-1])
        acc.append(_accuracy(model, x_te, y_te))
    return StageStudy(
        stages=tuple(run.stages[i] for i in picked),
        kinds=tuple(run.kinds[i] for i in picked),
        profiles=tuple(profiles),
        untrained=profile(run.model("untrained")),
        test_accuracy=tuple(acc),
    )
