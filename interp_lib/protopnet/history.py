"""What :func:`interp_lib.protopnet.fit` logs: one :class:`EpochRecord` per step."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .._plumbing import require
from .stages import Stage

__all__ = ["EpochRecord", "History"]


@dataclass
class EpochRecord:
    """One step of a run: a training epoch, a push, or a last-layer pass.

    Attributes
    ----------
    step : int
        Position in ``schedule.steps()``.
    epoch : int
        The epoch this step belongs to (pushes and last-layer passes follow their epoch).
    stage : Stage
    pass_index : int
        Index of a last-layer pass (0 otherwise).
    lr : dict[str, float]
        Learning rate of each trained parameter group (empty for a push).
    train : dict[str, float]
        Means over the training samples of every loss term (``loss``, ``ce``, ``clst``,
        ``sep``, ``avg_sep``, ``l1``, ... as returned by ``protopnet_loss``) and
        ``accuracy``; for a convex last-layer solve, ``ce``, ``l1``, ``loss`` (the
        objective), ``accuracy`` on the push images and the solver's ``iterations`` and
        ``residual``; for a push, ``push_distance_mean`` / ``push_distance_max`` (how far
        the prototypes moved) and ``push_duplicates`` (prototypes sharing a source patch).
    val : dict[str, float] or None
        The same terms and ``accuracy`` on the validation split, if there is one.
    seconds : float
        Wall time of the step (training + validation).
    """

    step: int
    epoch: int
    stage: Stage
    pass_index: int = 0
    lr: dict[str, float] = field(default_factory=dict)
    train: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] | None = None
    seconds: float = 0.0

    def flat(self) -> dict[str, Any]:
        """A flat row: ``step, epoch, stage, pass_index, seconds, lr_*, train_*, val_*``."""
        row: dict[str, Any] = {
            "step": self.step,
            "epoch": self.epoch,
            "stage": self.stage.value,
            "pass_index": self.pass_index,
            "seconds": self.seconds,
        }
        row.update({f"lr_{k}": v for k, v in self.lr.items()})
        row.update({f"train_{k}": v for k, v in self.train.items()})
        row.update({f"val_{k}": v for k, v in (self.val or {}).items()})
        return row

    def to_state(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["stage"] = self.stage.value
        return d

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> EpochRecord:
        return cls(**{**d, "stage": Stage(d["stage"])})


@dataclass
class History:
    """The log of a :func:`~interp_lib.protopnet.fit` run.

    Attributes
    ----------
    records : list[EpochRecord]
        One per step, in order.
    best_step : int or None
        Step whose state had the best validation accuracy among the candidates of
        ``Schedule.select`` (None without a validation split). ``fit`` leaves the model in
        that state unless ``restore_best=False``.
    best_val_accuracy : float or None
    """

    records: list[EpochRecord] = field(default_factory=list)
    best_step: int | None = None
    best_val_accuracy: float | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self.records)

    def __getitem__(self, i: int) -> EpochRecord:
        return self.records[i]

    @property
    def best(self) -> EpochRecord | None:
        """The record of the selected state, if any."""
        if self.best_step is None:
            return None
        return next(r for r in self.records if r.step == self.best_step)

    def rows(self) -> list[dict[str, Any]]:
        """Every record as a flat dict (see :meth:`EpochRecord.flat`)."""
        return [r.flat() for r in self.records]

    def to_pandas(self):
        """The history as a ``pandas.DataFrame``, one row per step (see :meth:`rows`).

        Raises
        ------
        ModuleNotFoundError
            Without pandas, naming ``pip install "interp_lib[viz]"`` (or use :meth:`rows`).
        """
        pd = require("pandas", "History.to_pandas")
        return pd.DataFrame(self.rows())

    def to_state(self) -> dict[str, Any]:
        return {
            "records": [r.to_state() for r in self.records],
            "best_step": self.best_step,
            "best_val_accuracy": self.best_val_accuracy,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> History:
        return cls(
            [EpochRecord.from_state(r) for r in d["records"]],
            d["best_step"],
            d["best_val_accuracy"],
        )
