"""Prototype pruning (Chen et al. 2019, section 2.3 and supplement).

A prototype whose ``k`` nearest training patches (one per image) mostly come from other
classes is not class-specific: with ``k = 6`` and ``threshold = 3`` it is removed when
fewer than 3 of its 6 nearest patches come from its own class. Afterwards retrain the
last layer (the paper's last-layer stage: CE + L1 on the last layer only), with
:func:`retrain_last_layer` or a ``fit`` schedule.

Deliberate differences from the original code (``prune.py`` and ``run_pruning.py`` of
cfchen-duke/ProtoPNet)
-------------------------------------------------------------------------------------
* :func:`prune` only removes prototypes. The original's ``run_pruning.py`` then retrains
  the last layer for 100 passes over the (augmented) training set (Adam, lr ``1e-4``);
  here that is a separate, explicit call: :func:`retrain_last_layer` (default 20 passes,
  the paper's last-layer stage) or a ``fit`` schedule.
* :func:`retrain_last_layer` keeps the frozen trunk in eval mode, so its batch-norm
  statistics do not move; the original trains in train mode and updates them.
* A class that loses every prototype gets a warning; the original says nothing.
* Fewer images than ``k`` or a pruning that would remove every prototype is a
  ``ValueError``, and the model is left untouched.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._plumbing import NonFiniteLossError, evaluating, train_device
from .._validation import check_choice, check_int
from .explain import NearestPatches, nearest_patches
from .last_layer import fit_last_layer
from .losses import l1_cost
from .model import ProtoPNet, is_protopnet
from .push import labelled_batches


@dataclass
class PruneResult:
    """What :func:`prune` removed.

    Attributes
    ----------
    removed : list of int
        Indices (in the model before pruning) of the removed prototypes.
    kept : list of int
        Indices (before pruning) of the prototypes kept, in their new order.
    own_class_count : Tensor, shape (P,), long
        How many of each prototype's ``k`` nearest patches come from its class.
    nearest : NearestPatches
        The neighbours the decision was based on (indexed by the old prototype ids).
    """

    removed: list[int]
    kept: list[int]
    own_class_count: torch.Tensor
    nearest: NearestPatches


def prune(
    model: ProtoPNet,
    loader: Iterable,
    k: int = 6,
    threshold: int = 3,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> PruneResult:
    """Remove the prototypes with fewer than ``threshold`` own-class patches among their
    ``k`` nearest training patches.

    The model is modified in place (:meth:`ProtoPNet.remove_prototypes`): prototype
    vectors, ``class_identity`` and last-layer columns shrink together, and
    ``model.config`` records the new per-class counts. Build a new optimiser and retrain
    the last layer afterwards (:func:`retrain_last_layer`).

    Parameters
    ----------
    model : ProtoPNet
    loader : iterable of (x, y, ...)
        Un-augmented training images in a fixed order.
    k : int
        Nearest patches per prototype (6 in the paper).
    threshold : int
        Minimum number of own-class patches among them to keep a prototype (3).
    device : torch.device or str, optional
        Must be the model's device type (the device policy of ``interp_lib._plumbing``).
    progress : bool

    Returns
    -------
    PruneResult

    Notes
    -----
    The original ``run_pruning.py`` retrains the last layer for 100 passes right after
    pruning; here call :func:`retrain_last_layer` yourself (see the module docstring).
    """
    k = check_int(k, "k")
    threshold = check_int(threshold, "threshold", minimum=0)
    if threshold > k:
        raise ValueError(f"threshold ({threshold}) cannot exceed k ({k}).")
    nearest = nearest_patches(model, loader, k, device=device, progress=progress)
    if nearest.label.shape[1] < k:
        raise ValueError(
            f"the loader has only {nearest.label.shape[1]} images, fewer than k = {k}."
        )
    classes = model.prototype_classes.to(nearest.label.device)
    own = (nearest.label == classes[:, None]).sum(dim=1)
    drop = own < threshold
    removed = torch.nonzero(drop).flatten().tolist()
    kept = torch.nonzero(~drop).flatten().tolist()
    if not kept:
        raise ValueError(
            f"pruning would remove all {model.n_prototypes} prototypes (none has "
            f"{threshold} own-class patches among its {k} nearest); train longer or lower "
            "the threshold."
        )
    emptied = sorted(set(classes[drop].tolist()) - set(classes[~drop].tolist()))
    if emptied:
        warnings.warn(
            f"pruning removes every prototype of classes {emptied}; the model can then "
            "only recognise them through negative evidence.",
            stacklevel=2,
        )
    if removed:
        model.remove_prototypes(removed)
    return PruneResult(removed=removed, kept=kept, own_class_count=own.cpu(), nearest=nearest)


def retrain_last_layer(
    model: ProtoPNet,
    loader: Iterable,
    *,
    solver: str = "adam",
    epochs: int = 20,
    lr: float = 1e-4,
    l1: float = 1e-4,
    l2: float = 1e-3,
    solve_options: dict | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train the last layer only, with ``CE + l1 * L1`` (the paper's last-layer stage).

    The rest of the model is frozen and kept in eval mode (its batch-norm statistics do
    not move; the original code trains in train mode); the previous mode is restored.

    ``solver="adam"``: Adam with learning rate ``lr``, as in the paper (``1e-4``, 20
    passes; the original's ``run_pruning.py`` makes 100 passes after pruning).
    ``solver="convex"``: the same problem (plus the ridge ``l2``) solved to its certified
    minimum; ``solver="convex_nonpositive"``: the same with every off-class weight
    constrained to ``<= 0`` (the zoo's default rule). Both by
    :func:`interp_lib.protopnet.last_layer.fit_last_layer`, from the similarities of the
    images of ``loader`` (one pass; give un-augmented images), as
    :func:`interp_lib.protopnet.fit` does after each push.

    Parameters
    ----------
    model : ProtoPNet
    loader : iterable of (x, y, ...)
        Training images (augmented and shuffled is fine for Adam; the convex solve reads
        one pass, so give it the un-augmented images).
    solver : {"adam", "convex", "convex_nonpositive"}
    epochs : int
        Passes over ``loader`` (Adam only).
    lr : float
        Adam learning rate.
    l1 : float
        Weight of the L1 cost on off-class connections.
    l2 : float
        Ridge weight of the convex solve (see :mod:`interp_lib.protopnet.last_layer`).
    solve_options : dict, optional
        Further keyword arguments of ``fit_last_layer`` (convex rules only), e.g. ``tol``.
    device : torch.device or str, optional
        The model is moved there (a trainer, see the device policy in
        ``interp_lib._plumbing``); ``None`` keeps it where it is.
    progress : bool

    Returns
    -------
    list of dict
        Per epoch (one record for the convex solve): ``epoch``, ``ce``, ``l1``, ``loss``
        and ``accuracy`` (means over images; for the convex solve ``loss`` is its
        objective, ridge included, and ``accuracy`` the training accuracy at the
        solution).

    Raises
    ------
    interp_lib.protopnet.NonFiniteLossError
        If the loss becomes NaN or infinite (lower ``lr``).
    """
    if not is_protopnet(model):
        raise TypeError(f"model must be a ProtoPNet, got {type(model).__name__}.")
    check_choice(solver, "solver", ("adam", "convex", "convex_nonpositive"))
    epochs = check_int(epochs, "epochs")
    device = train_device(model, device)
    if solver != "adam":
        options = {"rule": solver, **(solve_options or {})}
        return [_solve_convex(model, loader, l1, l2, options, device, progress)]
    opt = torch.optim.Adam(model.last_layer.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    with evaluating(model):
        for epoch in range(epochs):
            sums = torch.zeros(4, dtype=torch.float64, device=device)
            seen = 0
            batches = labelled_batches(
                loader,
                model.n_classes,
                device,
                show_progress=progress,
                desc=f"last layer {epoch + 1}/{epochs}",
                same_size=False,
            )
            for b, (x, y) in enumerate(batches):
                with torch.no_grad():
                    act = model.pooled_similarities(model.latent(x))
                logits = model.last_layer(act)
                ce = F.cross_entropy(logits, y)
                l1_term = l1_cost(model.last_layer.weight, model.class_identity)
                loss = ce + l1 * l1_term
                if not bool(torch.isfinite(loss)):
                    raise NonFiniteLossError(
                        f"non-finite last-layer loss at epoch {epoch}, batch {b}; lower lr."
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n = x.shape[0]
                with torch.no_grad():
                    acc = (logits.argmax(1) == y).double().sum()
                    sums += torch.stack(
                        (ce.double() * n, l1_term.double() * n, loss.double() * n, acc)
                    )
                seen += n
            if seen == 0:
                raise ValueError("the loader yielded no images.")
            ce_m, l1_m, loss_m, acc_m = (sums / seen).tolist()
            history.append(
                {"epoch": float(epoch), "ce": ce_m, "l1": l1_m, "loss": loss_m, "accuracy": acc_m}
            )
    return history


def _solve_convex(model, loader, l1, l2, options, device, progress) -> dict[str, float]:
    """The convex last-layer stage on the similarities of every image of ``loader``."""
    sims, labels = [], []
    with evaluating(model), torch.no_grad():
        for x, y in labelled_batches(
            loader, model.n_classes, device, show_progress=progress, desc="last layer",
            same_size=False,
        ):  # fmt: skip
            sims.append(model.pooled_similarities(model.latent(x)).float())
            labels.append(y)
    if not labels:
        raise ValueError("the loader yielded no images.")
    w = model.last_layer.weight
    mask = 1 - model.class_identity.t().to(w.dtype)
    sol = fit_last_layer(
        torch.cat(sims), torch.cat(labels), w.detach(), mask, l1=l1, l2=l2, **options
    )
    with torch.no_grad():
        w.copy_(sol.weight)
    if not sol.converged:
        warnings.warn(
            f"the last-layer solve stopped after {sol.iterations} iterations with an "
            f"optimality residual of {sol.residual:.2e}; the last layer is near, not at, "
            "its minimum.",
            stacklevel=3,
        )
    return {
        "epoch": 0.0,
        "ce": sol.ce,
        "l1": sol.l1,
        "loss": sol.objective,
        "accuracy": sol.accuracy,
    }
