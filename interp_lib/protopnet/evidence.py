"""Own-class evidence: how much of a decision comes from the predicted class's prototypes.

ProtoPNet's promise ("this looks like that") is that a class is explained by its own
prototypes: the logit of class ``k`` is a sum of *points*, ``points_j = s_j w_kj``
(similarity of the image to prototype ``j`` times the last-layer weight), and the paper's
last-layer stage aims at off-class weights ``w_kj ~ 0`` (or negative, as they start), so
that the positive points of class ``k`` come from class ``k``'s prototypes. Whether a
trained model keeps that promise is a measured property of the model, not of the recipe:

.. math::

    \\text{own share}(x) = \\frac{\\sum_{j \\in P_k} \\max(s_j w_{kj}, 0)}
                              {\\sum_j \\max(s_j w_{kj}, 0)},
    \\qquad k = \\arg\\max_c \\text{logit}_c(x)

(undefined, NaN, when the decision has no positive points). :func:`evidence_share`
computes it for every image, :func:`off_class_weight_stats` describes the last layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._plumbing import check_device, evaluating, require, unpack_batch

__all__ = ["EvidenceShare", "evidence_share", "off_class_weight_stats", "own_class_share"]


def own_class_share(
    similarities: torch.Tensor, weight: torch.Tensor, class_identity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Own-class positive evidence share of each decision (the module's formula).

    Parameters
    ----------
    similarities : Tensor, shape (N, P)
        The last layer's inputs (``ProtoPNet.pooled_similarities``).
    weight : Tensor, shape (K, P)
        The last layer's weight.
    class_identity : Tensor, shape (P, K)
        One-hot class of each prototype.

    Returns
    -------
    (share, predicted) : Tensor (N,) float64 and Tensor (N,) long
        ``share`` is NaN where the predicted class gets no positive points.
    """
    s, w = similarities.double(), weight.double()
    predicted = (s @ w.t()).argmax(1)
    points = s * w[predicted]  # (N, P): s_j w_kj for the predicted k
    positive = points.clamp_min(0)
    own = class_identity.t().to(s)[predicted] > 0  # (N, P): prototype j is of class k
    total = positive.sum(1)
    mine = (positive * own).sum(1)
    share = torch.where(total > 0, mine / total.clamp_min(1e-300), torch.nan)
    return share, predicted


def off_class_weight_stats(model: nn.Module, thresholds: tuple[float, ...] = (0.1, 0.3)) -> dict:
    """Statistics of the last layer's off-class weights ``w_kj`` (``p_j`` not of class ``k``).

    Returns
    -------
    dict
        ``above_<t>``: share of off-class weights with ``|w| > t`` for each threshold;
        ``positive``: share with ``w > 0``; ``max``, ``min``, ``mean`` of the off-class
        weights; ``own_mean``: mean own-class weight; ``n_off``, ``n_own``: counts.
    """
    w = model.last_layer.weight.detach().double().cpu()
    own = model.class_identity.t().bool().cpu()
    off = w[~own]
    out: dict[str, float] = {}
    for t in thresholds:
        out[f"above_{t:g}"] = float((off.abs() > t).double().mean())
    out.update(
        positive=float((off > 0).double().mean()),
        max=float(off.max()),
        min=float(off.min()),
        mean=float(off.mean()),
        own_mean=float(w[own].mean()),
        n_off=int(off.numel()),
        n_own=int(own.sum()),
    )
    return out


