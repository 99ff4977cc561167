"""Figures for intrinsic-dimension estimates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .._plumbing import require

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..id import GrideResult, ScalingResult, TwoNNResult

__all__ = [
    "format_estimate",
    "plot_mu_histogram",
    "plot_scaling",
    "plot_spectrum",
    "plot_twonn_fit",
    "twonn_explorer",
    "twonn_figure",
]


def _axes(ax: Axes | None, figsize=(4.5, 3.5)) -> Axes:
    plt = require("matplotlib.pyplot", "interp_lib.viz")

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_twonn_fit(
    result: TwoNNResult, ax: Axes | None = None, *, label: str | None = None
) -> Axes:
    """The TwoNN fit: ``-log(1 - F(mu))`` against ``log mu`` and the line of slope ``d``.

    Points used by the fit are drawn solid; the discarded tail is omitted. On data that
    follows the Pareto model the points lie on the line through the origin.
    """
    ax = _axes(ax)
    x, y = result.fit_points()
    ax.scatter(x.numpy(), y.numpy(), s=6, alpha=0.5, label=label or "points used by the fit")
    xs = torch.linspace(0, float(x.max()), 50)
    ax.plot(
        xs.numpy(),
        (result.dimension * xs).numpy(),
        color="C3",
        lw=2,
        label=f"slope d = {result.dimension:.2f}",
    )
    ax.set_xlabel(r"$\log \mu$")
    ax.set_ylabel(r"$-\log(1 - F(\mu))$")
    ax.legend(frameon=False)
    return ax


def plot_scaling(
    result: ScalingResult | GrideResult,
    ax: Axes | None = None,
    *,
    true_dimension: float | None = None,
    label: str | None = None,
) -> Axes:
    """ID against the length scale probed (block analysis, decimation or Gride)."""
    ax = _axes(ax)
    ax.errorbar(
        result.scales.numpy(),
        result.dimensions.numpy(),
        yerr=result.errors.numpy(),
        marker="o",
        capsize=3,
        label=label,
    )
    ax.set_xscale("log")
    ax.set_xlabel("scale (mean distance to the neighbours used)")
    ax.set_ylabel("intrinsic dimension")
    if true_dimension is not None:
        ax.axhline(true_dimension, color="gray", ls="--", lw=1, label="true ID")
    if label or true_dimension is not None:
        ax.legend(frameon=False)
    return ax


def plot_spectrum(
    ratios: torch.Tensor, ax: Axes | None = None, *, variance: float = 0.9, label: str | None = None
) -> Axes:
    """Cumulative explained variance against the number of components, with PC-ID marked."""
    from ..id import pca_dim_from_spectrum

    pcid = pca_dim_from_spectrum(ratios, variance)
    ax = _axes(ax)
    cum = torch.cumsum(torch.as_tensor(ratios, dtype=torch.float64), 0).numpy()
    k = range(1, len(cum) + 1)
    line = ax.plot(k, cum, label=label)[0]
    ax.axvline(pcid, color=line.get_color(), ls=":", lw=1)
    ax.axhline(variance, color="gray", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("number of principal components")
    ax.set_ylabel("cumulative explained variance")
    if label:
        ax.legend(frameon=False)
    return ax


def twonn_figure(
    manifold: str = "sphere", d: int = 2, n: int = 2000, noise: float = 0.0, seed: int = 0
):
    """Sample a manifold of known ID, run TwoNN and draw the fit, titled with the result."""
    plt = require("matplotlib.pyplot", "interp_lib.viz.twonn_figure")

    from ..datasets import make_manifold
    from ..id import twonn

    X = make_manifold(manifold, n, d, noise=noise, seed=seed)
    res = twonn(X)
    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    plot_twonn_fit(res, ax)
    ax.set_title(
        f"{manifold}, true ID {d}, N={n}, noise {noise:g}: TwoNN {res.dimension:.2f}", fontsize=10
    )
    return fig


def twonn_explorer(
    *,
    live: bool = False,
    n: int = 2000,
    noise: float = 0.0,
    manifolds: tuple[str, ...] = ("hypercube", "gaussian", "sphere", "curved"),
    dims: tuple[int, ...] = (1, 2, 3, 5, 10, 20),
):
    """Pick a manifold and its dimension, see the TwoNN fit and estimate.

    ``live=False`` (default) precomputes every (manifold, dimension) pair at the given
    ``n`` and ``noise`` so that the widget works in the static book; ``live=True``
    recomputes on every change and also lets the reader set ``N`` and the noise.
    """
    from .widgets import live_explorer, precomputed_explorer

    if not live:
        return precomputed_explorer(
            lambda manifold, d: twonn_figure(manifold, d, n, noise),
            menu=("manifold", manifolds),
            slider=("true ID", dims),
        )
    W = require("ipywidgets", "interp_lib.viz.twonn_explorer")

    controls = {
        "manifold": W.Dropdown(options=list(manifolds), value=manifolds[0]),
        "d": W.IntSlider(value=2, min=1, max=30, description="true ID"),
        "n": W.IntSlider(
            value=n, min=200, max=10000, step=200, description="N", continuous_update=False
        ),
        "noise": W.FloatSlider(
            value=noise, min=0, max=0.5, step=0.01, description="noise", continuous_update=False
        ),
    }
    return live_explorer(twonn_figure, controls)


def plot_mu_histogram(result: TwoNNResult, ax: Axes | None = None, *, bins: int = 60) -> Axes:
    """Histogram of the ratios ``mu = r2 / r1`` against the Pareto density ``d mu^-(d+1)``."""
    ax = _axes(ax)
    mu = result.mu.numpy()
    hi = float(torch.quantile(result.mu, 0.98))
    ax.hist(mu[mu <= hi], bins=bins, density=True, alpha=0.6, label=r"observed $\mu$")
    xs = torch.linspace(1, hi, 200, dtype=torch.float64)
    d = result.dimension
    # density of mu restricted to mu <= hi, renormalised like the histogram
    dens = d * xs ** (-(d + 1)) / (1 - hi ** (-d))
    ax.plot(xs.numpy(), dens.numpy(), color="C3", lw=2, label=rf"Pareto, $d$ = {d:.2f}")
    ax.set_xlabel(r"$\mu = r_2 / r_1$")
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    return ax


def format_estimate(value: float, error: float, *, digits: int = 1) -> str:
    """``"value ± error"`` with the error to ``digits`` significant digits (two when the
    first is a 1) and the value to the same decimal place.

    ``format_estimate(5.4012, 0.0042)`` is ``"5.401 ± 0.004"`` (never ``"5.4 ± 0.0"``);
    ``format_estimate(31.27, 2.6)`` is ``"31 ± 3"``. A zero or non-finite error gives
    the value to three significant digits and the error as it is.
    """
    import math

    value, error = float(value), float(error)
    if not math.isfinite(error) or error <= 0:
        return f"{value:.3g} ± {error:g}"
    exponent = math.floor(math.log10(error))
    first = int(error / 10.0**exponent + 1e-9)
    decimals = max(0, -exponent + digits - 1 + (first == 1))
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"
