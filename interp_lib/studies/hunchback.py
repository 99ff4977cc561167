"""The hunchback of a profile, with paired intervals: peak, rise over the input, twin.

Ansuini et al. (2019) read the hunchback off the mean profile of single-class sets: the
ID rises from the input to a peak in the early layers, then falls. :func:`hunchback`
puts numbers with error bars on that reading for a trained network and its untrained
twin measured on the same images (one or several training seeds): the peak layer of the
trained mean profile, its relative depth, and three paired differences over the
(seed, class) pairs -- the rise (ID at the peak minus ID at the input, trained), the
untrained twin's change at the same layer, and trained minus untrained at the peak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .per_class import ClassProfiles
from .stats import PairedInterval, paired_interval

__all__ = ["Hunchback", "hunchback"]


@dataclass(frozen=True)
class Hunchback:
    """Peak and rise of a trained profile against its untrained twin.

    Attributes
    ----------
    layers : tuple of str
    relative_depth : tuple of float
    trained, untrained : torch.Tensor, shape (n_layers,)
        Mean profiles over all (seed, class) pairs.
    peak : int
        Index of the highest layer of the trained mean profile after the input.
    rise : PairedInterval
        Trained ID at the peak minus at the input, over the pairs.
    rise_over_seeds : PairedInterval
        The same over the seeds only (class means per seed; NaN interval with one seed).
    untrained_change : PairedInterval
        Untrained ID at the peak layer minus at the input.
    trained_minus_untrained : PairedInterval
        Trained minus untrained at the peak layer.
    n_seeds, n_classes : int
    """

    layers: tuple[str, ...]
    relative_depth: tuple[float, ...]
    trained: torch.Tensor
    untrained: torch.Tensor
    peak: int
    rise: PairedInterval
    rise_over_seeds: PairedInterval
    untrained_change: PairedInterval
    trained_minus_untrained: PairedInterval
    n_seeds: int
    n_classes: int

    @property
    def peak_layer(self) -> str:
        """Name of the peak layer."""
        return self.layers[self.peak]

    @property
    def peak_depth(self) -> float:
        """Relative depth of the peak layer."""
        return self.relative_depth[self.peak]


def _stack(profiles, rank: int | None, name: str) -> tuple[torch.Tensor, ClassProfiles]:
    """(n_seeds, n_classes, n_layers) of TwoNN (or Gride at ``rank``)."""
    runs = [profiles] if isinstance(profiles, ClassProfiles) else list(profiles)
    if not runs or not all(isinstance(p, ClassProfiles) for p in runs):
        raise TypeError(f"{name} must be a ClassProfiles or a non-empty sequence of them.")
    first = runs[0]
    for p in runs[1:]:
        if p.layers != first.layers or p.classes != first.classes:
            raise ValueError(f"the profiles in {name} must share their layers and classes.")
    values = [p.twonn if rank is None else p.at_rank(rank) for p in runs]
    return torch.stack(values).to(torch.float64), first


def hunchback(
    trained: ClassProfiles | Sequence[ClassProfiles],
    untrained: ClassProfiles | Sequence[ClassProfiles],
    *,
    rank: int | None = None,
    confidence: float = 0.95,
) -> Hunchback:
    """Peak, rise and twin comparison of single-class profiles, with paired intervals.

    Parameters
    ----------
    trained, untrained : ClassProfiles or sequence of ClassProfiles
        One per training seed, in the same order (the untrained twin of each trained
        network), all on the same images, layers and classes.
    rank : int, optional
        Use the Gride ID at neighbour rank ``rank`` (ranks ``(rank / 2, rank)``) instead
        of TwoNN.
    confidence : float, default 0.95

    Returns
    -------
    Hunchback
    """
    t, first = _stack(trained, rank, "trained")
    u, other = _stack(untrained, rank, "untrained")
    if t.shape != u.shape or other.layers != first.layers:
        raise ValueError(
            "trained and untrained must pair up (same seeds, classes and layers), got "
            f"shapes {tuple(t.shape)} and {tuple(u.shape)}."
        )
    if t.shape[-1] < 2:
        raise ValueError("need the input and at least one layer.")
    tf, uf = t.flatten(0, 1), u.flatten(0, 1)  # (pairs, n_layers)
    peak = 1 + int(tf.nanmean(0)[1:].argmax())
    kw = {"confidence": confidence}
    return Hunchback(
        layers=first.layers,
        relative_depth=first.relative_depth,
        trained=tf.nanmean(0),
        untrained=uf.nanmean(0),
        peak=peak,
        rise=paired_interval(tf[:, peak], tf[:, 0], **kw),
        rise_over_seeds=paired_interval(t[:, :, peak].mean(1), t[:, :, 0].mean(1), **kw),
        untrained_change=paired_interval(uf[:, peak], uf[:, 0], **kw),
        trained_minus_untrained=paired_interval(tf[:, peak], uf[:, peak], **kw),
        n_seeds=t.shape[0],
        n_classes=t.shape[1],
    )
