"""Last-hidden ID against test error over architectures (Ansuini et al., 2019, Fig. 4).

The paper's claim is about *converged* networks that differ in *architecture*: across 14
ImageNet networks the ID of the last hidden layer and the top-5 test error correlate
(Pearson 0.94). This module runs that study on a family of small networks:

==============================  =====================================================
architectures as data           :class:`Architecture`, the default family
                                ``ARCHITECTURES`` (VGG-like and ResNet-like, of
                                several depths, widths and head widths)
train to a stated criterion     :func:`train_to_criterion` -> :class:`FitRecord`
                                (train accuracy, in eval mode on the whole training
                                set, at least ``target``; or ``max_epochs``)
last-hidden ID at several       :func:`last_hidden_ids` (TwoNN as the paper, mean over
scales                          90 % subsamples; Gride at ranks (1, 2) ... (16, 32))
the study                       :func:`generalisation_study` ->
                                :class:`GeneralisationStudy` (one row per network;
                                :meth:`~GeneralisationStudy.correlations`: Pearson
                                and Spearman with bootstrap intervals over
                                architectures, width-matched and within-family
                                subsets, and leave-one-architecture-out)
==============================  =====================================================

Differences from the authors' protocol (``scripts/pretrained/last_hidden.py``): they take
pretrained torchvision networks (trained by others, to different recipes) and measure the
last hidden layer on 2000 *training* images of ImageNet; here every network is trained
by the same loop to the same criterion and measured on held-out images.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._plumbing import NonFiniteLossError, evaluating, require
from .._validation import check_int, make_generator
from ..networks import cnn_classifier, residual_classifier
from .stats import correlation_bootstrap

__all__ = [
    "ARCHITECTURES",
    "BIRDS_TASK",
    "Architecture",
    "FitRecord",
    "GeneralisationStudy",
    "birds_task",
    "compare_to_summary",
    "generalisation_study",
    "last_hidden_ids",
    "load_generalisation_summary",
    "train_to_criterion",
]


@dataclass(frozen=True)
class Architecture:
    """One architecture of the family, as data.

    Parameters
    ----------
    name : str
    kind : {"vgg", "resnet"}
        ``"vgg"``: :func:`interp_lib.networks.cnn_classifier` (conv stages with max-pools,
        then ``hidden`` fully connected layers); ``"resnet"``:
        :func:`interp_lib.networks.residual_classifier` (its last hidden layer is the
        global average pool, of width ``widths[-1]``).
    widths : tuple of int
        Channels per stage.
    hidden : tuple of int
        Fully connected hidden layers of a ``"vgg"`` network (ignored for ``"resnet"``).
    convs_per_stage : int
        Convolutions per stage of a ``"vgg"`` network.
    blocks_per_stage : int
        Residual blocks per stage of a ``"resnet"`` network.
    """

    name: str
    kind: str
    widths: tuple[int, ...]
    hidden: tuple[int, ...] = (128,)
    convs_per_stage: int = 1
    blocks_per_stage: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("vgg", "resnet"):
            raise ValueError(f"kind must be 'vgg' or 'resnet', got {self.kind!r}.")
        if not self.widths:
            raise ValueError(f"{self.name}: widths must name at least one stage.")
        if self.kind == "vgg" and not self.hidden:
            raise ValueError(f"{self.name}: a 'vgg' network needs a hidden layer.")

    @property
    def last_hidden_layer(self) -> str:
        """Module name of the last hidden representation (after its ReLU, as the authors'
        ``classifier[:-1]`` cut; a ResNet's global average pool)."""
        return "avgpool" if self.kind == "resnet" else f"relu_fc{len(self.hidden)}"

    @property
    def last_hidden_width(self) -> int:
        """Width of the last hidden layer."""
        return self.widths[-1] if self.kind == "resnet" else self.hidden[-1]

    @property
    def depth(self) -> int:
        """Number of weight layers (convolutions and linear layers, the output included;
        a ResNet's 1x1 shortcuts not counted)."""
        if self.kind == "resnet":
            return 1 + 2 * self.blocks_per_stage * len(self.widths) + 1
        return self.convs_per_stage * len(self.widths) + len(self.hidden) + 1

    def build(
        self, n_classes: int, *, in_channels: int, image_size: int, seed: int = 0
    ) -> nn.Module:
        """A freshly initialised network, its weights drawn after ``torch.manual_seed(seed)``
        inside :func:`torch.random.fork_rng` (the caller's global random state is left as
        it was)."""
        seed = check_int(seed, "seed", minimum=0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.kind == "resnet":
                return residual_classifier(
                    n_classes,
                    in_channels=in_channels,
                    image_size=image_size,
                    widths=self.widths,
                    blocks_per_stage=self.blocks_per_stage,
                )
            return cnn_classifier(
                n_classes,
                in_channels=in_channels,
                image_size=image_size,
                widths=self.widths,
                convs_per_stage=self.convs_per_stage,
                hidden=self.hidden,
            )


#: The default family: ten architectures of two kinds. Seven share a last hidden width of
#: 128 (the width-matched control); three vary it (32, 512, and a ResNet's 64).
ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("vgg1", "vgg", (16,)),
    Architecture("vgg2", "vgg", (16, 32)),
    Architecture("vgg2-wide", "vgg", (32, 64)),
    Architecture("vgg3", "vgg", (16, 32, 64)),
    Architecture("vgg3x2", "vgg", (8, 16, 32), convs_per_stage=2),
    Architecture("vgg2-fc2", "vgg", (16, 32), hidden=(256, 128)),
    Architecture("vgg2-head32", "vgg", (16, 32), hidden=(32,)),
    Architecture("vgg2-head512", "vgg", (16, 32), hidden=(512,)),
    Architecture("resnet3", "resnet", (16, 32, 64)),
    Architecture("resnet3-wide", "resnet", (32, 64, 128)),
)


#: The study's task: procedural birds hard enough that test errors span tens of per cent.
BIRDS_TASK = {
    "n_per_class": 100,
    "n_test_per_class": 100,
    "image_size": 32,
    "difficulty": 0.3,
    "train_seed": 0,
    "test_seed": 1,
}


def birds_task(**overrides) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """The study's training and held-out sets: ``((x_train, y_train), (x_test, y_test))``.

    Procedural birds (:func:`interp_lib.datasets.birds`) with the settings of
    ``BIRDS_TASK`` (``overrides`` replace some), z-scored per channel with the
    training set's mean and standard deviation. The two sets are drawn with different
    seeds (same classes, other poses, colours and clutter).
    """
    from ..datasets import birds

    cfg = {**BIRDS_TASK, **overrides}
    unknown = set(cfg) - set(BIRDS_TASK)
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}; known: {sorted(BIRDS_TASK)}.")
    common = {"image_size": cfg["image_size"], "difficulty": cfg["difficulty"]}
    tr = birds(cfg["n_per_class"], seed=cfg["train_seed"], **common)
    te = birds(cfg["n_test_per_class"], seed=cfg["test_seed"], **common)
    mean = tr.images.mean((0, 2, 3), keepdim=True)
    std = tr.images.std((0, 2, 3), keepdim=True)
    return ((tr.images - mean) / std, tr.labels), ((te.images - mean) / std, te.labels)


