"""One pass over the data, for :func:`interp_lib.protopnet.fit`: a training pass, an
evaluation pass, a push, a convex last-layer solve. The orchestration (stages,
optimisers, checkpoints) is in :mod:`interp_lib.protopnet.train`.

No pass synchronises with the host per batch: loss terms are summed on the device and
read once at the end of the pass (:class:`TermSums`), and a non-finite loss is caught on
the device (its gradients are zeroed, so it never reaches the weights) and reported at
the end of the pass.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._plumbing import NonFiniteLossError, evaluating, postfix_due, to_device, unpack_batch
from .._plumbing import progress as progress_bar
from .._validation import check_labels
from . import _runtime as rt
from .losses import TERMS, LossWeights, protopnet_loss
from .stages import Step

AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Most batches between two progress-bar refreshes of the running loss (each one reads
#: it); a short epoch refreshes more often (:func:`~interp_lib._plumbing.postfix_due`).
_SHOW_EVERY = 25


@dataclass(frozen=True)
class PassContext:
    """What every pass of one :func:`fit` run needs besides the model and the data."""

    device: torch.device
    amp: str | None
    channels_last: bool
    dist: rt.DistInfo
    show_progress: bool
    class_specific: bool = True


class ForwardAll(nn.Module):
    """Route DDP's ``forward`` to ``forward_all`` (DDP only syncs through ``forward``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.forward_all(x)


@contextlib.contextmanager
def apart_from_training(loader: Iterable, *, one_draw: bool) -> Iterator[None]:
    """Make a pass over ``loader`` that only evaluates, pushes or reads similarities
    RNG-neutral: the global generators are restored after it
    (:func:`~interp_lib.protopnet._runtime.rng_untouched`), so nothing the loader draws (a
    shuffle, an augmentation, worker seeds) moves the training batches that follow, and a
    resume that reads the loader once more repeats the run exactly.

    With ``one_draw``, torch's global generator then advances by one draw whatever the
    loader drew, if ``loader`` is a ``DataLoader`` without its own ``generator``: the draw
    (a worker seed) that making its iterator took before passes were isolated, kept so
    that a run with such loaders trains the same weights as before. A pass that a resume
    may add (the similarities of the push images, recomputed after a push) makes none.
    """
    with rt.rng_untouched():
        yield
    if one_draw and isinstance(loader, DataLoader) and loader.generator is None:
        torch.empty((), dtype=torch.int64).random_()


def autocast(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP[amp])


