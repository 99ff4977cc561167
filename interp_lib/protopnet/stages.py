"""Training stages of ProtoPNet as data: the :class:`Stage` enum and the :class:`Schedule`.

The paper (Chen et al., NeurIPS 2019, and its released code) trains in four stages:

- **warm-up** (first 5 epochs): the backbone is frozen; add-on layers and prototypes learn
  with Adam, lr 3e-3 (weight decay 1e-3 on the add-on layers only);
- **joint**: backbone (lr 1e-4), add-on (3e-3) and prototypes (3e-3) learn together, weight
  decay 1e-3 on backbone and add-on, step decay x0.1 every 5 joint epochs;
- **push** (every 10 epochs from epoch 10): each prototype is projected onto its nearest
  own-class training patch (:func:`interp_lib.protopnet.push`);
- **last layer** (after every push): only the last layer learns (lr 1e-4, no weight
  decay) for 20 passes with cross-entropy + L1 (the other loss terms have no gradient).
  The paper calls this stage a convex optimisation; by default the library solves it to
  convergence instead (:mod:`interp_lib.protopnet.last_layer`, ``last_layer_solver``),
  optionally with the off-class weights kept ``<= 0`` (``"convex_nonpositive"``).

The last layer is *not* trained during warm-up and joint epochs.

Stage budgets and data size
---------------------------
Stage lengths are counted in epochs, as in the paper, but what a stage gets is
*optimizer steps* = epochs x steps per epoch. The paper's epochs were set for its CUB
pipeline (30x offline augmentation, batch 80: about 2250 steps per epoch,
``PAPER_STEPS_PER_EPOCH``); the same epochs on a set 50x smaller are 50x fewer steps.
So a :class:`Schedule` records the steps per epoch its epochs were meant for
(``steps_per_epoch``), ``fit`` warns when the training loader is far from it, and
:meth:`Schedule.scaled` rescales every epoch count to the loader at hand so that each
stage keeps its number of optimizer steps. :meth:`Schedule.optimizer_steps` shows the
budget.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from torch import nn

from .._validation import check_choice, check_int, check_real

__all__ = [
    "PAPER_STEPS_PER_EPOCH",
    "Schedule",
    "Stage",
    "Step",
    "parameter_groups",
    "set_trainable",
]

#: Optimizer steps per epoch of the paper's pipeline (about 180,000 augmented CUB
#: images at batch 80), for which ``Schedule()``'s epoch counts were chosen.
PAPER_STEPS_PER_EPOCH = 2250

#: The values of ``Schedule.last_layer_solver``; those that solve once after each push on
#: the push images' similarities are ``ONE_STEP_SOLVERS``.
LAST_LAYER_SOLVERS = ("convex", "convex_nonpositive", "adam", "adam_push")
ONE_STEP_SOLVERS = ("convex", "convex_nonpositive", "adam_push")

#: Schedule fields counted in epochs (what :meth:`Schedule.scaled` rescales).
_EPOCH_FIELDS = ("epochs", "warmup_epochs", "push_start", "push_every", "lr_step_size")


class Stage(str, enum.Enum):
    """A stage of ProtoPNet training (its value is the string used in logs and checkpoints)."""

    WARMUP = "warmup"
    JOINT = "joint"
    PUSH = "push"
    LAST_LAYER = "last_layer"


#: Which parameter groups learn in each stage (groups of :func:`parameter_groups`).
TRAINABLE: dict[Stage, tuple[str, ...]] = {
    Stage.WARMUP: ("add_on", "prototypes"),
    Stage.JOINT: ("features", "add_on", "prototypes"),
    Stage.PUSH: (),
    Stage.LAST_LAYER: ("last_layer",),
}


def parameter_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The four parameter groups of a ProtoPNet: ``features``, ``add_on``, ``prototypes``,
    ``last_layer``.

    Raises
    ------
    TypeError
        If ``model`` lacks one of the attributes ``features``, ``add_on``, ``prototypes``,
        ``last_layer`` (pass the :class:`~interp_lib.protopnet.ProtoPNet` itself, not a
        ``DistributedDataParallel`` wrapper).
    """
    missing = [
        a for a in ("features", "add_on", "prototypes", "last_layer") if not hasattr(model, a)
    ]
    if missing:
        raise TypeError(
            f"expected a ProtoPNet with attributes features, add_on, prototypes and "
            f"last_layer; {type(model).__name__} lacks {missing}. Pass the ProtoPNet itself "
            "(fit wraps it in DistributedDataParallel when needed)."
        )
    return {
        "features": list(model.features.parameters()),
        "add_on": list(model.add_on.parameters()),
        "prototypes": [model.prototypes],
        "last_layer": list(model.last_layer.parameters()),
    }


