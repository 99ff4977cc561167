"""Statistics for comparing networks: paired intervals and correlations over networks.

Two questions of Ansuini et al. (2019) need honest error bars:

- *does training change the ID of a layer?* The same images (or classes, or seeds) are
  measured in a trained network and in its untrained twin, so the comparison is
  **paired**: :func:`paired_interval` gives the mean difference with a Student-t
  interval over the pairs;
- *does the last-hidden ID predict the test error?* Networks are the units:
  :func:`correlation_bootstrap` gives Pearson's r and Spearman's rho with percentile
  bootstrap intervals over networks, or over groups of networks (e.g. the seeds of one
  architecture, which are not independent draws of an architecture).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._plumbing import require
from .._validation import check_fraction, check_int, make_generator

__all__ = ["CorrelationResult", "PairedInterval", "correlation_bootstrap", "paired_interval"]


def _vector(values, name: str) -> torch.Tensor:
    try:
        if isinstance(values, torch.Tensor):
            t = values.detach().to("cpu", torch.float64).flatten().clone()
        else:  # a copy: pandas and numpy may hand over read-only buffers
            t = torch.tensor(np.array(values, dtype=np.float64)).flatten()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must be a sequence of numbers, got {type(values).__name__}."
        ) from err
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has NaN or infinite values; drop them first.")
    return t


@dataclass(frozen=True)
class PairedInterval:
    """Mean of paired differences ``a - b`` and its Student-t confidence interval.

    Attributes
    ----------
    mean : float
        Mean difference.
    low, high : float
        Confidence interval of the mean (``nan`` with one pair).
    sd : float
        Standard deviation of the differences.
    n : int
        Number of pairs.
    confidence : float
    """

    mean: float
    low: float
    high: float
    sd: float
    n: int
    confidence: float

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}] ({pct} % CI, n = {self.n})"

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0


def paired_interval(a, b, *, confidence: float = 0.95) -> PairedInterval:
    """Mean paired difference ``a - b`` with a Student-t interval over the pairs.

    Parameters
    ----------
    a, b : sequence of float, shape (n,)
        Paired measurements (e.g. the ID of one layer per class, or per seed, in a
        trained network and in its untrained twin).
    confidence : float in (0, 1), default 0.95

    Returns
    -------
    PairedInterval

    Examples
    --------
    >>> paired_interval([3.0, 4.0, 5.0], [1.0, 2.0, 3.0]).mean
    2.0
    """
    from scipy.stats import t as student_t

    a, b = _vector(a, "a"), _vector(b, "b")
    confidence = check_fraction(confidence, "confidence", inclusive_high=False)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must pair up one to one, got {a.numel()} and {b.numel()} values."
        )
    if a.numel() < 1:
        raise ValueError("need at least one pair.")
    diff = a - b
    n = diff.numel()
    mean = float(diff.mean())
    if n < 2:
        return PairedInterval(mean, math.nan, math.nan, math.nan, n, confidence)
    sd = float(diff.std())
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return PairedInterval(mean, mean - half, mean + half, sd, n, confidence)


@dataclass(frozen=True)
class CorrelationResult:
    """Pearson and Spearman correlations with bootstrap intervals.

    Attributes
    ----------
    pearson, spearman : float
        On all points.
    pearson_p, spearman_p : float
        Two-sided p-values of the usual tests, which assume independent points.
    pearson_interval, spearman_interval : (float, float)
        Percentile bootstrap intervals (resampling networks, or groups when given).
    n : int
        Number of points (networks).
    n_groups : int
        Number of resampling units.
    n_resamples : int
    confidence : float
    """

    pearson: float
    spearman: float
    pearson_p: float
    spearman_p: float
    pearson_interval: tuple[float, float]
    spearman_interval: tuple[float, float]
    n: int
    n_groups: int
    n_resamples: int
    confidence: float

    def to_pandas(self):
        """A two-row table: coefficient, p-value and interval of each correlation."""
        pd = require("pandas", "CorrelationResult.to_pandas")

        pct = round(100 * self.confidence)
        return pd.DataFrame(
            {
                "coefficient": [self.pearson, self.spearman],
                "p-value (independent points)": [self.pearson_p, self.spearman_p],
                f"{pct} % bootstrap low": [self.pearson_interval[0], self.spearman_interval[0]],
                f"{pct} % bootstrap high": [self.pearson_interval[1], self.spearman_interval[1]],
            },
            index=["Pearson r", "Spearman rho"],
        )


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share their mean rank), along the last axis."""
    from scipy.stats import rankdata

    return torch.as_tensor(rankdata(x.numpy(), axis=-1), dtype=torch.float64)


