"""One pass over the data, for :func:`interp_lib.protopnet.fit`: a training pass, an
evaluation pass, a push. The orchestration (stages, optimisers, checkpoints) is in
:mod:`interp_lib.protopnet.train`.

``ctx`` below is ``(device, amp, channels_last, dist_info, progress_bar_or_None)``.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from . import _runtime as rt
from .history import NonFiniteLossError
from .stages import Step

AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


class ForwardAll(nn.Module):
    """Route DDP's ``forward`` to ``forward_all`` (DDP only syncs through ``forward``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.forward_all(x)


def to_device(batch, device: torch.device, channels_last: bool):
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise ValueError(
            "each batch must be a tuple (images, labels, ...); got "
            f"{type(batch).__name__}. Wrap the dataset so __getitem__ returns (x, y)."
        )
    x, y = batch[0], batch[1]
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def autocast(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP[amp])


def summarise(sums: dict[str, float], n: int, info: rt.DistInfo) -> dict[str, float]:
    """Sample-weighted means of the per-batch terms, over all processes."""
    keys = sorted(sums)
    vec = torch.tensor([float(n), *(sums[k] for k in keys)], dtype=torch.float64)
    vec = rt.all_reduce_sum(vec, info)
    total = max(vec[0].item(), 1.0)
    return {k: vec[1 + i].item() / total for i, k in enumerate(keys)}


def train_mode(model) -> None:
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


def train_pass(model, net, loader, opt, scaler, weights, step: Step, ctx) -> dict[str, float]:
    from .losses import protopnet_loss

    device, amp, channels_last, info, bar = ctx
    train_mode(model)
    sums: dict[str, float] = {}
    n = 0
    for b, batch in enumerate(loader):
        x, y = to_device(batch, device, channels_last)
        with autocast(device, amp):
            out = net(x)
            loss, terms = protopnet_loss(out, y, model, weights)
        value = float(loss.detach())
        if not math.isfinite(value):
            hint = ", or use amp='bf16' instead of 'fp16'" if amp == "fp16" else ""
            raise NonFiniteLossError(step.epoch, b, step.stage, dict(terms), hint)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        k = len(y)
        n += k
        for name, v in terms.items():
            sums[name] = sums.get(name, 0.0) + float(v) * k
        if bar is not None:
            bar.set_postfix(batch=b, loss=f"{value:.3f}", refresh=False)
    return summarise(sums, n, info)


@torch.no_grad()
def evaluate(model, loader, weights, ctx) -> dict[str, float]:
    from .losses import protopnet_loss

    device, amp, channels_last, info, _ = ctx
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    for batch in loader:
        x, y = to_device(batch, device, channels_last)
        with autocast(device, amp):
            out = model.forward_all(x)
            _, terms = protopnet_loss(out, y, model, weights)
        n += len(y)
        for name, v in terms.items():
            sums[name] = sums.get(name, 0.0) + float(v) * len(y)
    return summarise(sums, n, info)


def push_pass(model, loader, device, info) -> dict[str, float]:
    from .push import push

    result = push(model, loader, device=device, progress=False)
    if info.enabled:  # every rank pushed the same data; make the prototypes identical
        torch.distributed.broadcast(model.prototypes.data, src=0)
    return {
        "push_distance_mean": float(result.distance.float().mean()),
        "push_distance_max": float(result.distance.float().max()),
        "push_duplicates": float(sum(len(g) for g in result.duplicates())),
    }
