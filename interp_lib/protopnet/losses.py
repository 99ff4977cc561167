"""ProtoPNet's training objective: cross-entropy, cluster, separation and L1 terms.

The cluster and separation costs are computed directly (a masked minimum), not with the
original code's ``max_dist - max((max_dist - d) * mask)`` trick, which silently returns
wrong values once distances exceed ``max_dist = D s^2``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .._validation import check_real

if TYPE_CHECKING:  # pragma: no cover
    from .model import ProtoPNet, ProtoPNetOutput


def _own_mask(
    min_distances: torch.Tensor, labels: torch.Tensor, class_identity: torch.Tensor
) -> torch.Tensor:
    if min_distances.ndim != 2:
        raise ValueError(f"min_distances must have shape (N, P), got {tuple(min_distances.shape)}.")
    if class_identity.ndim != 2 or class_identity.shape[0] != min_distances.shape[1]:
        raise ValueError(
            f"class_identity must have shape (P, K) with P = {min_distances.shape[1]}, "
            f"got {tuple(class_identity.shape)}."
        )
    if labels.shape != (min_distances.shape[0],):
        raise ValueError(
            f"labels must have shape ({min_distances.shape[0]},), got {tuple(labels.shape)}."
        )
    return class_identity[:, labels].t().bool()  # (N, P): prototype of the label's class


def _masked_min_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    masked = values.masked_fill(~mask, float("inf")).amin(dim=1)
    has_any = mask.any(dim=1)
    if bool(has_any.all()):
        return masked.mean()
    # samples whose class has no prototype (e.g. after pruning) do not contribute
    return masked[has_any].mean() if bool(has_any.any()) else values.sum() * 0


def cluster_cost(
    min_distances: torch.Tensor, labels: torch.Tensor, class_identity: torch.Tensor
) -> torch.Tensor:
    """Mean over samples of the smallest distance to a prototype of the sample's class.

    Parameters
    ----------
    min_distances : Tensor, shape (N, P)
        Min-pooled distances (``ProtoPNetOutput.min_distances``).
    labels : Tensor, shape (N,), long
    class_identity : Tensor, shape (P, K)
        One-hot class of each prototype.

    Returns
    -------
    Tensor, scalar
    """
    own = _own_mask(min_distances, labels, class_identity)
    return _masked_min_mean(min_distances, own)


def separation_cost(
    min_distances: torch.Tensor, labels: torch.Tensor, class_identity: torch.Tensor
) -> torch.Tensor:
    """Mean over samples of the smallest distance to a prototype of another class.

    Shapes as in :func:`cluster_cost`. Enters the loss with a negative weight.
    """
    own = _own_mask(min_distances, labels, class_identity)
    return _masked_min_mean(min_distances, ~own)


def average_separation(
    min_distances: torch.Tensor, labels: torch.Tensor, class_identity: torch.Tensor
) -> torch.Tensor:
    """Mean over samples of the mean distance to the prototypes of other classes.

    Logged only, not optimised. Shapes as in :func:`cluster_cost`.
    """
    other = (~_own_mask(min_distances, labels, class_identity)).to(min_distances.dtype)
    per_sample = (min_distances * other).sum(1) / other.sum(1).clamp_min(1)
    return per_sample.mean()


def l1_cost(last_layer_weight: torch.Tensor, class_identity: torch.Tensor) -> torch.Tensor:
    """Sum of ``|W|`` over the connections from prototypes to classes not their own.

    Parameters
    ----------
    last_layer_weight : Tensor, shape (K, P)
    class_identity : Tensor, shape (P, K)

    Returns
    -------
    Tensor, scalar
    """
    if last_layer_weight.shape != class_identity.t().shape:
        raise ValueError(
            f"last_layer_weight must have shape {tuple(class_identity.t().shape)} (K, P), "
            f"got {tuple(last_layer_weight.shape)}."
        )
    return (last_layer_weight * (1 - class_identity.t())).abs().sum()


@dataclass
class LossWeights:
    """Weights of the loss terms; the defaults are the paper's.

    ``loss = ce * CE + clst * Clst + sep * Sep + l1 * L1`` (``sep`` is negative, so a
    larger separation lowers the loss). For last-layer training use
    ``LossWeights(clst=0, sep=0)``. Every weight must be a finite number (``ValueError``
    naming the field otherwise).
    """

    ce: float = 1.0
    clst: float = 0.8
    sep: float = -0.08
    l1: float = 1e-4

    def __post_init__(self) -> None:
        for f in fields(self):  # a NaN or inf weight would only show as a NaN loss later
            check_real(getattr(self, f.name), f"LossWeights.{f.name}")

    def to_dict(self) -> dict[str, float]:
        """The weights as a plain dict."""
        return asdict(self)


def protopnet_loss(
    output: ProtoPNetOutput,
    labels: torch.Tensor,
    model: ProtoPNet,
    weights: LossWeights | None = None,
    *,
    class_specific: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The full ProtoPNet objective for one batch.

    Parameters
    ----------
    output : ProtoPNetOutput
        From ``model.forward_all(x)``.
    labels : Tensor, shape (N,), long
    model : ProtoPNet
        The (unwrapped) model: supplies ``class_identity`` and the last-layer weight.
    weights : LossWeights, optional
        Defaults to the paper's ``LossWeights()``.
    class_specific : bool
        ``True`` (default): the paper's objective. ``False``: the original code's
        ``class_specific=False`` option: the cluster cost is the mean distance to the
        nearest prototype of *any* class, there is no separation cost (``sep`` and
        ``avg_sep`` are logged as 0) and L1 covers *every* last-layer weight.

    Returns
    -------
    loss : Tensor, scalar
        Differentiable total.
    terms : dict[str, Tensor]
        ``ce``, ``clst``, ``sep``, ``avg_sep``, ``l1``, ``loss`` and ``accuracy``
        (share of correct predictions in the batch), as detached float32 scalars on the
        loss's device: nothing is copied to the host, so a training loop can add them up
        on the device and read them once per epoch.
    """
    w = LossWeights() if weights is None else weights
    ident = model.class_identity
    ce = F.cross_entropy(output.logits, labels)
    if class_specific:
        clst = cluster_cost(output.min_distances, labels, ident)
        sep = separation_cost(output.min_distances, labels, ident)
        l1 = l1_cost(model.last_layer.weight, ident)
        loss = w.ce * ce + w.clst * clst + w.sep * sep + w.l1 * l1
    else:
        clst = output.min_distances.amin(dim=1).mean()
        sep = clst.new_zeros(())
        l1 = model.last_layer.weight.abs().sum()
        loss = w.ce * ce + w.clst * clst + w.l1 * l1
    with torch.no_grad():
        if class_specific:
            avg_sep = average_separation(output.min_distances, labels, ident)
        else:
            avg_sep = clst.new_zeros(())
        acc = (output.logits.argmax(1) == labels).float().mean()
        values = torch.stack([t.detach().float() for t in (ce, clst, sep, avg_sep, l1, loss, acc)])
    return loss, dict(zip(TERMS, values.unbind(), strict=True))


#: The names of the terms :func:`protopnet_loss` returns, in order.
TERMS = ("ce", "clst", "sep", "avg_sep", "l1", "loss", "accuracy")