def set_trainable(model: nn.Module, stage: Stage | str) -> None:
    """Set ``requires_grad`` of every parameter group for ``stage`` (see :data:`TRAINABLE`).

    Only the intended groups receive gradients afterwards; e.g. in ``Stage.WARMUP`` the
    backbone and the last layer are frozen.
    """
    stage = Stage(stage)
    for name, params in parameter_groups(model).items():
        flag = name in TRAINABLE[stage]
        for p in params:
            p.requires_grad_(flag)


@dataclass(frozen=True)
class Step:
    """One unit of work of a schedule: a training epoch, a push, or a last-layer pass."""

    epoch: int
    stage: Stage
    pass_index: int = 0  # 0..last_layer_passes-1 for Stage.LAST_LAYER ("adam"), else 0


@dataclass(frozen=True)
class Schedule:
    """When each stage runs and with which optimiser settings (defaults: the paper's).

    Epochs are counted from 0. Epochs ``0 .. warmup_epochs-1`` are warm-up, later ones
    joint. After epoch ``e`` a push happens when ``e >= push_start`` and
    ``e % push_every == 0`` (as in the released code), followed by the last-layer stage:
    one convex solve (default) or ``last_layer_passes`` Adam passes.

    Parameters
    ----------
    epochs : int
        Number of warm-up + joint epochs. The released code sets 1000 and keeps the best
        pushed model; on CPU use :meth:`quick`.
    warmup_epochs : int
        Epochs with a frozen backbone (5).
    push_start, push_every : int
        First push epoch (10) and push period (10).
    final_push : bool
        Also push after the last epoch if it is not a push epoch, so the final model is
        always a pushed one (the released code does not; it keeps the best pushed model).
    last_layer_passes : int
        Last-layer-only Adam passes after each push (20) with ``last_layer_solver="adam"``
        or ``"adam_push"``; with the convex solvers, 0 skips the last-layer stage and any
        other value means one solve.
    warmup_lr_add_on, warmup_lr_prototypes : float
        Adam learning rates in warm-up (3e-3, 3e-3).
    joint_lr_features, joint_lr_add_on, joint_lr_prototypes : float
        Adam learning rates in joint training (1e-4, 3e-3, 3e-3).
    last_layer_lr : float
        Adam learning rate of the last layer after a push (1e-4), for ``"adam"``.
    last_layer_solver : {"convex", "convex_nonpositive", "adam", "adam_push"}
        The last-layer rule after each push (:mod:`interp_lib.protopnet.last_layer`).
        ``"convex"`` (default): solve the last-layer problem (CE + L1 + a small ridge
        ``last_layer_l2``) to a certified minimum on the similarities of the
        un-augmented push images, computed once in eval mode
        (:func:`~interp_lib.protopnet.last_layer.solve_last_layer`).
        ``"convex_nonpositive"``: the same minimum under the constraint that every
        off-class weight (the L1-penalised ones) stays ``<= 0``, so that no positive
        evidence for a class comes from another class's prototypes. ``"adam"``: the
        released code's ``last_layer_passes`` epochs of Adam (lr ``last_layer_lr``) over
        the training loader, one :class:`Step` each. ``"adam_push"``: the same Adam
        passes, in one step, on the fixed similarities of the push images (the convex
        solvers' inputs; batches of ``last_layer_batch_size``), which costs no forward
        pass.
    last_layer_l2 : float
        Ridge weight of the convex solves (1e-3; the minimum may not exist without it).
    last_layer_batch_size : int or None
        Rows per Adam step of ``"adam_push"``; ``None``: the training loader's batch size.
    steps_per_epoch : int or None
        The optimizer steps per epoch the epoch counts were chosen for
        (``PAPER_STEPS_PER_EPOCH`` for the paper's values); ``fit`` warns when the
        training loader has fewer than half or more than twice as many. ``None``: no
        check. See :meth:`scaled`.
    weight_decay : float
        L2 weight decay (Adam's ``weight_decay``) of the add-on layers and, in joint
        training, the backbone (1e-3). Prototypes and last layer have none.
    lr_step_size, lr_gamma : int, float
        Joint learning rates are multiplied by ``lr_gamma`` (0.1) every ``lr_step_size``
        (5) joint epochs: joint epoch ``j`` uses ``lr * gamma ** (j // step)``. (The
        released code calls ``scheduler.step()`` before each epoch, which makes the first
        decay come one epoch early.)
    select : {"pushed", "any"}
        Which states are candidates for model selection on the validation split: only
        states right after a push or a last-layer pass (the paper's interpretable models),
        or every evaluated state.
    """

    epochs: int = 1000
    warmup_epochs: int = 5
    push_start: int = 10
    push_every: int = 10
    final_push: bool = True
    last_layer_passes: int = 20
    warmup_lr_add_on: float = 3e-3
    warmup_lr_prototypes: float = 3e-3
    joint_lr_features: float = 1e-4
    joint_lr_add_on: float = 3e-3
    joint_lr_prototypes: float = 3e-3
    last_layer_lr: float = 1e-4
    weight_decay: float = 1e-3
    lr_step_size: int = 5
    lr_gamma: float = 0.1
    select: str = "pushed"
    last_layer_solver: str = "convex"
    last_layer_l2: float = 1e-3
    last_layer_batch_size: int | None = None
    steps_per_epoch: int | None = PAPER_STEPS_PER_EPOCH

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.warmup_epochs, "warmup_epochs", minimum=0)
        check_int(self.push_start, "push_start", minimum=0)
        check_int(self.push_every, "push_every", minimum=1)
        check_int(self.last_layer_passes, "last_layer_passes", minimum=0)
        check_int(self.lr_step_size, "lr_step_size", minimum=1)
        check_choice(self.select, "select", ("pushed", "any"))
        check_choice(self.last_layer_solver, "last_layer_solver", LAST_LAYER_SOLVERS)
        if self.last_layer_batch_size is not None:
            check_int(self.last_layer_batch_size, "last_layer_batch_size", minimum=1)
        if self.steps_per_epoch is not None:
            check_int(self.steps_per_epoch, "steps_per_epoch", minimum=1)
        for f in dataclasses.fields(self):
            if f.name.endswith(("_lr", "_lr_add_on", "_lr_prototypes", "_lr_features")) or (
                f.name in ("weight_decay", "lr_gamma", "last_layer_l2")
            ):
                check_real(getattr(self, f.name), f.name, minimum=0.0)  # finite, >= 0

    @classmethod
    def quick(cls, epochs: int = 10, **overrides) -> Schedule:
        """A short CPU preset for the book: a small backbone trained from scratch.

        ``epochs`` (10) epochs: 2 warm-up, pushes after epoch 5 and after the last
        epoch, 5 last-layer passes, a 10x faster backbone learning rate (1e-3, since the
        small backbone is not pretrained) and a step decay every 5 joint epochs. Any field
        can be overridden by keyword.

        A starting point, not a tuned recipe: from scratch on the procedural birds it
        stays near chance. Start from a trained trunk instead, as the paper does: :func:`~interp_lib.protopnet.pretrain_backbone`
        then :meth:`cpu_birds` (see ``bench/protopnet_birds.py``).
        """
        kw = dict(
            epochs=epochs,
            warmup_epochs=2,
            push_start=5,
            push_every=5,
            last_layer_passes=5,
            joint_lr_features=1e-3,
            lr_step_size=5,
            steps_per_epoch=None,
        )
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def cpu_birds(cls, epochs: int = 12, **overrides) -> Schedule:
        """A short CPU schedule for a *warm-started* trunk (the documented birds recipe).

        Meant to follow :func:`~interp_lib.protopnet.pretrain_backbone` (our offline
        stand-in for the paper's ImageNet initialisation) and
        :func:`~interp_lib.protopnet.seed_prototypes`: ``epochs`` (12) epochs, 2 warm-up,
        a push every 4 epochs from epoch 4 and after the last epoch, 5 last-layer passes
        after each; the paper's learning rates otherwise (backbone 1e-4: the trunk is
        already trained), step decay every 5 joint epochs. Any field can be overridden by
        keyword. See ``bench/protopnet_birds.py`` for the whole recipe and its numbers.

        The zoo's birds recipe overrides it (``interp_lib.zoo.birds.DEFAULT_SCHEDULE``):
        10 epochs, 1 warm-up, a push and last-layer solve after epochs 0, 2, 4, 6, 8 and
        9, the last epoch at a tenth of the learning rates, and the trunk at the CNN's
        learning rate (2e-3), since a trunk warm-started for 18 epochs on 1500 images is
        far from an ImageNet-trained one.
        """
        kw = dict(
            epochs=epochs,
            warmup_epochs=2,
            push_start=4,
            push_every=4,
            last_layer_passes=5,
            lr_step_size=5,
            steps_per_epoch=None,
        )
        kw.update(overrides)
        return cls(**kw)

    def scaled(self, steps_per_epoch: int, *, reference: int | None = None) -> Schedule:
        """This schedule for a loader of ``steps_per_epoch`` batches, with every stage
        keeping its number of optimizer steps.

        Every epoch count (``epochs``, ``warmup_epochs``, ``push_start``, ``push_every``,
        ``lr_step_size``; with ``"adam"`` also ``last_layer_passes``) is multiplied by
        ``reference / steps_per_epoch`` (rounded, at least 1), where ``reference`` is
        ``self.steps_per_epoch`` by default. Learning rates are unchanged.

        Examples
        --------
        The paper's budgets on a loader of 45 batches (50x more epochs)::

            schedule = Schedule().scaled(len(train_loader))
        """
        steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
        reference = self.steps_per_epoch if reference is None else reference
        if reference is None:
            raise ValueError(
                "this schedule does not say which steps per epoch its epochs were chosen "
                "for (steps_per_epoch=None); pass scaled(n, reference=<steps per epoch>)."
            )
        reference = check_int(reference, "reference", minimum=1)
        factor = reference / steps_per_epoch
        fields = _EPOCH_FIELDS + (
            ("last_layer_passes",) if self.last_layer_solver in ("adam", "adam_push") else ()
        )
        kw = {f: max(1, round(getattr(self, f) * factor)) if getattr(self, f) else 0
              for f in fields}  # fmt: skip
        return dataclasses.replace(self, **kw, steps_per_epoch=steps_per_epoch)

    def optimizer_steps(self, steps_per_epoch: int) -> dict[str, int]:
        """Optimizer steps of each stage over the whole run, for a loader of
        ``steps_per_epoch`` batches: ``warmup``, ``joint``, ``last_layer`` (Adam steps;
        0 with the convex solvers) and ``pushes`` (their number)."""
        steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
        steps = self.steps()
        count = {s: sum(st.stage is s for st in steps) for s in Stage}
        # "adam": one pass per step; "adam_push": every pass in one step (batches of
        # last_layer_batch_size rows may differ from the loader's); convex: no Adam step
        passes = {"adam": 1, "adam_push": self.last_layer_passes}.get(self.last_layer_solver, 0)
        return {
            "warmup": count[Stage.WARMUP] * steps_per_epoch,
            "joint": count[Stage.JOINT] * steps_per_epoch,
            "last_layer": count[Stage.LAST_LAYER] * steps_per_epoch * passes,
            "pushes": count[Stage.PUSH],
        }

    def stage_of_epoch(self, epoch: int) -> Stage:
        """``Stage.WARMUP`` for the first ``warmup_epochs`` epochs, else ``Stage.JOINT``."""
        return Stage.WARMUP if epoch < self.warmup_epochs else Stage.JOINT

    def push_epochs(self) -> list[int]:
        """The epochs after which a push (and the last-layer passes) happens."""
        out = [e for e in range(self.epochs) if e >= self.push_start and e % self.push_every == 0]
        if self.final_push and (not out or out[-1] != self.epochs - 1):
            out.append(self.epochs - 1)
        return out

    def lr_drop_epochs(self) -> list[int]:
        """The epochs from which the joint learning rates are ``lr_gamma`` times lower
        (``fit`` steps its ``StepLR`` after every joint epoch): ``warmup_epochs + k *
        lr_step_size`` below ``epochs``. As ``milestones`` of ``MultiStepLR`` they give
        another network the same learning-rate schedule, epoch for epoch."""
        w, step = self.warmup_epochs, self.lr_step_size
        return list(range(w + step, self.epochs, step))

    def steps(self) -> list[Step]:
        """The whole run as a flat list of :class:`Step` (what ``fit`` executes, in order)."""
        pushes = set(self.push_epochs())
        out: list[Step] = []
        for e in range(self.epochs):
            out.append(Step(e, self.stage_of_epoch(e)))
            if e in pushes:
                out.append(Step(e, Stage.PUSH))
                passes = self.last_layer_passes
                if self.last_layer_solver in ONE_STEP_SOLVERS:
                    passes = min(passes, 1)
                out.extend(Step(e, Stage.LAST_LAYER, i) for i in range(passes))
        return out