@dataclass
class FitRecord:
    """What :func:`train_to_criterion` did.

    Attributes
    ----------
    epochs : int
        Epochs trained.
    reached : bool
        Whether the criterion was met (else ``max_epochs`` ran out).
    train_accuracy : float
        Final accuracy on the whole training set, in eval mode (``nan`` if never checked).
    loss : list of float
        Mean training loss of each epoch.
    running_accuracy : list of float
        Accuracy on the batches during each epoch (train mode).
    """

    epochs: int
    reached: bool
    train_accuracy: float
    loss: list[float] = field(default_factory=list)
    running_accuracy: list[float] = field(default_factory=list)


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    with evaluating(model):
        correct = sum(
            int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
            for i in range(0, len(y), batch_size)
        )
    return correct / len(y)


def train_to_criterion(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    target: float = 0.99,
    max_epochs: int = 60,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int | torch.Generator | None = 0,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
    channels_last: bool = True,
) -> FitRecord:
    """Train with Adam until the training accuracy reaches ``target`` (or ``max_epochs``).

    The criterion is the accuracy on the **whole** training set in eval mode (BatchNorm
    uses its running statistics), computed after every epoch whose running (train-mode)
    accuracy reached ``target - 0.02``; training stops at the first epoch that meets it.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place, on the CPU or wherever it lives; left in eval mode.
    images, labels : torch.Tensor
        The training set, ``(N, C, H, W)`` and ``(N,)`` (pass permuted labels for the
        shuffled-label control).
    target : float in (0, 1], default 0.99
    max_epochs : int, default 60
    lr, batch_size : Adam's learning rate, images per step
    seed : int, torch.Generator or None
        Seeds the batch order.
    on_epoch : callable ``(epoch, model) -> None``, optional
        Called after every epoch (e.g. to measure the ID along training); the model is
        in eval mode during the call.
    channels_last : bool, default True
        Train in the channels-last memory format (the same function, faster convolutions
        on CPUs); the model is left in that format.

    Returns
    -------
    FitRecord
    """
    max_epochs = check_int(max_epochs, "max_epochs")
    if not 0 < float(target) <= 1:
        raise ValueError(f"target must be a training accuracy in (0, 1], got {target}.")
    labels = torch.as_tensor(labels)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels; pass one per image.")
    gen = make_generator(seed)
    batch_size = check_int(batch_size, "batch_size")
    fmt = torch.channels_last if channels_last and images.ndim == 4 else torch.contiguous_format
    model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    record = FitRecord(epochs=0, reached=False, train_accuracy=math.nan)
    for epoch in range(1, max_epochs + 1):
        model.train()
        total = correct = 0
        running = 0.0
        order = torch.randperm(len(labels), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x, y = images[idx].contiguous(memory_format=fmt), labels[idx]
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(f"non-finite loss at epoch {epoch}: lower the lr.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += value * len(y)
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
        record.epochs = epoch
        record.loss.append(running / total)
        record.running_accuracy.append(correct / total)
        model.eval()
        if on_epoch is not None:
            on_epoch(epoch, model)
        if correct / total >= target - 0.02 or epoch == max_epochs:
            record.train_accuracy = _accuracy(model, images, labels)
            if record.train_accuracy >= target:
                record.reached = True
                break
    model.eval()
    return record


#: Gride neighbour ranks (n1, n2) of :func:`last_hidden_ids`: (1, 2) is TwoNN's scale.
GRIDE_MAX_RANK = 32


def last_hidden_ids(
    model: nn.Module,
    layer: str,
    images: torch.Tensor,
    *,
    n_resamples: int = 5,
    max_rank: int = GRIDE_MAX_RANK,
    seed: int = 0,
) -> dict:
    """TwoNN and Gride IDs of one layer's representation of ``images``.

    Returns
    -------
    dict
        ``twonn``: the mean TwoNN estimate over ``n_resamples`` random 90 % subsamples
        (the authors' protocol); ``gride``: Gride IDs at ranks (1, 2), (2, 4), ... up to
        ``max_rank`` (growing neighbourhoods); ``gride_ranks``: their ``n2``.
    """
    import warnings

    from ..id import gride, twonn
    from ..profile import collect_activations

    acts = collect_activations(model, images, [layer], progress=False)[layer]
    acts = acts.flatten(1).double()
    with warnings.catch_warnings():  # ReLU ties: TwoNN drops them and says so
        warnings.filterwarnings("ignore", message=".*dropped.*")
        res = twonn(acts, n_resamples=n_resamples, seed=seed)
        g = gride(acts, max_rank=max_rank)
    return {
        "twonn": float(res.resamples.mean()) if res.resamples is not None else res.dimension,
        "gride": [float(d) for d in g.dimensions],
        "gride_ranks": [int(n) for n in g.n2],
    }


@torch.no_grad()
def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 1.0 - _accuracy(model, x, y)


def generalisation_study(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    architectures: Sequence[Architecture] = ARCHITECTURES,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    target: float = 0.99,
    max_epochs: int = 60,
    lr: float = 1e-3,
    track: Sequence[str] = (),
    id_images: int | None = None,
    n_resamples: int = 5,
    log: Callable[[str], None] | None = None,
) -> GeneralisationStudy:
    """Train every architecture from every seed to the criterion; measure the last hidden
    layer's ID on held-out images and the test error.

    Parameters
    ----------
    train, test : (images, labels)
        ``test`` is held out: the ID is measured on its images (the first ``id_images``
        of them, default all) and the error on all of them.
    architectures : sequence of Architecture
    seeds : sequence of int
        Seed of the initial weights and of the batch order.
    target, max_epochs, lr
        The criterion of :func:`train_to_criterion`.
    track : sequence of str
        Names of architectures whose last-hidden ID and test error are also recorded
        after every epoch (the training-progress curve).
    id_images : int, optional
    n_resamples : int
        TwoNN subsamples (90 %) averaged per estimate.
    log : callable, optional
        Receives one line per network (e.g. ``print``).

    Returns
    -------
    GeneralisationStudy
    """
    x_tr, y_tr = train
    x_te, y_te = test
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    x_id = x_te if id_images is None else x_te[:id_images]
    names = [a.name for a in architectures]
    if len(set(names)) != len(names):
        raise ValueError(f"architecture names must be unique, got {names}.")
    unknown = set(track) - set(names)
    if unknown:
        raise ValueError(f"track names unknown architectures {sorted(unknown)}; known: {names}.")
    rows = []
    for arch in architectures:
        for seed in seeds:
            start = time.perf_counter()
            net = arch.build(n_classes, in_channels=x_tr.shape[1], image_size=x_tr.shape[-1],
                             seed=seed)  # fmt: skip
            curve: list[dict] = []

            def on_epoch(epoch, model, arch=arch, curve=curve):
                ids = last_hidden_ids(model, arch.last_hidden_layer, x_id,
                                      n_resamples=n_resamples)  # fmt: skip
                curve.append({"epoch": epoch, "twonn": ids["twonn"],
                              "test_error": _error(model, x_te, y_te)})  # fmt: skip

            fit = train_to_criterion(
                net, x_tr, y_tr, target=target, max_epochs=max_epochs, lr=lr,
                seed=1000 + seed, on_epoch=on_epoch if arch.name in track else None,
            )  # fmt: skip
            ids = last_hidden_ids(net, arch.last_hidden_layer, x_id, n_resamples=n_resamples)
            row = {
                "arch": arch.name,
                "kind": arch.kind,
                "depth": arch.depth,
                "width": arch.last_hidden_width,
                "seed": seed,
                "epochs": fit.epochs,
                "reached": fit.reached,
                "train_accuracy": fit.train_accuracy,
                "test_error": _error(net, x_te, y_te),
                "twonn": ids["twonn"],
                "gride": ids["gride"],
                "gride_ranks": ids["gride_ranks"],
                "curve": curve,
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            if log is not None:
                log(
                    f"{arch.name} seed {seed}: {fit.epochs} epochs, train acc "
                    f"{fit.train_accuracy:.3f}, test error {row['test_error']:.3f}, "
                    f"ID {row['twonn']:.2f} ({row['seconds']:.0f} s)"
                )
    return GeneralisationStudy(rows, [asdict(a) for a in architectures])


@dataclass
class GeneralisationStudy:
    """The networks of a :func:`generalisation_study`, one dict per network.

    Attributes
    ----------
    rows : list of dict
        ``arch, kind, depth, width, seed, epochs, reached, train_accuracy, test_error,
        twonn, gride, gride_ranks, curve, seconds``.
    architectures : list of dict
        The :class:`Architecture` of each name, as dicts.
    """

    rows: list[dict]
    architectures: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready dict (``from_dict`` reads it back)."""
        return {"rows": self.rows, "architectures": self.architectures}

    @classmethod
    def from_dict(cls, data: dict) -> GeneralisationStudy:
        return cls(list(data["rows"]), list(data.get("architectures", [])))

    def to_pandas(self):
        """One row per network, with the Gride IDs as columns ``gride_<n2>``."""
        pd = require("pandas", "GeneralisationStudy.to_pandas")

        flat = []
        for r in self.rows:
            row = {k: v for k, v in r.items() if k not in ("gride", "gride_ranks", "curve")}
            row.update({f"gride_{n}": d for n, d in zip(r["gride_ranks"], r["gride"], strict=True)})
            flat.append(row)
        return pd.DataFrame(flat)

    def by_architecture(self):
        """Mean over seeds per architecture (and the seeds' sd of error and ID)."""
        df = self.to_pandas()
        keys = ["arch", "kind", "depth", "width"]
        num = [c for c in df.columns if c not in (*keys, "seed", "reached")]
        mean = df.groupby(keys, sort=False)[num].mean()
        sd = df.groupby(keys, sort=False)[["test_error", "twonn"]].std()
        mean["test_error_sd"] = sd["test_error"]
        mean["twonn_sd"] = sd["twonn"]
        mean["n_seeds"] = df.groupby(keys, sort=False).size()
        mean["all_reached"] = df.groupby(keys, sort=False)["reached"].all()
        return mean.reset_index()

    def curves(self):
        """The training-progress rows: ``arch, seed, epoch, twonn, test_error``."""
        pd = require("pandas", "GeneralisationStudy.curves")

        out = [{"arch": r["arch"], "seed": r["seed"], **c} for r in self.rows for c in r["curve"]]
        return pd.DataFrame(out, columns=["arch", "seed", "epoch", "twonn", "test_error"])

    def correlations(
        self,
        id_column: str = "twonn",
        *,
        subsets: Sequence[str] = ("architectures", "networks", "width", "kind", "seed"),
        n_resamples: int = 2000,
        seed: int = 0,
    ):
        """Correlation of the last-hidden ID with the test error, on several subsets.

        Rows (``subset``):

        - ``architectures``: one point per architecture (mean over seeds), bootstrap over
          architectures, the unit of the paper's claim;
        - ``networks``: every network, bootstrap over architectures (a cluster
          bootstrap: seeds of one architecture are not independent draws);
        - ``width <w>``: architectures with the most common last-hidden width (the
          width-matched control), one point per architecture;
        - ``kind <k>``: within one kind (VGG-like, ResNet-like), one point per
          architecture, where it has at least 4 architectures;
        - ``seed <s>``: one point per architecture from seed ``s`` only (the point
          estimates only, no interval: a replication check).

        Parameters
        ----------
        id_column : str
            ``"twonn"`` or a Gride column ``"gride_<n2>"`` of :meth:`to_pandas`.
        subsets : sequence of str
            Which of ``"architectures", "networks", "width", "kind", "seed"`` to compute
            (each bootstrap takes a few seconds).
        n_resamples, seed
            Of the bootstrap (:func:`interp_lib.studies.correlation_bootstrap`).

        Returns
        -------
        pandas.DataFrame
            ``subset, n, pearson, pearson_low, pearson_high, spearman, spearman_low,
            spearman_high``.
        """
        pd = require("pandas", "GeneralisationStudy.correlations")

        df = self.to_pandas()
        arch = self.by_architecture()
        out = []

        unknown = set(subsets) - {"architectures", "networks", "width", "kind", "seed"}
        if unknown:
            raise ValueError(f"unknown subsets {sorted(unknown)}.")

        def add(name, x, y, groups=None, interval=True):
            if len(x) < 3:
                return
            c = correlation_bootstrap(
                x, y, groups=groups, n_resamples=n_resamples if interval else 1, seed=seed
            )
            nan = (math.nan, math.nan)
            p_int = c.pearson_interval if interval else nan
            s_int = c.spearman_interval if interval else nan
            out.append(
                {
                    "subset": name,
                    "n": c.n,
                    "pearson": c.pearson,
                    "pearson_low": p_int[0],
                    "pearson_high": p_int[1],
                    "spearman": c.spearman,
                    "spearman_low": s_int[0],
                    "spearman_high": s_int[1],
                }
            )

        if "architectures" in subsets:
            add("architectures", arch[id_column], arch["test_error"])
        if "networks" in subsets:
            add("networks", df[id_column], df["test_error"], groups=df["arch"])
        if "width" in subsets:
            width = int(arch["width"].mode().iloc[0])
            sub = arch[arch["width"] == width]
            if len(sub) >= 4:
                add(f"width {width}", sub[id_column], sub["test_error"])
        if "kind" in subsets:
            for kind, sub in arch.groupby("kind", sort=False):
                if len(sub) >= 4:
                    add(f"kind {kind}", sub[id_column], sub["test_error"])
        if "seed" in subsets:
            for s, sub in df.groupby("seed", sort=True):
                if len(sub) >= 4:
                    add(f"seed {s}", sub[id_column], sub["test_error"], interval=False)
        return pd.DataFrame(out)

    def leave_one_out(self, id_column: str = "twonn"):
        """Pearson and Spearman over architecture means with each architecture left out.

        Returns
        -------
        pandas.DataFrame
            ``left_out, pearson, spearman``, one row per architecture.
        """
        pd = require("pandas", "GeneralisationStudy.leave_one_out")
        from scipy.stats import pearsonr, spearmanr

        arch = self.by_architecture()
        out = []
        for name in arch["arch"]:
            sub = arch[arch["arch"] != name]
            out.append(
                {
                    "left_out": name,
                    "pearson": float(pearsonr(sub[id_column], sub["test_error"])[0]),
                    "spearman": float(spearmanr(sub[id_column], sub["test_error"])[0]),
                }
            )
        return pd.DataFrame(out)


#: The tracked summary of ``bench/id_generalisation.py`` in a source checkout.
SUMMARY_PATH = (
    Path(__file__).resolve().parents[2] / "bench" / "summaries" / "id_generalisation.json"
)


def load_generalisation_summary(path: str | os.PathLike | None = None) -> dict:
    """The study written by ``bench/id_generalisation.py``.

    Parameters
    ----------
    path : path-like, optional
        Default ``bench/summaries/id_generalisation.json`` of the source checkout this
        package is installed from.

    Returns
    -------
    dict
        The JSON, with ``family`` as a :class:`GeneralisationStudy`; ``shuffled`` and
        ``star`` as written by :func:`interp_lib.studies.shuffled_label_study` and
        :func:`interp_lib.studies.mnist_star_study`.
    """
    path = Path(path) if path is not None else SUMMARY_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"no generalisation summary at {path}; it is tracked in the source repository "
            "(bench/summaries/id_generalisation.json): clone it, or run "
            "`python bench/id_generalisation.py` to measure it."
        )
    data = json.loads(path.read_text())
    if "family" in data:
        data["family"] = GeneralisationStudy.from_dict(data["family"])
    return data


def compare_to_summary(
    live: GeneralisationStudy,
    summary: GeneralisationStudy,
    *,
    error_tol: float = 0.03,
    id_tol: float = 0.5,
):
    """The networks of ``live`` next to the same (architecture, seed) of ``summary``.

    A re-run with the same code, seed and thread count reproduces the summary exactly;
    another thread count or BLAS changes the float rounding, which training amplifies a
    little. ``within`` is True where the test error differs by at most ``error_tol`` and
    the TwoNN ID by at most ``id_tol``.

    Returns
    -------
    pandas.DataFrame
        ``arch, seed, test_error (live, summary), twonn (live, summary), within``.

    Raises
    ------
    KeyError
        If a live network has no counterpart in the summary.
    """
    pd = require("pandas", "interp_lib.studies.compare_to_summary")

    ref = {(r["arch"], r["seed"]): r for r in summary.rows}
    out = []
    for r in live.rows:
        key = (r["arch"], r["seed"])
        if key not in ref:
            raise KeyError(f"the summary has no network {key}; run the bench for it.")
        s = ref[key]
        out.append(
            {
                "arch": r["arch"],
                "seed": r["seed"],
                "test_error (live)": r["test_error"],
                "test_error (summary)": s["test_error"],
                "twonn (live)": r["twonn"],
                "twonn (summary)": s["twonn"],
                "within": abs(r["test_error"] - s["test_error"]) <= error_tol
                and abs(r["twonn"] - s["twonn"]) <= id_tol,
            }
        )
    return pd.DataFrame(out)
