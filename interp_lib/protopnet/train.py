"""Train a ProtoPNet through its stages: :func:`fit`.

``fit`` runs a :class:`~interp_lib.protopnet.stages.Schedule` (warm-up, joint, push,
last layer; the paper's values by default) on any device, with optional mixed precision,
``channels_last``, verified checkpoints that resume bit-exactly, and
DistributedDataParallel under ``torchrun``. The stages, schedule and logs are
re-exported here: :class:`Stage`, :class:`Schedule`, :class:`History`.

``fit`` is a short orchestration of named steps over one :class:`RunContext`:
:func:`_prepare` (checks, device, loaders, optimisers), :func:`_resume_or_seed`,
then for every step of the schedule :func:`_run_step`, :func:`_select_best` and
:func:`_save_checkpoint`; :func:`_finish` restores the model's flags.

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
import numbers
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from .._plumbing import NonFiniteLossError, check_writable
from .._plumbing import progress as progress_bar
from .._validation import check_choice, make_generator
from . import _runtime as rt
from ._loops import AMP, ForwardAll, PassContext, evaluate, last_layer_solve, push_pass, train_pass
from .checkpoint import (
    CorruptCheckpointError,
    read_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from .history import EpochRecord, History
from .losses import LossWeights
from .stages import ONE_STEP_SOLVERS, Schedule, Stage, Step, parameter_groups, set_trainable

__all__ = ["EpochRecord", "History", "NonFiniteLossError", "RunContext", "Schedule", "Stage", "fit"]

#: The optimiser of each training stage (a push has none; nor has a convex last layer).
_OPTIMIZER_OF = {Stage.WARMUP: "warmup", Stage.JOINT: "joint", Stage.LAST_LAYER: "last_layer"}


@dataclass
class RunContext:
    """Everything one :func:`fit` run carries from step to step.

    ``model`` is the bare ProtoPNet; ``net`` what the training pass calls (its
    ``forward_all``, or a DistributedDataParallel wrapper built for ``net_stage``).
    Optimiser parameter groups carry a ``"name"`` (``features``, ``add_on``,
    ``prototypes``, ``last_layer``) that ties them to their learning rates.
    """

    model: nn.Module
    schedule: Schedule
    steps: list[Step]
    weights: LossWeights
    passes: PassContext
    train_loader: DataLoader
    val_loader: DataLoader | None
    push_loader: DataLoader | None
    optimizers: dict[str, torch.optim.Optimizer]
    lr_scheduler: torch.optim.lr_scheduler.StepLR
    scaler: torch.amp.GradScaler | None
    checkpoint: Path | None
    seed: int | None = None
    history: History = field(default_factory=History)
    best_state: dict[str, torch.Tensor] | None = None
    start: int = 0
    net: Any = None
    net_stage: Stage | None = None
    #: The last layer's inputs on the push images, kept by a push for the convex solve
    #: that follows it (then dropped).
    pushed_inputs: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def last_layer_weights(self) -> LossWeights:
        """Last-layer passes optimise CE + L1 only."""
        return dataclasses.replace(self.weights, clst=0.0, sep=0.0)

    def fit_options(self) -> dict[str, Any]:
        """What, besides model and schedule, a resumed run must share with the original."""
        return {"class_specific": self.passes.class_specific,
                "loss_weights": self.weights.to_dict()}  # fmt: skip


# --------------------------------------------------------------------------- set-up
def _make_optimizers(model: nn.Module, s: Schedule) -> dict[str, torch.optim.Optimizer]:
    g = parameter_groups(model)
    wd = s.weight_decay

    def group(name: str, lr: float, decay: bool = False) -> dict[str, Any]:
        out = {"name": name, "params": g[name], "lr": lr}
        if decay:
            out["weight_decay"] = wd
        return out

    return {
        "warmup": torch.optim.Adam(
            [
                group("add_on", s.warmup_lr_add_on, True),
                group("prototypes", s.warmup_lr_prototypes),
            ]
        ),
        "joint": torch.optim.Adam(
            [
                group("features", s.joint_lr_features, True),
                group("add_on", s.joint_lr_add_on, True),
                group("prototypes", s.joint_lr_prototypes),
            ]
        ),
        "last_layer": torch.optim.Adam([group("last_layer", s.last_layer_lr)]),
    }


def learning_rates(opt: torch.optim.Optimizer) -> dict[str, float]:
    """``{group name: lr}`` of an optimiser built by ``fit`` (groups tied by name)."""
    return {pg["name"]: float(pg["lr"]) for pg in opt.param_groups}


def _n_batches(loader: DataLoader) -> int | None:
    try:
        return len(loader)
    except TypeError:  # an iterable data set without __len__: checked while training
        return None


def _warn_about_budget(loader: DataLoader, schedule: Schedule, info: rt.DistInfo) -> None:
    """Warn when the loader's steps per epoch are far from those the schedule's epoch
    counts were chosen for (``Schedule.steps_per_epoch``)."""
    n, ref = _n_batches(loader), schedule.steps_per_epoch
    if n and ref is not None and not ref / 2 <= n <= 2 * ref:
        warnings.warn(
            f"the schedule's epoch counts were chosen for {ref} optimizer steps per epoch, "
            f"but train_loader gives {n}{' per process' if info.enabled else ''}: every "
            f"stage gets {ref / n:.3g}x {'fewer' if n < ref else 'more'} steps than "
            "intended. Use schedule.scaled(len(train_loader)) to keep the budgets in "
            "optimizer steps, or Schedule(..., steps_per_epoch=None) if the epochs are "
            "what you mean.",
            UserWarning,
            stacklevel=4,
        )


def _check_args(model, train_loader, val_loader, push_loader, schedule, amp, steps) -> None:
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


def _fresh_run_seed(seed: int | torch.Generator | None) -> int | None:
    """The int that seeds the global generators (``None``: leave them alone)."""
    if seed is None:
        return None
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return int(seed)
    g = make_generator(seed)  # a Generator: draw the run's seed from it
    return int(torch.randint(0, 2**62, (1,), generator=g))


def _prepare(
    model, train_loader, val_loader, push_loader, schedule, loss_weights, device, amp,
    channels_last, checkpoint, resume, overwrite, progress, seed, class_specific,
) -> RunContext:  # fmt: skip
    """Check the arguments, move the model, shard the loaders, build the optimisers."""
    schedule = Schedule() if schedule is None else schedule
    weights = LossWeights() if loss_weights is None else loss_weights
    if not isinstance(weights, LossWeights):
        raise TypeError(f"loss_weights must be a LossWeights, got {type(weights).__name__}.")
    if not isinstance(class_specific, bool):
        raise TypeError(f"class_specific must be True or False, got {class_specific!r}.")
    steps = schedule.steps()
    _check_args(model, train_loader, val_loader, push_loader, schedule, amp, steps)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt is None:
        raise ValueError("resume=True needs checkpoint=<path>.")
    if ckpt is not None and not resume and ckpt.exists() and not overwrite:
        raise FileExistsError(
            f"the checkpoint {str(ckpt)!r} already exists and fit would overwrite it with a "
            "fresh run. Continue it with resume=True, choose another path, or pass "
            "overwrite=True to replace it."
        )
    if _n_batches(train_loader) == 0:
        raise ValueError(
            "train_loader yields no batches (an empty data set, or drop_last=True with "
            "fewer images than batch_size); fit needs training images."
        )
    run_seed = _fresh_run_seed(seed)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    info = rt.setup_distributed(device)
    if ckpt is not None and info.is_main:  # fail now, not after the first step's training
        check_writable(ckpt, "checkpoint")
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    train_ld = rt.shard_train_loader(train_loader, info, run_seed or 0)
    _warn_about_budget(train_ld, schedule, info)
    opts = _make_optimizers(model, schedule)
    return RunContext(
        model=model,
        schedule=schedule,
        steps=steps,
        weights=weights,
        passes=PassContext(
            device, amp, channels_last, info, progress and info.is_main, class_specific
        ),
        train_loader=train_ld,
        val_loader=rt.shard_eval_loader(val_loader, info) if val_loader is not None else None,
        push_loader=push_loader,
        optimizers=opts,
        lr_scheduler=torch.optim.lr_scheduler.StepLR(
            opts["joint"], step_size=schedule.lr_step_size, gamma=schedule.lr_gamma
        ),
        scaler=torch.amp.GradScaler(device.type) if amp == "fp16" else None,
        checkpoint=ckpt,
        seed=run_seed,
    )


# --------------------------------------------------------------------------- resume
def _training_state(payload: dict[str, Any], path: Path, n_steps: int) -> None:
    """Check the training entries of a checkpoint before any of them is used."""
    want = {"optimizers": dict, "scheduler": dict, "history": dict, "next_step": int,
            "rng": list, "schedule": dict}  # fmt: skip
    bad = [k for k, t in want.items() if not isinstance(payload.get(k), t)]
    if bad:
        raise CorruptCheckpointError(
            f"{str(path)!r} is not a fit() checkpoint that can be resumed: entries {bad} are "
            "missing or of the wrong type (save_checkpoint alone writes no training state)."
        )
    if not 0 <= payload["next_step"] <= n_steps:
        raise CorruptCheckpointError(
            f"{str(path)!r}: next_step {payload['next_step']} is outside the schedule's "
            f"0..{n_steps} steps."
        )


def _resume_or_seed(run: RunContext, resume: bool) -> None:
    """Restore the run from its checkpoint (``resume`` and the file exists), else seed
    the global generators for a fresh run."""
    ckpt, model, info = run.checkpoint, run.model, run.passes.dist
    if resume and ckpt is not None and info.is_main:
        remove_stale_temporaries(ckpt)
    if not (resume and ckpt is not None and ckpt.is_file()):
        if run.seed is not None:
            rt.seed_everything(run.seed)
        return
    payload = read_checkpoint(ckpt, map_location=run.passes.device)
    if payload["config"] != getattr(model, "config", None):
        raise ValueError(
            f"the checkpoint {str(ckpt)!r} is for a model with config "
            f"{payload['config']}, not this one ({getattr(model, 'config', None)})."
        )
    _training_state(payload, ckpt, len(run.steps))
    if payload["schedule"] != dataclasses.asdict(run.schedule):
        raise ValueError(
            f"the checkpoint {str(ckpt)!r} was written with another schedule "
            f"({payload['schedule']}); resume with the same Schedule."
        )
    if payload.get("fit_options", run.fit_options()) != run.fit_options():
        raise ValueError(
            f"the checkpoint {str(ckpt)!r} was written with other fit options "
            f"({payload['fit_options']}); resume with the same class_specific and loss_weights."
        )
    model.load_state_dict(payload["state_dict"])
    for k, opt in run.optimizers.items():
        opt.load_state_dict(payload["optimizers"][k])
    run.lr_scheduler.load_state_dict(payload["scheduler"])
    if run.scaler is not None and payload.get("scaler"):
        run.scaler.load_state_dict(payload["scaler"])
    run.history = History.from_state(payload["history"])
    run.best_state = payload.get("best_state_dict")
    run.start = payload["next_step"]
    rngs = payload["rng"]
    rt.set_rng_state(rngs[info.rank] if len(rngs) == info.world_size else rngs[0],
                     run.train_loader)  # fmt: skip


# ----------------------------------------------------------------------------- steps
def _training_net(run: RunContext, stage: Stage):
    """``model.forward_all``, or under DDP a wrapper built for this stage's parameters
    (DDP fixes the parameters it syncs when it is built)."""
    if not run.passes.dist.enabled:
        return run.model.forward_all
    if run.net_stage is not stage:
        run.net = None
        gc.collect()
        device = run.passes.device
        ids = [device.index] if device.type == "cuda" else None
        run.net = nn.parallel.DistributedDataParallel(ForwardAll(run.model), device_ids=ids)
        run.net_stage = stage
    return run.net


def _run_step(run: RunContext, i: int) -> EpochRecord:
    """Run step ``i`` of the schedule (an epoch, a push or a last-layer pass), evaluate
    on the validation split, and log it."""
    step = run.steps[i]
    t0 = time.perf_counter()
    set_trainable(run.model, step.stage)
    lr: dict[str, float] = {}
    solver = run.schedule.last_layer_solver
    one_step = solver in ONE_STEP_SOLVERS  # solved once on the push images' similarities
    if step.stage is Stage.PUSH:
        following = run.steps[i + 1].stage if i + 1 < len(run.steps) else None
        train_terms, run.pushed_inputs = push_pass(
            run.model, run.push_loader, run.passes,
            keep_last_layer_inputs=one_step and following is Stage.LAST_LAYER,
        )  # fmt: skip
    elif step.stage is Stage.LAST_LAYER and one_step:
        train_terms = last_layer_solve(
            run.model, run.push_loader, run.weights, run.schedule.last_layer_l2,
            run.passes, inputs=run.pushed_inputs,
            rule="adam" if solver == "adam_push" else solver, adam=_adam_options(run, step),
        )  # fmt: skip
        run.pushed_inputs = None
    else:
        net = _training_net(run, step.stage)
        if isinstance(run.train_loader.sampler, DistributedSampler):
            run.train_loader.sampler.set_epoch(i)
        opt = run.optimizers[_OPTIMIZER_OF[step.stage]]
        lr = learning_rates(opt)
        w = run.last_layer_weights if step.stage is Stage.LAST_LAYER else run.weights
        train_terms = train_pass(run.model, net, run.train_loader, opt, run.scaler, w, step,
                                 run.passes)  # fmt: skip
        if step.stage is Stage.JOINT:
            run.lr_scheduler.step()
    val = None
    if run.val_loader is not None:
        val = evaluate(run.model, run.val_loader, run.weights, run.passes)
    rec = EpochRecord(i, step.epoch, step.stage, step.pass_index, lr, train_terms, val,
                      time.perf_counter() - t0)  # fmt: skip
    run.history.records.append(rec)
    return rec


def _adam_options(run: RunContext, step: Step) -> dict[str, Any] | None:
    """Options of the ``"adam_push"`` last layer: the schedule's lr and passes, batches of
    ``last_layer_batch_size`` rows (default: the training loader's batch size) in an
    order drawn from the run's seed and the epoch (the same on every rank)."""
    s = run.schedule
    if s.last_layer_solver != "adam_push":
        return None
    batch = s.last_layer_batch_size or getattr(run.train_loader, "batch_size", None) or 80
    return {"lr": s.last_layer_lr, "passes": s.last_layer_passes, "batch_size": int(batch),
            "seed": ((run.seed or 0) * 1009 + step.epoch) % 2**63}  # fmt: skip


def _select_best(run: RunContext, rec: EpochRecord) -> None:
    """Keep a CPU copy of the state if it is a candidate (``Schedule.select``) with the
    best validation accuracy so far."""
    h = run.history
    candidate = run.schedule.select == "any" or rec.stage in (Stage.PUSH, Stage.LAST_LAYER)
    if rec.val is None or not candidate:
        return
    if h.best_val_accuracy is None or rec.val["accuracy"] > h.best_val_accuracy:
        h.best_step, h.best_val_accuracy = rec.step, rec.val["accuracy"]
        run.best_state = {k: v.detach().to("cpu", copy=True)
                          for k, v in run.model.state_dict().items()}  # fmt: skip


def _save_checkpoint(run: RunContext, rec: EpochRecord) -> None:
    """Write everything needed to resume after step ``rec.step`` (rank 0 writes; every
    rank contributes its RNG state)."""
    if run.checkpoint is None:
        return
    info = run.passes.dist
    rngs = rt.gather_objects(rt.get_rng_state(run.train_loader), info)
    if info.is_main:
        save_checkpoint(
            run.checkpoint, run.model,
            schedule=dataclasses.asdict(run.schedule),
            fit_options=run.fit_options(),
            optimizers={k: o.state_dict() for k, o in run.optimizers.items()},
            scheduler=run.lr_scheduler.state_dict(),
            scaler=run.scaler.state_dict() if run.scaler is not None else None,
            history=run.history.to_state(),
            best_state_dict=run.best_state,
            next_step=rec.step + 1,
            stage=rec.stage.value,
            epoch=rec.epoch,
            rng=rngs,
        )  # fmt: skip
    if info.enabled:
        torch.distributed.barrier()


def _finish(model: nn.Module, was_requiring: list[bool], info: rt.DistInfo) -> None:
    """Restore ``requires_grad``, leave the model in eval mode, close a process group
    that ``fit`` opened."""
    for p, flag in zip(model.parameters(), was_requiring, strict=True):
        p.requires_grad_(flag)
    model.eval()
    if info.created_group:
        torch.distributed.destroy_process_group()


# -------------------------------------------------------------------------------- fit
def fit(
    model: nn.Module,
    train_loader: DataLoader,
    *,
    val_loader: DataLoader | None = None,
    push_loader: DataLoader | None = None,
    schedule: Schedule | None = None,
    loss_weights: LossWeights | None = None,
    class_specific: bool = True,
    device: str | torch.device | None = None,
    amp: str | None = None,
    channels_last: bool = False,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    restore_best: bool = True,
    progress: bool = True,
    seed: int | torch.Generator | None = 0,
    callback: Callable[[EpochRecord], Any] | None = None,
) -> History:
    """Train ``model`` through ``schedule`` and return the per-step :class:`History`.

    Parameters
    ----------
    model : ProtoPNet
        Trained in place. Under ``torchrun`` it is wrapped in DistributedDataParallel
        inside ``fit`` only; pass the bare model.
    train_loader : DataLoader
        Yields ``(x, y, ...)``: images ``(B, C, H, W)`` and labels ``(B,)`` in
        ``0 .. n_classes - 1``. Augment here. Under DDP its ``batch_size`` is per
        process (global batch = ``batch_size * world_size``) and it is re-built with a
        ``DistributedSampler`` (``shuffle`` kept), unless it already has one.
    val_loader : DataLoader, optional
        The validation split, evaluated after every step; the state with the best
        validation accuracy is kept (model selection never looks at a test set). What
        it draws (a shuffle, an augmentation) never reaches the training batches: the
        global generators are restored after every evaluation.
    push_loader : DataLoader, optional
        Un-augmented training images, ``shuffle=False``; needed if the schedule pushes.
        The convex last-layer stage solves on these images too (a run resumed right
        after a push reads them again, so they must not be augmented). Read, like
        ``val_loader``, without moving the training's random streams.
    schedule : Schedule, optional
        Default ``Schedule()`` (the paper's epochs, learning rates and pushes, for its
        ~2250 optimizer steps per epoch: see :meth:`Schedule.scaled` for a smaller
        data set); :meth:`Schedule.quick` / :meth:`Schedule.cpu_birds` for CPU.
    loss_weights : LossWeights, optional
        Default ``LossWeights()`` (CE 1, Clst 0.8, Sep -0.08, L1 1e-4). Last-layer
        stages use CE + L1 only.
    class_specific : bool
        ``True`` (the paper): class-specific cluster and separation costs, L1 on the
        off-class connections. ``False`` (the original code's option): the cluster cost
        to the nearest prototype of any class, no separation cost, L1 on every
        last-layer weight (see :func:`~interp_lib.protopnet.protopnet_loss`).
    device : str or torch.device, optional
        Default: where the model's parameters are. The model is moved there.
    amp : {None, "bf16", "fp16"}
        Mixed precision with :func:`torch.autocast` (``"fp16"`` adds a gradient scaler).
    channels_last : bool
        Use the channels-last memory format for model and images (faster convolutions on
        recent GPUs and on most CPUs; ``bench/protopnet.py --channels-last`` measures it).
    checkpoint : path, optional
        Written atomically after every step (rank 0 only) with everything needed to
        resume, and a SHA-256 of its contents that every read verifies. Checked to be
        writable before training starts.
    resume : bool
        Continue from ``checkpoint`` if it exists (else start afresh): a run killed at any
        moment (inside an epoch, or at any stage boundary: after a warm-up or joint epoch,
        right after a push, after a last-layer step) and resumed ends with the same
        weights, optimiser states and history as an uninterrupted one (same device,
        deterministic kernels). A damaged checkpoint raises
        :class:`~interp_lib.protopnet.checkpoint.CorruptCheckpointError`; it is never
        continued from.
    overwrite : bool
        Allow a fresh run (``resume=False``) to replace an existing ``checkpoint`` file.
    restore_best : bool
        Leave the model in the best validation state (default) rather than the last.
    progress : bool
        Show tqdm progress bars (rank 0 only). They only display: the weights and the
        history are the same, bit for bit, with or without them.
    seed : int, torch.Generator or None
        Seeds Python, NumPy and torch's global generators at the start of a fresh run
        (not on resume, which restores the saved RNG states); a Generator provides that
        seed; ``None`` leaves the generators alone. The global generators are seeded
        (not a private one) because data sets and augmentations draw from them.
    callback : callable, optional
        Called with each :class:`EpochRecord` after the step is logged and checkpointed.

    Returns
    -------
    History

    Raises
    ------
    NonFiniteLossError
        If a training loss is NaN or infinite (names epoch, stage and batch; that batch's
        gradients are zeroed, so the weights stay finite).
    ValueError
        For a missing or shuffling ``push_loader``, an empty ``train_loader``, labels
        out of range, a checkpoint from another model, schedule or fit options, or a bad
        ``amp``.
    CorruptCheckpointError
        (a ``ValueError``) If ``resume`` finds a damaged or unverifiable checkpoint.
    FileExistsError
        If ``checkpoint`` exists, ``resume=False`` and ``overwrite=False``.
    OSError
        If ``checkpoint`` cannot be written (its folder is a file or read-only, the path
        is a folder), before any training.

    Notes
    -----
    BatchNorm statistics stay per process under DDP; convert with
    ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` before ``fit`` if wanted. The model
    is left in eval mode with ``requires_grad`` as it was before ``fit``. Bit-exact resume
    on a GPU also needs ``torch.use_deterministic_algorithms(True)`` (and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8``). Loss terms are summed on the device and read
    once per pass: no host synchronisation per batch (except a progress-bar refresh every
    25 batches when ``progress``).

    Deliberate differences from the original code (cfchen-duke/ProtoPNet):

    * **Last-layer stage solved to convergence** (``Schedule.last_layer_solver =
      "convex"``, the default): the original runs 20 epochs of Adam (lr 1e-4) over the
      augmented training loader, which on a small data set leaves the last layer near
      its initial value. Here the similarities of the un-augmented push images are
      computed once (eval mode; right after a push, from the latent maps that push
      computed, so without another pass over the images) and CE + L1 + a small ridge
      (``last_layer_l2``) is minimised with L-BFGS-B to a certified optimum
      (:func:`~interp_lib.protopnet.last_layer.solve_last_layer`). ``"adam"`` restores
      the original stage; ``"adam_push"`` runs its Adam passes on the push images'
      similarities; ``"convex_nonpositive"`` solves to the optimum with every off-class
      weight kept ``<= 0`` (the paper's aim for this stage: a class explained by its own
      prototypes; see :mod:`interp_lib.protopnet.last_layer`).
    * **Frozen BatchNorm stays in eval mode** in the warm-up and last-layer stages (the
      original's ``model.train()`` keeps updating the frozen trunk's running statistics,
      so pushed prototypes drift away from their training patches).
    * **The last-layer stage runs for every similarity**: the original skips it for
      ``'linear'`` similarity.
    * **Cluster and separation costs are computed directly** (a masked minimum), not with
      the original's ``max_dist`` trick, which is wrong once distances exceed ``max_dist``.
    * **``class_specific=False``** follows the original's formulas; push stays
      class-specific (each prototype is pushed onto a patch of its own class).
    * **Model selection** on a validation split among pushed states (``Schedule.select``),
      never on the test set; a final push after the last epoch (``final_push``).
    * **The joint learning-rate decay** counts joint epochs (the original steps its
      scheduler before each epoch, so its first decay comes one epoch early).

    Examples
    --------
    On a CPU, with the book's small backbone::

        model = ProtoPNet("small_cnn", n_classes=10, image_size=64)
        history = fit(model, train_loader, val_loader=val_loader,
                      push_loader=push_loader, schedule=Schedule.quick())
        history.to_pandas()  # one row per epoch, push and last-layer pass

    On 4 GPUs, with the paper's schedule, resumable: write a script that calls
    ``fit(model, loader, ..., device=f"cuda:{os.environ['LOCAL_RANK']}", amp="bf16",
    checkpoint="run.pt", resume=True)`` and start it with
    ``torchrun --nproc_per_node=4 train.py``; ``fit`` joins the process group that
    ``torchrun`` describes, shards the loaders and checkpoints from rank 0.
    """
    was_requiring = [p.requires_grad for p in model.parameters()]
    run = _prepare(model, train_loader, val_loader, push_loader, schedule, loss_weights,
                   device, amp, channels_last, checkpoint, resume, overwrite, progress, seed,
                   class_specific)  # fmt: skip
    try:
        _resume_or_seed(run, resume)
        bar = progress_bar(range(run.start, len(run.steps)), run.passes.show_progress,
                           "ProtoPNet")  # fmt: skip
        for i in bar:
            rec = _run_step(run, i)
            _select_best(run, rec)
            _save_checkpoint(run, rec)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(epoch=rec.epoch, stage=rec.stage.value,
                                val_acc=f"{rec.val['accuracy']:.3f}" if rec.val else "-")  # fmt: skip
            if callback is not None:
                callback(rec)
        if restore_best and run.best_state is not None:
            model.load_state_dict(run.best_state)
    finally:
        run.net = None
        _finish(model, was_requiring, run.passes.dist)
    return run.history
