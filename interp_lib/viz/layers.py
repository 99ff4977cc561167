"""Explore a network layer by layer: its ID on the profile and its PCA spectrum."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from .._plumbing import require

if TYPE_CHECKING:  # pragma: no cover
    from ..profile import LayerProfile

__all__ = ["layer_explorer", "layer_figure"]


def layer_figure(
    profile: LayerProfile,
    activations: Mapping[str, torch.Tensor],
    layer: str,
    *,
    variance: float = 0.9,
):
    """Two panels for one layer: the ID profile with the layer marked, and its spectrum.

    Parameters
    ----------
    profile : LayerProfile
    activations : dict of str to torch.Tensor, shape (n_samples, features)
        The representations behind ``profile`` (from
        :func:`interp_lib.profile.collect_activations`).
    layer : str
        One of ``profile.layers``.
    variance : float, default 0.9
        Threshold of the PC-ID marked on the spectrum.
    """
    plt = require("matplotlib.pyplot", "interp_lib.viz.layer_figure")

    from ..id import pca_dim_from_spectrum, pca_spectrum
    from .id import plot_spectrum
    from .profile import plot_profile

    if layer not in profile.layers:
        raise ValueError(f"layer {layer!r} is not in the profile; choose one of {profile.layers}.")
    i = profile.layers.index(layer)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    plot_profile(profile, ax=a)
    a.plot(
        profile.relative_depth[i], profile.dimensions[i], "o", ms=14, mfc="none", mec="C3", mew=2
    )
    ratios = pca_spectrum(activations[layer], standardize=True)
    plot_spectrum(ratios, b, variance=variance)
    pcid = pca_dim_from_spectrum(ratios, variance)
    b.set_title(
        f"{layer}: {profile.n_features[i]} units, TwoNN {profile.dimensions[i]:.1f}, PC-ID {pcid}",
        fontsize=10,
    )
    return fig


def layer_explorer(
    profile: LayerProfile, activations: Mapping[str, torch.Tensor], *, variance: float = 0.9
):
    """A slider over the layers of ``profile`` (precomputed: works in static HTML)."""
    from .widgets import precomputed_explorer

    return precomputed_explorer(
        lambda layer: layer_figure(profile, activations, layer, variance=variance),
        slider=("layer", list(profile.layers)),
    )
