r"""TwoNN: the intrinsic dimension from the ratio of the two nearest-neighbour distances.

Facco et al. (2017). For every point, :math:`\mu = r_2 / r_1`. On a locally uniform
:math:`d`-dimensional manifold :math:`\mu` follows a Pareto law,
:math:`F(\mu) = 1 - \mu^{-d}`, so :math:`-\log(1 - F(\mu)) = d \log \mu`.

The pure estimators (:func:`twonn_ls`, :func:`twonn_mle`, :func:`twonn_posterior`) take
the ratios ``mu``; :func:`twonn` goes from points to a :class:`TwoNNResult`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

from .._validation import (
    ArrayLike,
    as_points,
    check_choice,
    check_fraction,
    check_int,
    check_neighbors,
)
from ._ratios import as_ratios, check_prior, ratio_table
from .neighbors import Neighbors, _single_threaded, _target_device, check_options, knn
from .resample import subsample_estimates

__all__ = [
    "TwoNNResult",
    "twonn",
    "twonn_ls",
    "twonn_mle",
    "twonn_posterior",
]

METHODS = ("ls", "mle", "bayes")


def _standard_error(d: float, n: int) -> float:
    r""":math:`d / \sqrt{N - 2}`: the exact standard deviation of the MLE under the Pareto law."""
    return d / math.sqrt(max(n - 2, 1))


def _fit_points(mu: torch.Tensor, fraction: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The points ``(log mu_(i), -log(1 - i/N))`` that the LS fit uses, float64."""
    mu = as_ratios(mu)
    fraction = check_fraction(fraction, "fraction")
    n = mu.numel()
    n_fit = min(math.floor(fraction * n), n - 1)
    if n_fit < 1:
        raise ValueError(f"fraction={fraction} keeps no points out of {n}.")
    mu_sorted = torch.sort(mu).values[:n_fit]
    f_emp = torch.arange(1, n_fit + 1, dtype=torch.float64) / n
    return torch.log(mu_sorted), -torch.log1p(-f_emp)


def twonn_ls(mu: ArrayLike, fraction: float = 0.9) -> tuple[float, float]:
    r"""Least-squares TwoNN fit through the origin (Facco et al., Ansuini et al.).

    Sort ``mu``, set :math:`F_i = i / N` for :math:`i = 1..N`, keep the
    :math:`\lfloor f N \rfloor` smallest ratios and fit :math:`y = d x` with
    :math:`x = \log \mu_{(i)}`, :math:`y = -\log(1 - F_i)`. The largest ratio has
    :math:`F = 1` and an infinite :math:`y`, so it is never used, even with
    ``fraction=1``. This is DADApy's ``compute_id_2NN`` (``algorithm="base"``).

    Parameters
    ----------
    mu : array-like or torch.Tensor, shape (N,)
        Ratios :math:`r_2 / r_1 \ge 1`.
    fraction : float in (0, 1]
        Share of the smallest ratios kept (the paper discards the 10 % heavy tail).

    Returns
    -------
    dimension, standard_error : float, float
        The slope, and :math:`d / \sqrt{N - 2}`, the analytic standard error of the
        Pareto model (that of :func:`twonn_mle`, taken as the fit's).
    """
    mu = as_ratios(mu)
    x, y = _fit_points(mu, fraction)
    d = float((x * y).sum() / (x * x).sum())
    if not math.isfinite(d) or d <= 0:
        raise ValueError(
            "the least-squares fit is not identifiable: every ratio kept by the fit "
            "equals 1. Pass more distinct points or a larger fraction."
        )
    return d, _standard_error(d, mu.numel())


def twonn_mle(mu: ArrayLike) -> tuple[float, float]:
    r"""Maximum-likelihood TwoNN: :math:`\hat d = (N - 1) / \sum_i \log \mu_i`.

    With :math:`N - 1` in the numerator (DADApy's convention, also used by
    :func:`interp_lib.id.gride_mle`) the estimate is unbiased under the Pareto model and
    its standard deviation is exactly :math:`d / \sqrt{N - 2}`.

    Parameters
    ----------
    mu : array-like or torch.Tensor, shape (N,)
        Ratios :math:`r_2 / r_1 \ge 1`.

    Returns
    -------
    dimension, standard_error : float, float
    """
    mu = as_ratios(mu)
    n = mu.numel()
    s = float(torch.log(mu).sum())
    if s <= 0:
        raise ValueError("all ratios mu equal 1; the dimension is not identifiable.")
    d = (n - 1) / s
    return d, _standard_error(d, n)


