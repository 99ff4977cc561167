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
    make_generator,
)
from .neighbors import knn

__all__ = [
    "TwoNNResult",
    "drop_degenerate",
    "twonn",
    "twonn_ls",
    "twonn_mle",
    "twonn_posterior",
]

METHODS = ("ls", "mle", "bayes")


def _as_mu(mu: torch.Tensor | ArrayLike) -> torch.Tensor:
    mu = torch.as_tensor(mu, dtype=torch.float64).flatten().cpu()
    if mu.numel() < 2:
        raise ValueError(f"need at least 2 ratios mu, got {mu.numel()}.")
    if not bool((mu >= 1).all()) or not bool(torch.isfinite(mu).all()):
        raise ValueError("ratios mu = r2 / r1 must be finite and >= 1.")
    return mu


def twonn_ls(mu: torch.Tensor, fraction: float = 0.9) -> float:
    r"""Least-squares TwoNN fit through the origin (Facco et al., Ansuini et al.).

    Sort ``mu``, set :math:`F_i = i / N` for :math:`i = 1..N`, keep the
    :math:`\lfloor f N \rfloor` smallest ratios and fit :math:`y = d x` with
    :math:`x = \log \mu_{(i)}`, :math:`y = -\log(1 - F_i)`. The largest ratio has
    :math:`F = 1` and an infinite :math:`y`, so it is never used, even with
    ``fraction=1``.

    Parameters
    ----------
    mu : torch.Tensor, shape (N,)
        Ratios :math:`r_2 / r_1 \ge 1`.
    fraction : float in (0, 1]
        Share of the smallest ratios kept (the paper discards the 10 % heavy tail).
    """
    x, y = fit_points(mu, fraction)
    return float((x * y).sum() / (x * x).sum())