@dataclass(frozen=True)
class EvidenceShare:
    """Result of :func:`evidence_share`.

    Attributes
    ----------
    share : Tensor, shape (N,) float64
        Own-class positive evidence share of each decision (NaN: no positive points).
    predicted, labels : Tensor, shape (N,) long
        Predicted and true class of each image.
    off_class_weights : dict
        :func:`off_class_weight_stats` of the model.
    """

    share: torch.Tensor
    predicted: torch.Tensor
    labels: torch.Tensor
    off_class_weights: dict[str, Any]

    @property
    def correct(self) -> torch.Tensor:
        """(N,) bool: the decision is right."""
        return self.predicted == self.labels

    @property
    def mean_correct(self) -> float:
        """Mean share over correct decisions (NaN shares count as 0: no own evidence)."""
        s = self.share[self.correct]
        return float(torch.nan_to_num(s, nan=0.0).mean()) if s.numel() else float("nan")

    @property
    def mean(self) -> float:
        """Mean share over all decisions (NaN shares count as 0)."""
        return float(torch.nan_to_num(self.share, nan=0.0).mean())

    @property
    def accuracy(self) -> float:
        return float(self.correct.double().mean())

    def fraction_at_least(self, level: float = 0.9) -> float:
        """Share of correct decisions whose own-class share is at least ``level``."""
        s = torch.nan_to_num(self.share[self.correct], nan=0.0)
        return float((s >= level).double().mean()) if s.numel() else float("nan")

    def summary(self) -> dict[str, float]:
        """The numbers of a report: ``mean_correct``, ``mean``, ``at_least_0.9``,
        ``accuracy`` and the off-class weight statistics (prefixed ``off_``)."""
        out = {"mean_correct": self.mean_correct, "mean": self.mean,
               "at_least_0.9": self.fraction_at_least(0.9), "accuracy": self.accuracy}  # fmt: skip
        out.update({f"off_{k}": float(v) for k, v in self.off_class_weights.items()})
        return out

    def to_pandas(self):
        """One row per decision: ``label``, ``predicted``, ``correct``, ``own_share``."""
        pd = require("pandas", "EvidenceShare.to_pandas")

        return pd.DataFrame(
            {
                "label": self.labels.tolist(),
                "predicted": self.predicted.tolist(),
                "correct": self.correct.tolist(),
                "own_share": self.share.tolist(),
            }
        )


@torch.no_grad()
def evidence_share(
    model: nn.Module,
    data,
    labels: torch.Tensor | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> EvidenceShare:
    """Own-class positive evidence share of a ProtoPNet's decisions on a set of images.

    Parameters
    ----------
    model : ProtoPNet
    data : Tensor (N, C, H, W), Dataset or iterable of ``(x, y, ...)`` batches
        Images as the model takes them (normalised). A tensor needs ``labels``; a
        dataset yields ``(x, y, ...)`` items.
    labels : Tensor, shape (N,), optional
        True classes when ``data`` is a tensor.
    batch_size : int
        Images per forward pass (tensor or dataset input).
    device : torch.device or str, optional
        Default: the model's device.

    Returns
    -------
    EvidenceShare
        Per-decision shares, predictions, labels and the off-class weight statistics;
        ``mean_correct`` is the mean over correct decisions.

    Examples
    --------
    A new ProtoPNet keeps the promise by construction (its off-class weights start at
    ``-0.5``), so every decision's positive evidence is its own class's:

    >>> import torch
    >>> from interp_lib.protopnet import ProtoPNet
    >>> model = ProtoPNet("small_cnn", n_classes=2, n_prototypes_per_class=2,
    ...                   prototype_dim=8, image_size=32, backbone_kwargs={"widths": [8]})
    >>> ev = evidence_share(model, torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    >>> ev.share.shape, ev.mean, ev.off_class_weights["max"]
    (torch.Size([4]), 1.0, -0.5)
    """
    from torch.utils.data import DataLoader, Dataset

    device = check_device(model, device)
    if isinstance(data, torch.Tensor):
        if labels is None or len(labels) != len(data):
            raise ValueError(
                f"images given as a tensor need labels of the same length ({len(data)}), "
                f"got {None if labels is None else len(labels)}."
            )
        batches = (
            (data[i : i + batch_size], labels[i : i + batch_size])
            for i in range(0, len(data), batch_size)
        )
    elif isinstance(data, Dataset):
        batches = DataLoader(data, batch_size=batch_size, shuffle=False)
    else:
        batches = data
    sims, ys = [], []
    with evaluating(model):
        for batch in batches:
            b = unpack_batch(batch, need_labels=True)
            z = model.latent(b.x.to(device))
            sims.append(model.pooled_similarities(z).float().cpu())
            ys.append(torch.as_tensor(b.y).long().cpu())
    if not sims:
        raise ValueError("data yielded no images.")
    s = torch.cat(sims)
    share, predicted = own_class_share(
        s, model.last_layer.weight.detach().cpu(), model.class_identity.cpu()
    )
    return EvidenceShare(share, predicted, torch.cat(ys), off_class_weight_stats(model))