def twonn_posterior(
    mu: ArrayLike, prior: tuple[float, float] = (1e-3, 1e-3)
) -> tuple[float, float]:
    r"""Bayesian TwoNN: the Gamma posterior of :math:`d` under a Gamma(a, b) prior.

    The Pareto likelihood :math:`d^N e^{-d \sum \log \mu}` is conjugate to a Gamma prior
    of shape :math:`a` and rate :math:`b`, so the posterior is
    :math:`\mathrm{Gamma}(a + N, b + \sum \log \mu)`.

    Parameters
    ----------
    mu : array-like or torch.Tensor, shape (N,)
        Ratios :math:`r_2 / r_1 \ge 1`.
    prior : (float, float), default (1e-3, 1e-3)
        Shape and rate of the prior. The default is vague: the posterior mean is then
        :math:`\approx N / \sum \log \mu` at any dimension. DADApy's
        ``compute_id_2NN_wprior`` uses ``(2, 5)`` (prior mean 0.4), which pulls the
        estimate down by a factor of about :math:`1 / (1 + 5 d / N)`: 5 % at
        :math:`d = 20, N = 2000`; pass ``prior=(2, 5)`` to reproduce its numbers.

    Returns
    -------
    mean, std : float, float
        Posterior mean and standard deviation.
    """
    mu = as_ratios(mu)
    a, b = check_prior(prior)
    shape = a + mu.numel()
    rate = b + float(torch.log(mu).sum())
    return shape / rate, math.sqrt(shape) / rate