def fit_points(mu: torch.Tensor, fraction: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The points ``(log mu_(i), -log(1 - i/N))`` that the LS fit uses, float64."""
    mu = _as_mu(mu)
    fraction = check_fraction(fraction, "fraction")
    n = mu.numel()
    n_fit = min(math.floor(fraction * n), n - 1)
    if n_fit < 1:
        raise ValueError(f"fraction={fraction} keeps no points out of {n}.")
    mu_sorted = torch.sort(mu).values[:n_fit]
    f_emp = torch.arange(1, n_fit + 1, dtype=torch.float64) / n
    return torch.log(mu_sorted), -torch.log1p(-f_emp)


def twonn_mle(mu: torch.Tensor) -> tuple[float, float]:
    r"""Maximum-likelihood TwoNN: :math:`\hat d = (N - 1) / \sum_i \log \mu_i`.

    With :math:`N - 1` in the numerator the estimate is unbiased under the Pareto model
    and its standard deviation is exactly :math:`d / \sqrt{N - 2}`.

    Returns
    -------
    dimension, standard_error : float, float
    """
    mu = _as_mu(mu)
    n = mu.numel()
    s = float(torch.log(mu).sum())
    if s <= 0:
        raise ValueError("all ratios mu equal 1; the dimension is not identifiable.")
    d = (n - 1) / s
    return d, d / math.sqrt(max(n - 2, 1))


def twonn_posterior(
    mu: torch.Tensor, prior: tuple[float, float] = (1e-3, 1e-3)
) -> tuple[float, float]:
    r"""Bayesian TwoNN: the Gamma posterior of :math:`d` under a Gamma(a, b) prior.

    The Pareto likelihood :math:`d^N e^{-d \sum \log \mu}` is conjugate to a Gamma prior,
    so the posterior is :math:`\mathrm{Gamma}(a + N, b + \sum \log \mu)`.

    Returns
    -------
    mean, std : float, float
        Posterior mean and standard deviation.
    """
    mu = _as_mu(mu)
    a, b = prior
    if a <= 0 or b <= 0:
        raise ValueError(f"prior (a, b) must be positive, got {prior}.")
    shape = a + mu.numel()
    rate = b + float(torch.log(mu).sum())
    return shape / rate, math.sqrt(shape) / rate


def drop_degenerate(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Mask of points kept by TwoNN: not a duplicate (``r1 == 0``) and not a tie (``r1 == r2``)."""
    return (r1 > 0) & (r2 > r1)


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
        return fit_points(self.mu, self.fraction)


def estimate(mu: torch.Tensor, method: str, fraction: float) -> tuple[float, float]:
    if method == "ls":
        d = twonn_ls(mu, fraction)
        return d, d / math.sqrt(max(mu.numel() - 2, 1))
    if method == "mle":
        return twonn_mle(mu)
    return twonn_posterior(mu)


def ratios(
    X: torch.Tensor, metric: str = "euclidean", chunk_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """``mu`` and ``r2`` of the kept points, and the counts of duplicates and ties.

    ``X`` must already be validated (see :func:`interp_lib._validation.as_points`).
    """
    dist = knn(X, 2, metric=metric, chunk_size=chunk_size).distances.cpu()
    r1, r2 = dist[:, 0], dist[:, 1]
    keep = drop_degenerate(r1, r2)
    n_dup = int((r1 == 0).sum())
    n_tie = int(((r1 > 0) & (r1 == r2)).sum())
    return r2[keep] / r1[keep], r2[keep], n_dup, n_tie


def twonn(
    X: ArrayLike,
    *,
    fraction: float = 0.9,
    method: str = "ls",
    n_resamples: int = 0,
    subsample: float = 0.9,
    seed: int | torch.Generator | None = 0,
    metric: str = "euclidean",
    chunk_size: int = 4096,
    device: torch.device | str | None = None,
) -> TwoNNResult:
    """Estimate the intrinsic dimension of a point cloud with TwoNN.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (N, D), or (N, N) with ``metric="precomputed"``
        Points (rows). Computed on ``X``'s device, or on ``device``.
    fraction : float in (0, 1], default 0.9
        For ``method="ls"``: share of the smallest ratios used by the fit.
    method : {"ls", "mle", "bayes"}, default "ls"
        ``"ls"``: the least-squares fit of the papers (Facco et al.; Ansuini et al.);
        ``"mle"``: maximum likelihood; ``"bayes"``: posterior mean under a vague Gamma prior.
    n_resamples : int, default 0
        If positive, the error is the standard deviation of the estimate over this many
        random subsamples of ``subsample * N`` points, with neighbours recomputed inside
        each subsample (Ansuini et al. use 90 % subsamples).
    subsample : float in (0, 1], default 0.9
    seed : int, torch.Generator or None, default 0
        Seed of the subsampling.
    metric : {"euclidean", "precomputed"}
    chunk_size : int, default 4096
        Block size of the neighbour search (memory about ``chunk_size**2``).
    device : torch.device or str, optional

    Returns
    -------
    TwoNNResult

    Warns
    -----
    UserWarning
        When duplicates (``r1 == 0``) or ties (``r1 == r2``) are dropped; their count is
        given. They are removed before counting ``N``, as in Ansuini et al.

    Raises
    ------
    ValueError
        Fewer than 3 points, NaN/inf, wrong shape, all points identical, bad options.
    TypeError
        Non-numeric input.

    Examples
    --------
    >>> from interp_lib.datasets import gaussian
    >>> round(twonn(gaussian(2000, d=3, D=10, seed=0)).dimension)
    3
    """
    check_choice(method, "method", METHODS)
    fraction = check_fraction(fraction, "fraction")
    subsample = check_fraction(subsample, "subsample")
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    X = as_points(X, device=device)
    mu, _, n_dup, n_tie = ratios(X, metric, chunk_size)
    n_dropped = n_dup + n_tie
    if mu.numel() < 3:
        raise ValueError(
            f"only {mu.numel()} of {X.shape[0]} points are usable: {n_dup} have an exact "
            f"duplicate and {n_tie} are equidistant from their two nearest neighbours "
            "(all points identical, or too few distinct points). Pass more distinct points."
        )
    if n_dropped:
        warnings.warn(
            f"TwoNN dropped {n_dropped} of {X.shape[0]} points before the fit: {n_dup} "
            f"duplicates (r1 == 0) and {n_tie} ties (r1 == r2).",
            UserWarning,
            stacklevel=2,
        )
    dimension, error = estimate(mu, method, fraction)
    error_kind = "analytic"
    resamples = None
    if n_resamples:
        if metric == "precomputed":
            raise ValueError("resampling needs points, not a precomputed distance matrix.")
        gen = make_generator(seed)
        m = max(3, math.floor(subsample * X.shape[0]))
        values = []
        for _ in range(n_resamples):
            idx = torch.randperm(X.shape[0], generator=gen)[:m].to(X.device)
            sub_mu, _, _, _ = ratios(X[idx], metric, chunk_size)
            if sub_mu.numel() >= 3:
                values.append(estimate(sub_mu, method, fraction)[0])
        resamples = torch.tensor(values, dtype=torch.float64)
        error = float(resamples.std()) if len(values) > 1 else float("nan")
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
