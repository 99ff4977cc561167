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

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .per_class import ClassProfiles
from .stats import PairedInterval, paired_interval

__all__ = ["Hunchback", "hunchback", "hunchback_summary_table", "load_hunchback_summary"]


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


#: The tracked summary of ``bench/id_hunchback.py`` in a source checkout.
SUMMARY_PATH = Path(__file__).resolve().parents[2] / "bench" / "summaries" / "id_hunchback.json"


def load_hunchback_summary(path: str | os.PathLike | None = None) -> dict:
    """The multi-seed hunchback study written by ``bench/id_hunchback.py``.

    Parameters
    ----------
    path : path-like, optional
        The summary JSON; default ``bench/summaries/id_hunchback.json`` of the source
        checkout this package is installed from.

    Returns
    -------
    dict
        With ``settings`` and ``archs``: per architecture ``seeds``, ``test_accuracy_mean``
        and ``_sd``, and per estimator (``twonn``, ``gride``) the input, peak and output
        IDs, ``peak_layer``, ``peak_depth``, the untrained twin's values, and the intervals
        ``rise``, ``rise_over_seeds``, ``untrained_change`` and ``trained_minus_untrained``
        (each ``{"mean", "low", "high", "n"}``).
    """
    path = Path(path) if path is not None else SUMMARY_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"no hunchback summary at {path}; it is tracked in the source repository "
            "(bench/summaries/id_hunchback.json): clone it, or run "
            "`python bench/id_hunchback.py` to measure it."
        )
    summary = json.loads(path.read_text())
    if "archs" not in summary:
        raise ValueError(f"{path} holds no 'archs'; write it with bench/id_hunchback.py.")
    return summary


def _interval_text(iv: dict) -> str:
    return f"{iv['mean']:+.1f} [{iv['low']:+.1f}, {iv['high']:+.1f}]"


def hunchback_summary_table(summary: dict, what: str = "twonn"):
    """One row per architecture of :func:`load_hunchback_summary`'s study.

    Parameters
    ----------
    summary : dict
    what : {"twonn", "gride"}
        TwoNN, or Gride at the study's larger scale.

    Returns
    -------
    pandas.DataFrame
        Indexed by architecture: seeds, test accuracy (mean ± sd), input, peak layer,
        relative depth, peak and output ID (trained), the rise with its 95 % interval
        over seeds x classes and over the seeds alone, and the untrained twin's change.
    """
    from .._plumbing import require

    pd = require("pandas", "viz")
    if what not in ("twonn", "gride"):
        raise ValueError(f"what must be 'twonn' or 'gride'; got {what!r}.")
    rows = []
    for arch, e in summary["archs"].items():
        s = e[what]
        sd = e.get("test_accuracy_sd")
        rows.append(
            {
                "network": arch,
                "seeds": len(e["seeds"]),
                "test accuracy": f"{e['test_accuracy_mean']:.2f}"
                + (f" ± {sd:.2f}" if sd is not None else ""),
                "input": s["input"],
                "peak layer": s["peak_layer"],
                "depth": s["peak_depth"],
                "peak": s["peak"],
                "output": s["output"],
                f"rise (n = {s['rise']['n']})": _interval_text(s["rise"]),
                f"rise over seeds (n = {s['rise_over_seeds']['n']})": _interval_text(
                    s["rise_over_seeds"]
                ),
                "untrained twin's change": _interval_text(s["untrained_change"]),
            }
        )
    return pd.DataFrame(rows).set_index("network")