def _pearson_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson r of each row pair of ``x``, ``y`` (B, n); NaN where a row is constant."""
    xc = x - x.mean(-1, keepdim=True)
    yc = y - y.mean(-1, keepdim=True)
    den = (xc.square().sum(-1) * yc.square().sum(-1)).sqrt()
    r = (xc * yc).sum(-1) / den
    return torch.where(den > 0, r, torch.full_like(r, math.nan))


def correlation_bootstrap(
    x,
    y,
    *,
    groups: Sequence | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | torch.Generator | None = 0,
) -> CorrelationResult:
    """Pearson and Spearman correlation of ``x`` and ``y`` with bootstrap intervals.

    Parameters
    ----------
    x, y : sequence of float, shape (n,)
        One value per network (e.g. last-hidden ID and test error).
    groups : sequence, shape (n,), optional
        Group label of each network (e.g. its architecture). If given, the bootstrap
        resamples whole groups with replacement (a cluster bootstrap), so networks of one
        group that share everything but the seed are not counted as independent.
    n_resamples : int, default 2000
    confidence : float in (0, 1), default 0.95
    seed : int, torch.Generator or None, default 0

    Returns
    -------
    CorrelationResult
        Resamples in which one variable is constant are skipped.

    Examples
    --------
    >>> res = correlation_bootstrap([1, 2, 3, 4, 5], [2, 4, 5, 4, 6], n_resamples=200)
    >>> round(res.spearman, 2)
    0.82
    """
    from scipy.stats import pearsonr, spearmanr

    x, y = _vector(x, "x"), _vector(y, "y")
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have one value per network each, got {x.numel()} and {y.numel()}."
        )
    n = x.numel()
    if n < 3:
        raise ValueError(f"need at least 3 networks for a correlation, got {n}.")
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    confidence = check_fraction(confidence, "confidence", inclusive_high=False)
    gen = make_generator(seed)
    if groups is None:
        members = [torch.tensor([i]) for i in range(n)]
    else:
        labels = list(groups)
        if len(labels) != n:
            raise ValueError(f"groups must have one label per network ({n}), got {len(labels)}.")
        order = list(dict.fromkeys(labels))
        if len(order) < 2:
            raise ValueError("groups must contain at least 2 different labels.")
        members = [torch.tensor([i for i, g in enumerate(labels) if g == key]) for key in order]
    k = len(members)
    draws = torch.randint(k, (n_resamples, k), generator=gen)
    pearson, spearman = [], []
    for row in draws:
        idx = torch.cat([members[int(j)] for j in row])
        xs, ys = x[idx][None], y[idx][None]
        pearson.append(float(_pearson_rows(xs, ys)[0]))
        spearman.append(float(_pearson_rows(_ranks(xs), _ranks(ys))[0]))
    alpha = (1 - confidence) / 2

    def interval(values: list[float]) -> tuple[float, float]:
        v = torch.tensor(values, dtype=torch.float64)
        v = v[torch.isfinite(v)]
        if v.numel() == 0:
            return (math.nan, math.nan)
        q = torch.quantile(v, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
        return (float(q[0]), float(q[1]))

    pr = pearsonr(x.numpy(), y.numpy())
    sr = spearmanr(x.numpy(), y.numpy())
    return CorrelationResult(
        pearson=float(pr[0]),
        spearman=float(sr[0]),
        pearson_p=float(pr[1]),
        spearman_p=float(sr[1]),
        pearson_interval=interval(pearson),
        spearman_interval=interval(spearman),
        n=n,
        n_groups=k,
        n_resamples=n_resamples,
        confidence=confidence,
    )
