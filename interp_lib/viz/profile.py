"""Figures of :mod:`interp_lib.profile`: intrinsic dimension against relative depth.

PCA spectra of collected activations are drawn with :func:`interp_lib.viz.plot_spectrum`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..profile import LayerProfile

__all__ = ["plot_profile"]


def _axes(ax):
    from .._plumbing import require

    plt = require("matplotlib.pyplot", "interp_lib.viz.plot_profile")

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
        return fig, ax
    return ax.figure, ax


#: What :func:`plot_profile` reads from a profile. Checked by attribute (duck typing), so
#: that drawing a profile does not import :mod:`interp_lib.profile` back (``LayerProfile.plot``
#: imports this module).
_PROFILE_FIELDS = ("layers", "dimensions", "errors", "relative_depth", "estimator")


def _is_profile(value: Any) -> bool:
    return all(hasattr(value, f) for f in _PROFILE_FIELDS)


def _as_profiles(profiles: Any, labels: Sequence[str] | None) -> list[tuple[str | None, Any]]:
    if _is_profile(profiles):
        items = [(getattr(profiles, "label", None), profiles)]
    elif isinstance(profiles, Mapping):
        items = list(profiles.items())
    else:
        try:
            items = [(getattr(p, "label", None), p) for p in profiles]
        except TypeError:
            items = []
    if not items or not all(_is_profile(p) for _, p in items):
        raise TypeError(
            "profiles must be a LayerProfile, a sequence of them or a {label: profile} dict."
        )
    if labels is not None:
        if len(labels) != len(items):
            raise ValueError(f"got {len(labels)} labels for {len(items)} profiles.")
        items = [(lab, p) for lab, (_, p) in zip(labels, items, strict=True)]
    return items


def plot_profile(
    profiles: LayerProfile | Sequence[LayerProfile] | Mapping[str, LayerProfile],
    *,
    ax=None,
    labels: Sequence[str] | None = None,
    annotate: bool = False,
    title: str | None = None,
):
    """Intrinsic dimension against relative depth, with error bars.

    Parameters
    ----------
    profiles : LayerProfile, sequence of LayerProfile, or dict label -> LayerProfile
        Several profiles share the axis (e.g. trained vs untrained).
    ax : matplotlib Axes, optional
        Drawn into; a new figure otherwise.
    labels : sequence of str, optional
        Legend entries (default: the dict keys or each profile's ``label``).
    annotate : bool, default False
        Write each layer's name beside its point.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    items = _as_profiles(profiles, labels)
    fig, ax = _axes(ax)
    for label, prof in items:
        errors = [0.0 if e != e else e for e in prof.errors]  # NaN -> no bar
        ax.errorbar(
            prof.relative_depth,
            prof.dimensions,
            yerr=errors,
            marker="o",
            capsize=3,
            label=label,
        )
        if annotate:
            for x, y, name in zip(prof.relative_depth, prof.dimensions, prof.layers, strict=True):
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("relative depth")
    ax.set_ylabel(f"intrinsic dimension ({items[0][1].estimator})")
    ax.set_xlim(-0.05, 1.05)
    if any(label for label, _ in items):
        ax.legend()
    if title:
        ax.set_title(title)
    return fig
