"""A command under ``torchrun``: the process group, collective error handling, gathering.

``torchrun --nproc_per_node=N -m interp_lib.profile ...`` starts ``N`` copies of a
command. :func:`start` joins them in a process group (``gloo`` on the CPU, ``nccl`` on
CUDA) when ``torchrun`` set ``WORLD_SIZE > 1``, and returns a trivial :class:`Ranks`
otherwise, so one code path serves both. The steps of a command that may fail on some
ranks only (a file rank 0 alone reads, a class one rank profiles) run through
:func:`together`: every rank learns whether any rank failed, and then **every rank
stops**, none waits forever in a later collective. Rank 0 reports the failure as one
line (``error: rank 1: ...``, :mod:`interp_lib.cli.errors`); the other ranks stop
quietly with :class:`RankStopped` (a bug keeps its traceback on the rank where it
happened). Errors raised before the group exists (a bad flag) are the same on every rank;
:func:`quiet_rank` tells the command to print them on rank 0 only.

Collectives wait for the slowest rank: the group's timeout is :data:`TIMEOUT` (a rank that
finished its share waits for the others' at the final gather).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .errors import EXIT_USAGE, USER_ERRORS

__all__ = ["TIMEOUT", "RankError", "RankStopped", "Ranks", "gather", "quiet_rank", "start",
           "stop", "together"]  # fmt: skip

T = TypeVar("T")

#: How long a collective waits for the slowest rank.
TIMEOUT = datetime.timedelta(hours=24)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: rank ``rank`` of ``world_size`` (``0`` of ``1`` alone).

    ``created``: :func:`start` created the process group (and :func:`stop` closes it).
    """

    rank: int = 0
    world_size: int = 1
    created: bool = False

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the shared outputs and prints."""
        return self.rank == 0


class RankStopped(Exception):
    """Another rank failed, so this one stops; rank 0 reports the failure.

    ``status`` is the exit status the command returns (2 after a user error).
    """

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class RankError(ValueError):
    """On rank 0: another rank's failure, reported as one line (``rank r: message``)."""


def quiet_rank() -> bool:
    """Whether this process is a rank other than 0 of a ``torchrun`` launch (from the
    ``RANK`` variable): it leaves errors raised before :func:`start` to rank 0, which
    meets the same ones."""
    return int(os.environ.get("RANK", "0")) > 0 and int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device, *, timeout: datetime.timedelta = TIMEOUT) -> Ranks:
    """Join the process group ``torchrun`` describes, or run alone.

    Uses the default process group if there is one; starts one (``nccl`` on CUDA, else
    ``gloo``) when ``WORLD_SIZE > 1``; else returns ``Ranks()`` (rank 0 of 1). On CUDA
    the current device becomes ``device`` (``nccl`` collectives use it).
    """
    if not dist.is_available():
        return Ranks()
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Ranks()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
        created = True
    return Ranks(dist.get_rank(), dist.get_world_size(), created)


def stop(ranks: Ranks) -> None:
    """Close the process group if :func:`start` created it."""
    if ranks.created and dist.is_initialized():
        dist.destroy_process_group()


def gather(obj: Any, ranks: Ranks) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` alone); ``obj``
    is pickled."""
    if not ranks.enabled:
        return [obj]
    out: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(out, obj)
    return out


def together(ranks: Ranks, step: Callable[[], T]) -> T:
    """Run ``step()`` on this rank, then stop every rank if it failed on any.

    Every rank must call it at the same point (it is a collective: it also serves as a
    barrier). Alone it is ``step()``.

    Returns
    -------
    The value of ``step()`` when it succeeded on every rank.

    Raises
    ------
    Exception
        This rank's own exception when it failed here and is rank 0, or when it is a bug
        (not one of :data:`interp_lib.cli.errors.USER_ERRORS`: its traceback is shown
        where it happened).
    RankError
        On rank 0, when only other ranks failed: ``"rank r: message"`` of the first one.
    RankStopped
        On the other ranks, whenever any rank failed.
    """
    if not ranks.enabled:
        return step()
    result: Any = None
    failure: Exception | None = None
    try:
        result = step()
    except Exception as exc:  # reported below, on every rank
        failure = exc
    report = None
    if failure is not None:
        user = isinstance(failure, USER_ERRORS)
        text = " ".join((str(failure) or type(failure).__name__).split())
        report = (user, text if user else f"{type(failure).__name__}: {text}")
    reports = gather(report, ranks)
    failed = [(r, rep) for r, rep in enumerate(reports) if rep is not None]
    if not failed:
        return result
    first, (user, text) = failed[0]
    if failure is not None and (ranks.is_main or not isinstance(failure, USER_ERRORS)):
        raise failure
    if ranks.is_main:
        what = "" if user else " failed with"
        raise RankError(f"rank {first}{what}: {text}")
    raise RankStopped(f"rank {first} failed", EXIT_USAGE if user else 1)
