"""The per-class protocol split over processes: which classes a rank profiles, and the merge.

:func:`interp_lib.studies.class_profiles` profiles each class on its own (a class's images,
subsamples and numbers do not depend on the other classes: ``choose="random"`` draws with
``seed + label``), so the classes can be shared out among ``torchrun`` ranks and the
per-class records put back together: the result is the one-process result. Under
``torchrun -m interp_lib.profile`` each rank profiles :func:`shard_classes` of the classes
still to do and writes their files; rank 0 merges every rank's records with those finished
before (:func:`merge_class_records`) into :meth:`ClassProfiles.from_records
<interp_lib.studies.ClassProfiles.from_records>`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .._validation import check_int

__all__ = ["merge_class_records", "shard_classes"]

C = TypeVar("C", bound=Hashable)


def shard_classes(classes: Iterable[C], rank: int, world_size: int) -> list[C]:
    """The classes rank ``rank`` of ``world_size`` profiles: a round-robin over the sorted
    class list, ``sorted(classes)[rank::world_size]``.

    The same on every rank whatever order ``classes`` come in; every class goes to
    exactly one rank; the ranks' numbers of classes differ by at most one (a rank gets
    none when there are fewer classes than ranks).

    Parameters
    ----------
    classes : iterable of str or int
        Distinct class names (or labels), all of one type.
    rank, world_size : int
        ``0 <= rank < world_size``.

    Raises
    ------
    ValueError
        For a rank out of range, or a class listed twice.
    TypeError
        For classes that cannot be sorted together (names mixed with labels).

    Examples
    --------
    >>> shard_classes(["dog", "ant", "cat", "bee", "eel"], 1, 2)
    ['bee', 'dog']
    """
    world_size = check_int(world_size, "world_size", minimum=1)
    rank = check_int(rank, "rank", minimum=0, maximum=world_size - 1)
    listed = list(classes)
    if len(set(listed)) != len(listed):
        twice = sorted({c for c in listed if listed.count(c) > 1}, key=str)
        raise ValueError(f"classes must be distinct; listed more than once: {twice}.")
    try:
        ordered = sorted(listed)
    except TypeError:
        raise TypeError(
            "classes must be all names or all labels to be shared out in sorted order, got "
            f"{sorted({type(c).__name__ for c in listed})}."
        ) from None
    return ordered[rank::world_size]


def merge_class_records(
    parts: Iterable[Iterable[Mapping[str, Any]]], classes: Sequence[C]
) -> list[dict[str, Any]]:
    """Every class's record, in the order of ``classes``, from the ranks' parts.

    Parameters
    ----------
    parts : iterable of iterables of dict
        The per-class records (:meth:`ClassProfiles.to_records
        <interp_lib.studies.ClassProfiles.to_records>`, the command's class files), e.g.
        one part per rank and one of the classes finished before.
    classes : sequence
        The classes of the run, in the order of the result.

    Returns
    -------
    list of dict
        ``[record of classes[0], record of classes[1], ...]``, ready for
        :meth:`ClassProfiles.from_records <interp_lib.studies.ClassProfiles.from_records>`.

    Raises
    ------
    ValueError
        If a class of ``classes`` has no record, if two records of one class differ (two
        ranks profiled it), or if a record's class is not among ``classes``.
    """
    by_class: dict[Any, dict[str, Any]] = {}
    wanted = set(classes)
    for part in parts:
        for record in part:
            name = record["class"]
            if name not in wanted:
                raise ValueError(
                    f"a record of class {name!r}, which is not among the run's classes."
                )
            if name in by_class and by_class[name] != dict(record):
                raise ValueError(f"two different records of class {name!r}.")
            by_class[name] = dict(record)
    missing = [c for c in classes if c not in by_class]
    if missing:
        raise ValueError(f"no record of classes {missing}.")
    return [by_class[c] for c in classes]