def labelled_batches(
    loader: Iterable, n_classes: int, ctx: PassContext
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` of every batch on ``ctx.device``; labels are checked (range, shape)
    where the loader made them, before the copy (no device sync for CPU labels)."""
    for batch in loader:
        b = unpack_batch(batch, need_labels=True)
        y = check_labels(b.y, n_classes, n_images=b.x.shape[0])
        b = to_device(type(b)(b.x, y), ctx.device, channels_last=ctx.channels_last)
        yield b.x, b.y


class TermSums:
    """Sample-weighted sums of the loss terms, kept on the device (float64 where the
    device has it) and read once by :meth:`means`."""

    def __init__(self, device: torch.device) -> None:
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums = torch.zeros(len(TERMS), dtype=self.dtype, device=device)
        self.n = 0

    def add(self, terms: dict[str, torch.Tensor], n: int) -> None:
        values = torch.stack([terms[k] for k in TERMS]).to(self.dtype)
        self.sums += values * n
        self.n += n

    def means(self, info: rt.DistInfo) -> dict[str, float]:
        """Means over all samples of all processes (keys sorted, as logged)."""
        vec = torch.cat([torch.tensor([float(self.n)], dtype=torch.float64),
                         self.sums.double().cpu()])  # fmt: skip
        vec = rt.all_reduce_sum(vec, info)
        total = max(vec[0].item(), 1.0)
        values = dict(zip(TERMS, (vec[1:] / total).tolist(), strict=True))
        return {k: values[k] for k in sorted(values)}


class _NonFiniteGuard:
    """Zero the gradients of a batch whose loss is not finite, on the device, and
    remember the first such batch (read once, at the end of the pass)."""

    def __init__(self, device: torch.device) -> None:
        self.first = torch.full((), -1, dtype=torch.long, device=device)
        self.terms = torch.zeros(len(TERMS), device=device)

    def check(self, b: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        bad = ~torch.isfinite(loss.detach())
        new = bad & (self.first < 0)
        self.first = torch.where(new, b, self.first)
        self.terms = torch.where(new, torch.stack([terms[k] for k in TERMS]), self.terms)
        return bad

    @staticmethod
    def zero_grads(params: list[nn.Parameter], bad: torch.Tensor) -> None:
        for p in params:
            if p.grad is not None:
                p.grad.masked_fill_(bad, 0.0)

    def raise_if_seen(self, step: Step, amp: str | None) -> None:
        first = int(self.first)
        if first < 0:
            return
        terms = dict(zip(TERMS, self.terms.tolist(), strict=True))
        shown = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
        hint = ", or use amp='bf16' instead of 'fp16'" if amp == "fp16" else ""
        err = NonFiniteLossError(
            f"non-finite training loss at epoch {step.epoch} ({step.stage.value}), batch "
            f"{first}: {shown}. Its gradients were zeroed, so no NaN/inf reached the "
            "weights (the check is read once per pass, so the pass finished). Check the "
            f"inputs for NaN/inf, lower the learning rates{hint}, and resume from the last "
            "checkpoint."
        )
        err.epoch, err.batch, err.stage, err.terms = step.epoch, first, step.stage, terms
        raise err


def train_mode(model: nn.Module) -> None:
    """``model.train()``, except the parts this stage freezes, which stay in eval mode.

    A frozen trunk in train mode would still update its BatchNorm running statistics
    (and apply dropout), so the warm-up and last-layer stages would change its outputs:
    pushed prototypes would stop being training patches.
    """
    model.train()
    for child in model.children():
        params = list(child.parameters())
        if params and not any(p.requires_grad for p in params):
            child.eval()


def train_pass(
    model: nn.Module,
    net,
    loader: Iterable,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    weights: LossWeights,
    step: Step,
    ctx: PassContext,
) -> dict[str, float]:
    """One epoch of ``opt`` steps on ``net(x)`` (``model.forward_all`` or its DDP
    wrapper); returns the sample-weighted means of the loss terms."""
    n_classes = model.class_identity.shape[1]
    params = [p for g in opt.param_groups for p in g["params"]]
    train_mode(model)
    sums, guard = TermSums(ctx.device), _NonFiniteGuard(ctx.device)
    bar = progress_bar(loader, ctx.show_progress, f"epoch {step.epoch} {step.stage.value}")
    try:
        for b, (x, y) in enumerate(labelled_batches(bar, n_classes, ctx)):
            with autocast(ctx.device, ctx.amp):
                out = net(x)
                loss, terms = protopnet_loss(out, y, model, weights,
                                             class_specific=ctx.class_specific)  # fmt: skip
            bad = guard.check(b, loss, terms)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                guard.zero_grads(params, bad)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                guard.zero_grads(params, bad)
                opt.step()
            sums.add(terms, len(y))
            if postfix_due(bar, b, most=_SHOW_EVERY):  # reads the loss: a host sync
                bar.set_postfix(loss=f"{float(terms['loss']):.3f}", refresh=False)
    finally:
        if bar is not loader:
            bar.close()
    if sums.n == 0:
        raise ValueError(
            f"the training loader yielded no images in epoch {step.epoch} "
            f"({step.stage.value}); is the data set empty, or drop_last=True with fewer "
            "images than batch_size?"
        )
    guard.raise_if_seen(step, ctx.amp)
    return sums.means(ctx.dist)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Iterable, weights: LossWeights, ctx: PassContext
) -> dict[str, float]:
    """The loss terms and accuracy of ``model`` (eval mode) over ``loader``."""
    n_classes = model.class_identity.shape[1]
    sums = TermSums(ctx.device)
    with evaluating(model), apart_from_training(loader, one_draw=True):
        for x, y in labelled_batches(loader, n_classes, ctx):
            with autocast(ctx.device, ctx.amp):
                out = model.forward_all(x)
                _, terms = protopnet_loss(out, y, model, weights,
                                          class_specific=ctx.class_specific)  # fmt: skip
            sums.add(terms, len(y))
    return sums.means(ctx.dist)


def push_pass(
    model: nn.Module, loader: Iterable, ctx: PassContext, *, keep_last_layer_inputs: bool = False
) -> tuple[dict[str, float], tuple[torch.Tensor, torch.Tensor] | None]:
    """Push every prototype (:func:`~interp_lib.protopnet.push`); every process pushes
    the same data and rank 0's prototypes are broadcast.

    With ``keep_last_layer_inputs`` it also returns what :func:`last_layer_inputs` would
    compute on ``loader`` after the push, from the latent maps the push already computed
    (the same images in the same batches, without a second pass over them; equal to that
    pass exactly, up to float rounding where the pass would use channels-last), or
    ``None`` if those maps were too large to keep (``push.KEEP_LATENTS_BYTES``).
    """
    from .push import _push

    with apart_from_training(loader, one_draw=True):
        result, latents, labels = _push(model, loader, device=ctx.device, progress=False,
                                        keep_latents=keep_last_layer_inputs)  # fmt: skip
    if ctx.dist.enabled:  # every rank pushed the same data; make the prototypes identical
        torch.distributed.broadcast(model.prototypes.data, src=0)
    inputs = None
    if latents is not None and labels is not None:
        with torch.no_grad():
            inputs = (torch.cat([model.pooled_similarities(z).float() for z in latents]), labels)
    terms = {
        "push_distance_mean": float(result.distance.float().mean()),
        "push_distance_max": float(result.distance.float().max()),
        "push_duplicates": float(sum(len(g) for g in result.duplicates())),
    }
    return terms, inputs


@torch.no_grad()
def last_layer_inputs(
    model: nn.Module, loader: Iterable, ctx: PassContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs of ``model.last_layer`` (max-pooled similarities, ``(N, P)``) and the
    labels ``(N,)`` of every image of ``loader``, in eval mode and full precision."""
    n_classes = model.class_identity.shape[1]
    feats: list[torch.Tensor] = []
    hook = model.last_layer.register_forward_hook(
        lambda _m, inputs, _out: feats.append(inputs[0].detach().float())
    )
    labels = []
    try:
        with evaluating(model), apart_from_training(loader, one_draw=False):
            for x, y in labelled_batches(loader, n_classes, ctx):
                model(x)
                labels.append(y)
    finally:
        hook.remove()
    if not labels:
        raise ValueError("the push loader yielded no images; the last layer needs some.")
    return torch.cat(feats), torch.cat(labels)


def last_layer_solve(
    model: nn.Module,
    loader: Iterable,
    weights: LossWeights,
    l2: float,
    ctx: PassContext,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
    rule: str = "convex",
    adam: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Fit the last layer by ``rule`` (:func:`~interp_lib.protopnet.last_layer.fit_last_layer`:
    ``"convex"``, ``"convex_nonpositive"``, or ``"adam"`` with the options ``adam``:
    ``lr``, ``passes``, ``batch_size``, ``seed``) on the similarities of ``loader``'s
    images and write the solution into ``model.last_layer``.

    ``inputs``: those similarities and labels if already known (from the push that just
    ran, :func:`push_pass`); else they are computed with a pass over ``loader``."""
    from .last_layer import fit_last_layer

    if getattr(model.last_layer, "bias", None) is not None:
        raise ValueError("the convex last-layer solve expects a last layer without bias.")
    if weights.ce <= 0:
        raise ValueError(f"the last-layer solve needs a positive CE weight, got {weights.ce}.")
    sims, labels = last_layer_inputs(model, loader, ctx) if inputs is None else inputs
    w = model.last_layer.weight
    if ctx.class_specific:
        mask = 1 - model.class_identity.t()
    else:
        mask = torch.ones_like(w)
    sol = fit_last_layer(sims, labels, w.detach(), mask, rule=rule,
                         l1=weights.l1 / weights.ce, l2=l2 / weights.ce, **(adam or {}))  # fmt: skip
    with torch.no_grad():
        w.copy_(sol.weight)
    if ctx.dist.enabled:  # every rank solved the same problem; make the weights identical
        torch.distributed.broadcast(w.data, src=0)
    if not sol.converged:
        warnings.warn(
            f"the last-layer solve stopped after {sol.iterations} iterations with an "
            f"optimality residual of {sol.residual:.2e}; the last layer is near, not at, "
            "its minimum.",
            stacklevel=3,
        )
    return {
        "accuracy": sol.accuracy,
        "ce": sol.ce,
        "iterations": float(sol.iterations),
        "l1": sol.l1,
        "loss": sol.objective,
        "residual": sol.residual,
    }


__all__ = [
    "AMP",
    "ForwardAll",
    "PassContext",
    "TermSums",
    "evaluate",
    "last_layer_solve",
    "push_pass",
    "train_pass",
]