@dataclass(frozen=True)
class TwoNNResult:
    """The outcome of :func:`twonn`.

    Attributes
    ----------
    dimension : float
        The intrinsic-dimension estimate.
    error : float
        Standard deviation over ``n_resamples`` random subsamples when resampling was
        asked for (``error_kind="resample"``), else the analytic standard error
        :math:`d / \\sqrt{N - 2}` of the Pareto model (``error_kind="analytic"``; the
        posterior standard deviation for ``method="bayes"``).
    error_kind : str
    n_used : int
        Points left after dropping duplicates and ties (the ``N`` of the fit).
    n_dropped : int
        Points dropped because ``r1 == 0`` or ``r1 == r2``.
    mu : torch.Tensor, shape (n_used,), float64
        The ratios ``r2 / r1`` of the kept points, in input order.
    method : str
    fraction : float
    resamples : torch.Tensor or None, shape (n_resamples,)
        The estimate on each subsample.
    """

    dimension: float
    error: float
    error_kind: str
    n_used: int
    n_dropped: int
    mu: torch.Tensor = field(repr=False)
    method: str = "ls"
    fraction: float = 0.9
    resamples: torch.Tensor | None = field(default=None, repr=False)

    def __float__(self) -> float:
        return self.dimension

    def fit_points(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y) = (log mu_(i), -log(1 - F_i))`` of the LS fit, for plotting."""
        return _fit_points(self.mu, self.fraction)


def fit_ratios(
    mu: torch.Tensor, method: str, fraction: float, prior: tuple[float, float]
) -> tuple[float, float]:
    """``(dimension, error)`` of one of :data:`METHODS` on ratios ``mu``.

    Shared by :func:`twonn` and the scale analyses of :mod:`interp_lib.id.scaling`.
    """
    if method == "ls":
        return twonn_ls(mu, fraction)
    if method == "mle":
        return twonn_mle(mu)
    return twonn_posterior(mu, prior)


def _neighbor_distances(X: torch.Tensor, metric: str, chunk_size: int) -> torch.Tensor:
    """Distances to the two nearest other rows, (N, 2) float64 on the CPU."""
    return knn(X, 2, metric=metric, chunk_size=chunk_size).distances.cpu()


def twonn(
    X: ArrayLike,
    *,
    fraction: float = 0.9,
    method: str = "ls",
    prior: tuple[float, float] = (1e-3, 1e-3),
    n_resamples: int = 0,
    subsample: float = 0.9,
    seed: int | torch.Generator | None = 0,
    metric: str = "euclidean",
    chunk_size: int = 4096,
    device: torch.device | str | None = None,
    neighbors: Neighbors | None = None,
) -> TwoNNResult:
    """Estimate the intrinsic dimension of a point cloud with TwoNN.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D), or (N, N) with ``metric="precomputed"``
        Points (rows). Computed on ``X``'s device, or on ``device``.
    fraction : float in (0, 1], default 0.9
        For ``method="ls"``: share of the smallest ratios used by the fit.
    method : {"ls", "mle", "bayes"}, default "ls"
        ``"ls"``: the least-squares fit of the papers (Facco et al.; Ansuini et al.;
        DADApy's ``compute_id_2NN``), see :func:`twonn_ls`; ``"mle"``: maximum
        likelihood with DADApy's :math:`N - 1` convention, see :func:`twonn_mle`;
        ``"bayes"``: posterior mean under a Gamma ``prior``, see :func:`twonn_posterior`.
    prior : (float, float), default ``(1e-3, 1e-3)``
        Gamma (shape, rate) prior of ``method="bayes"``; ``(2, 5)`` is DADApy's.
    n_resamples : int, default 0
        If positive, the error is the standard deviation of the estimate over this many
        random subsamples of ``subsample * N`` points, with neighbours recomputed inside
        each subsample (Ansuini et al. use 90 % subsamples); see
        :func:`interp_lib.id.subsample_estimates`.
    subsample : float in (0, 1], default 0.9
    seed : int, torch.Generator or None, default 0
        Seed of the subsampling.
    metric : {"euclidean", "precomputed"}
        For any other metric pass a precomputed distance matrix, e.g. from
        ``scipy.spatial.distance.cdist(X, X, metric="cosine")``.
    chunk_size : int, default 4096
        Block size of the neighbour search (memory about ``chunk_size**2``).
    device : torch.device or str, optional
    neighbors : Neighbors, optional
        The neighbours of ``X`` computed once by :func:`interp_lib.id.nearest_neighbors`
        (``k >= 2``): the search on ``X`` is skipped, with the same result. The
        subsamples of ``n_resamples`` still search inside themselves.

    Returns
    -------
    TwoNNResult

    Warns
    -----
    UserWarning
        When duplicates (``r1 == 0``) or ties (``r1 == r2``) are dropped; their count is
        given. They are removed before counting ``N``, as in Ansuini et al. Both are
        judged up to the float64 rounding of the distances
        (see :func:`interp_lib.id.ratio_table`: the rounding of the coordinates,
        relative to the points' norms, and of the arithmetic): the points of a lattice
        at spacing 0.1 or 0.3 are ties, as those of the integer lattice are, not ratios
        of :math:`1 + 10^{-15}` (a dimension of :math:`10^{15}`). float32 points are
        judged at float64 rounding too: a float32 lattice at spacing 0.1 is not a
        lattice (its points are off by float32 rounding), so round it in float64
        (``X.double()`` of the intended values) to have its ties recognised.

    Raises
    ------
    ValueError
        Fewer than 3 points, NaN/inf, wrong shape, all points identical, a metric other
        than "euclidean"/"precomputed", a precomputed matrix that is not one of
        distances, bad options, ``neighbors`` of other points or with ``k < 2``.
    TypeError
        Non-numeric input.

    Examples
    --------
    >>> from interp_lib.datasets import gaussian
    >>> round(twonn(gaussian(2000, d=3, D=10, seed=0)).dimension)
    3
    """
    check_choice(method, "method", METHODS)
    metric, chunk_size, _ = check_options(metric, chunk_size)
    fraction = check_fraction(fraction, "fraction")
    subsample = check_fraction(subsample, "subsample")
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    prior = check_prior(prior)
    if n_resamples and metric == "precomputed":
        raise ValueError(
            "resampling needs points, not a precomputed distance matrix; pass "
            "n_resamples=0 or the points with metric='euclidean'."
        )
    # small passes over the data: one thread (see "Threads" in interp_lib.id.neighbors)
    with _single_threaded(_target_device(X, device)):
        X = as_points(X, device=device)
        points = None if metric == "precomputed" else X
        if neighbors is None:
            dist = _neighbor_distances(X, metric, chunk_size)
        else:
            dist = check_neighbors(neighbors, X.shape[0], 2, "twonn").cpu()
        table = ratio_table(dist, points=points)
        mu, n_dup, n_tie = table.mu, table.n_duplicates, table.n_ties
        n_dropped = n_dup + n_tie
        if mu.numel() < 3:
            raise ValueError(
                f"only {mu.numel()} of {X.shape[0]} points are usable: {n_dup} have a "
                f"duplicate and {n_tie} are equidistant from their two nearest neighbours (ties, "
                "up to the float64 rounding of the distances: all points identical, a lattice, "
                "or too few distinct points). Pass more distinct points."
            )
        if n_dropped:
            warnings.warn(
                f"TwoNN dropped {n_dropped} of {X.shape[0]} points before the fit: {n_dup} "
                f"duplicates (r1 == 0) and {n_tie} ties (r1 == r2), up to the float64 rounding "
                "of the distances.",
                UserWarning,
                stacklevel=2,
            )
        dimension, error = fit_ratios(mu, method, fraction, prior)
        error_kind = "analytic"
        resamples = None
        if n_resamples:

            def on_subset(Xs: torch.Tensor) -> float | None:
                sub = ratio_table(_neighbor_distances(Xs, metric, chunk_size), points=Xs).mu
                return fit_ratios(sub, method, fraction, prior)[0] if sub.numel() >= 3 else None

            resamples = subsample_estimates(
                X, on_subset, n_resamples=n_resamples, subsample=subsample, seed=seed
            )
            error = float(resamples.std()) if resamples.numel() > 1 else float("nan")
            error_kind = "resample"
        elif method == "bayes":
            error_kind = "posterior"
        return TwoNNResult(
            dimension=float(dimension),
            error=float(error),
            error_kind=error_kind,
            n_used=int(mu.numel()),
            n_dropped=n_dropped,
            mu=mu,
            method=method,
            fraction=fraction,
            resamples=resamples,
        )
