"""Train a ProtoPNet through its stages: :func:`fit`.

``fit`` runs a :class:`~interp_lib.protopnet.stages.Schedule` (warm-up, joint, push,
last layer; the paper's values by default) on any device, with optional mixed precision,
``channels_last``, checkpoints that resume bit-exactly, and DistributedDataParallel under
``torchrun``. The stages, schedule and logs are re-exported here:
:class:`Stage`, :class:`Schedule`, :class:`History`.

Feeding a GPU
-------------
Build the loaders with ``num_workers`` > 0 (e.g. the number of CPU cores per GPU),
``pin_memory=True`` and ``persistent_workers=True``; ``fit`` moves batches with
``non_blocking=True``, which overlaps the copy with compute only from pinned memory. The
push loader must not shuffle and should yield un-augmented training images.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from .._validation import check_choice
from . import _runtime as rt
from ._loops import AMP, ForwardAll, evaluate, push_pass, train_pass
from .checkpoint import read_checkpoint, save_checkpoint
from .history import EpochRecord, History, NonFiniteLossError
from .stages import TRAINABLE, Schedule, Stage, parameter_groups, set_trainable

__all__ = ["EpochRecord", "History", "NonFiniteLossError", "Schedule", "Stage", "fit"]

_OPT_OF = {Stage.WARMUP: "warmup", Stage.JOINT: "joint", Stage.LAST_LAYER: "last_layer"}


def _make_optimizers(model: nn.Module, s: Schedule) -> dict[str, torch.optim.Optimizer]:
    g = parameter_groups(model)
    wd = s.weight_decay
    return {
        "warmup": torch.optim.Adam(
            [
                {"params": g["add_on"], "lr": s.warmup_lr_add_on, "weight_decay": wd},
                {"params": g["prototypes"], "lr": s.warmup_lr_prototypes},
            ]
        ),
        "joint": torch.optim.Adam(
            [
                {"params": g["features"], "lr": s.joint_lr_features, "weight_decay": wd},
                {"params": g["add_on"], "lr": s.joint_lr_add_on, "weight_decay": wd},
                {"params": g["prototypes"], "lr": s.joint_lr_prototypes},
            ]
        ),
        "last_layer": torch.optim.Adam([{"params": g["last_layer"], "lr": s.last_layer_lr}]),
    }


def _lrs(opt: torch.optim.Optimizer, stage: Stage) -> dict[str, float]:
    return {n: float(pg["lr"]) for n, pg in zip(TRAINABLE[stage], opt.param_groups, strict=True)}


def _check_args(model, train_loader, val_loader, push_loader, schedule, amp, steps):
    for name, ld in (("train_loader", train_loader), ("val_loader", val_loader)):
        if ld is not None and not isinstance(ld, DataLoader):
            raise TypeError(f"{name} must be a torch DataLoader, got {type(ld).__name__}.")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}.")
    if amp is not None:
        check_choice(amp, "amp", tuple(AMP))
    parameter_groups(model)  # raises a clear TypeError for non-ProtoPNets
    if any(s.stage is Stage.PUSH for s in steps):
        if push_loader is None:
            raise ValueError(
                f"the schedule pushes after epochs {schedule.push_epochs()}, so fit needs "
                "push_loader: a DataLoader over the un-augmented training images with "
                "shuffle=False. (Or use a schedule without pushes, e.g. push_start >= epochs "
                "and final_push=False.)"
            )
        from .push import check_ordered_loader

        check_ordered_loader(push_loader)


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    *,
    val_loader: DataLoader | None = None,
    push_loader: DataLoader | None = None,
    schedule: Schedule | None = None,
    loss_weights=None,
    device: str | torch.device | None = None,
    amp: str | None = None,
    channels_last: bool = False,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    restore_best: bool = True,
    progress: bool = True,
    seed: int | None = 0,
    callback: Callable[[EpochRecord], Any] | None = None,
) -> History:
    """Train ``model`` through ``schedule`` and return the per-step :class:`History`.

    Parameters
    ----------
    model : ProtoPNet
        Trained in place. Under ``torchrun`` it is wrapped in DistributedDataParallel
        inside ``fit`` only; pass the bare model.
    train_loader : DataLoader
        Yields ``(x, y, ...)``: images ``(B, C, H, W)`` and labels ``(B,)`` long.
        Augment here. Under DDP its ``batch_size`` is per process (global batch =
        ``batch_size * world_size``) and it is re-built with a ``DistributedSampler``
        (``shuffle`` kept), unless it already has one.
    val_loader : DataLoader, optional
        The validation split, evaluated after every step; the state with the best
        validation accuracy is kept (model selection never looks at a test set).
    push_loader : DataLoader, optional
        Un-augmented training images, ``shuffle=False``; needed if the schedule pushes.
    schedule : Schedule, optional
        Default ``Schedule()`` (the paper's); :meth:`Schedule.quick` for CPU.
    loss_weights : LossWeights, optional
        Default ``LossWeights()`` (CE 1, Clst 0.8, Sep -0.08, L1 1e-4). Last-layer passes
        use CE + L1 only.
    device : str or torch.device, optional
        Default: where the model's parameters are. The model is moved there.
    amp : {None, "bf16", "fp16"}
        Mixed precision with :func:`torch.autocast` (``"fp16"`` adds a gradient scaler).
    channels_last : bool
        Use the channels-last memory format for model and images (faster convolutions on
        recent GPUs).
    checkpoint : path, optional
        Written atomically after every step (rank 0 only) with everything needed to resume.
    resume : bool
        Continue from ``checkpoint`` if it exists (else start afresh): a run killed at any
        moment and resumed ends with the same weights as an uninterrupted one (same
        device, deterministic kernels).
    restore_best : bool
        Leave the model in the best validation state (default) rather than the last.
    progress : bool
        Show tqdm progress bars (rank 0 only).
    seed : int or None
        Seeds Python, NumPy and torch at the start of a fresh run (not on resume, which
        restores the saved RNG states); ``None`` leaves the generators alone.
    callback : callable, optional
        Called with each :class:`EpochRecord` after the step is logged and checkpointed.

    Returns
    -------
    History

    Raises
    ------
    NonFiniteLossError
        If a training loss is NaN or infinite (names epoch, stage and batch).
    ValueError
        For a missing or shuffling ``push_loader``, a checkpoint from another model or
        schedule, or a bad ``amp``.

    Notes
    -----
    BatchNorm statistics stay per process under DDP; convert with
    ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` before ``fit`` if wanted. The model
    is left in eval mode with ``requires_grad`` as it was before ``fit``. Bit-exact resume
    on a GPU also needs ``torch.use_deterministic_algorithms(True)`` (and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8``).

    Examples
    --------
    On a CPU, with the book's small backbone::

        model = ProtoPNet("small_cnn", n_classes=10, image_size=64)
        history = fit(model, train_loader, val_loader=val_loader,
                      push_loader=push_loader, schedule=Schedule.quick())
        history.to_frame()  # one row per epoch, push and last-layer pass

    On 4 GPUs, with the paper's schedule, resumable: write a script that calls
    ``fit(model, loader, ..., device=f"cuda:{os.environ['LOCAL_RANK']}", amp="bf16",
    checkpoint="run.pt", resume=True)`` and start it with
    ``torchrun --nproc_per_node=4 train.py``; ``fit`` joins the process group that
    ``torchrun`` describes, shards the loaders and checkpoints from rank 0.
    """
    from .losses import LossWeights

    schedule = Schedule() if schedule is None else schedule
    weights = LossWeights() if loss_weights is None else loss_weights
    steps = schedule.steps()
    _check_args(model, train_loader, val_loader, push_loader, schedule, amp, steps)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    info = rt.setup_distributed(device)
    was_requiring = [p.requires_grad for p in model.parameters()]
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    last_weights = dataclasses.replace(weights, clst=0.0, sep=0.0)

    train_ld = rt.shard_train_loader(train_loader, info, seed or 0)
    val_ld = rt.shard_eval_loader(val_loader, info) if val_loader is not None else None
    opts = _make_optimizers(model, schedule)
    sched = torch.optim.lr_scheduler.StepLR(
        opts["joint"], step_size=schedule.lr_step_size, gamma=schedule.lr_gamma
    )
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    history, best_state, start = History(), None, 0
    sched_state = dataclasses.asdict(schedule)

    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt is None:
        raise ValueError("resume=True needs checkpoint=<path>.")
    if resume and ckpt.is_file():
        payload = read_checkpoint(ckpt, map_location=device)
        if payload["config"] != getattr(model, "config", None):
            raise ValueError(
                f"the checkpoint {str(ckpt)!r} is for a model with config "
                f"{payload['config']}, not this one ({getattr(model, 'config', None)})."
            )
        if payload.get("schedule") != sched_state:
            raise ValueError(
                f"the checkpoint {str(ckpt)!r} was written with another schedule "
                f"({payload.get('schedule')}); resume with the same Schedule."
            )
        model.load_state_dict(payload["state_dict"])
        for k, opt in opts.items():
            opt.load_state_dict(payload["optimizers"][k])
        sched.load_state_dict(payload["scheduler"])
        if scaler is not None and payload.get("scaler"):
            scaler.load_state_dict(payload["scaler"])
        history = History.from_state(payload["history"])
        best_state = payload.get("best_state_dict")
        start = payload["next_step"]
        rngs = payload["rng"]
        rt.set_rng_state(rngs[info.rank] if len(rngs) == info.world_size else rngs[0], train_ld)
    elif seed is not None:
        rt.seed_everything(seed)

    from tqdm.auto import tqdm

    show = progress and info.is_main
    outer = tqdm(total=len(steps), initial=start, desc="ProtoPNet", disable=not show)
    ddp, ddp_stage = None, None
    try:
        for i in range(start, len(steps)):
            step = steps[i]
            t0 = time.perf_counter()
            set_trainable(model, step.stage)
            lr: dict[str, float] = {}
            if step.stage is Stage.PUSH:
                train_terms = push_pass(model, push_loader, device, info)
            else:
                net = model.forward_all
                if info.enabled:
                    if ddp_stage is not step.stage:  # DDP fixes its parameters when built
                        ddp = None
                        gc.collect()
                        ids = [device.index] if device.type == "cuda" else None
                        ddp = nn.parallel.DistributedDataParallel(ForwardAll(model), device_ids=ids)
                        ddp_stage = step.stage
                    net = ddp
                if isinstance(train_ld.sampler, DistributedSampler):
                    train_ld.sampler.set_epoch(i)
                opt = opts[_OPT_OF[step.stage]]
                lr = _lrs(opt, step.stage)
                w = last_weights if step.stage is Stage.LAST_LAYER else weights
                inner = tqdm(train_ld, desc=f"epoch {step.epoch} {step.stage.value}",
                             leave=False, disable=not show)  # fmt: skip
                ctx = (device, amp, channels_last, info, inner if show else None)
                with inner:
                    train_terms = train_pass(model, net, inner, opt, scaler, w, step, ctx)
                if step.stage is Stage.JOINT:
                    sched.step()
            val = None
            if val_ld is not None:
                val = evaluate(model, val_ld, weights, (device, amp, channels_last, info, None))
            rec = EpochRecord(
                i, step.epoch, step.stage, step.pass_index, lr, train_terms, val,
                time.perf_counter() - t0,
            )  # fmt: skip
            history.records.append(rec)
            candidate = schedule.select == "any" or step.stage in (Stage.PUSH, Stage.LAST_LAYER)
            if (
                val is not None
                and candidate
                and (
                    history.best_val_accuracy is None or val["accuracy"] > history.best_val_accuracy
                )
            ):
                history.best_step, history.best_val_accuracy = i, val["accuracy"]
                best_state = {k: v.detach().to("cpu", copy=True)
                              for k, v in model.state_dict().items()}  # fmt: skip
            if ckpt is not None:
                rngs = rt.gather_objects(rt.get_rng_state(train_ld), info)
                if info.is_main:
                    save_checkpoint(
                        ckpt, model,
                        schedule=sched_state,
                        optimizers={k: o.state_dict() for k, o in opts.items()},
                        scheduler=sched.state_dict(),
                        scaler=scaler.state_dict() if scaler is not None else None,
                        history=history.to_state(),
                        best_state_dict=best_state,
                        next_step=i + 1,
                        stage=step.stage.value,
                        epoch=step.epoch,
                        rng=rngs,
                    )  # fmt: skip
                if info.enabled:
                    torch.distributed.barrier()
            outer.set_postfix(
                epoch=step.epoch, stage=step.stage.value,
                train_acc=f"{train_terms.get('accuracy', float('nan')):.3f}",
                val_acc=f"{val['accuracy']:.3f}" if val else "-",
            )  # fmt: skip
            outer.update(1)
            if callback is not None:
                callback(rec)
        if restore_best and best_state is not None:
            model.load_state_dict(best_state)
    finally:
        outer.close()
        ddp = None
        for p, flag in zip(model.parameters(), was_requiring, strict=True):
            p.requires_grad_(flag)
        model.eval()
        if info.created_group:
            torch.distributed.destroy_process_group()
    return history
