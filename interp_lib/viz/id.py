"""Figures for intrinsic-dimension estimates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..id import GrideResult, ScalingResult, TwoNNResult

__all__ = ["plot_scaling", "plot_spectrum", "plot_twonn_fit"]


def _axes(ax: Axes | None, figsize=(4.5, 3.5)) -> Axes:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_twonn_fit(result: TwoNNResult, ax: Axes | None = None, *, label: str | None = None) -> Axes:
    """The TwoNN fit: ``-log(1 - F(mu))`` against ``log mu`` and the line of slope ``d``.

    Points used by the fit are drawn solid; the discarded tail is omitted. On data that
    follows the Pareto model the points lie on the line through the origin.
    """
    ax = _axes(ax)
    x, y = result.fit_points()
    ax.scatter(x.numpy(), y.numpy(), s=6, alpha=0.5, label=label or "points used by the fit")
    xs = torch.linspace(0, float(x.max()), 50)
    ax.plot(xs.numpy(), (result.dimension * xs).numpy(), color="C3", lw=2,
            label=f"slope d = {result.dimension:.2f}")
    ax.set_xlabel(r"$\log \mu$")
    ax.set_ylabel(r"$-\log(1 - F(\mu))$")
    ax.legend(frameon=False)
    return ax


def plot_scaling(result: ScalingResult | GrideResult, ax: Axes | None = None, *,
                 true_dimension: float | None = None, label: str | None = None) -> Axes:
    """ID against the length scale probed (block analysis, decimation or Gride)."""
    ax = _axes(ax)
    ax.errorbar(result.scales.numpy(), result.dimensions.numpy(), yerr=result.errors.numpy(),
                marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("scale (mean distance to the neighbour used)")
    ax.set_ylabel("intrinsic dimension")
    if true_dimension is not None:
        ax.axhline(true_dimension, color="gray", ls="--", lw=1, label="true ID")
    if label or true_dimension is not None:
        ax.legend(frameon=False)
    return ax


def plot_spectrum(ratios: torch.Tensor, ax: Axes | None = None, *, variance: float = 0.9,
                  label: str | None = None) -> Axes:
    """Cumulative explained variance against the number of components, with PC-ID marked."""
    ax = _axes(ax)
    cum = torch.cumsum(torch.as_tensor(ratios, dtype=torch.float64), 0).numpy()
    k = range(1, len(cum) + 1)
    line = ax.plot(k, cum, label=label)[0]
    pcid = int((cum < variance - 1e-12).sum()) + 1
    ax.axvline(pcid, color=line.get_color(), ls=":", lw=1)
    ax.axhline(variance, color="gray", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("number of principal components")
    ax.set_ylabel("cumulative explained variance")
    if label:
        ax.legend(frameon=False)
    return ax
