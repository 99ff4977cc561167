"""Gride's optional outlier filter (DADApy's ``_filter_mus``: drop ratios >= q50 + 20 (q95 - q50)).

The reference below is DADApy's ``_filter_mus`` and bisection on ``_neg_dloglik_did``
written out with numpy (DADApy is not a dependency): the filtered fit must equal it, and
on data with near-duplicate points the filter must change the estimate (towards the true
dimension), while on clean data it changes nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp_lib.id import gride
from interp_lib.id.gride import gride_mle, outlier_ratio_threshold


def dadapy_gride(mus: np.ndarray, n1: int, n2: int) -> float:
    """DADApy's ``_argmax_loglik`` (filter, then bisection on the score), eps 1e-12."""
    q3, q2 = np.percentile(mus, [95, 50])
    mus = mus[mus < 20 * (q3 - q2) + q2]
    n = len(mus)

    def neg_dloglik(d: float) -> float:
        one_m = np.maximum(1.0 - mus ** (-d), 2e-7)
        return float(np.sum(((1 - n2 + n1) / one_m + n2 - 1.0) * np.log(mus)) - (n - 1) / d)

    d0, d1 = 0.001, 1000.0
    l1 = neg_dloglik(d1)
    while abs(d0 - d1) > 1e-12:
        d2 = (d0 + d1) / 2
        if neg_dloglik(d2) * l1 > 0:
            d1 = d2
        else:
            d0 = d2
    return (d0 + d1) / 2


def uniform_with_duplicates(n: int = 600, n_dup: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 2))
    dup = x[:n_dup] + 1e-7 * rng.standard_normal((n_dup, 2))  # near-duplicates
    return np.concatenate([x, dup])


@pytest.mark.parametrize(("n1", "n2"), [(1, 2), (2, 4)])
def test_filtered_fit_equals_dadapy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(1)
    mus = np.exp(rng.exponential(1 / 3, size=500))  # TwoNN-like ratios, d = 3
    mus[:10] = 1e4  # outliers
    d, _ = gride_mle(torch.from_numpy(mus), n1, n2, outlier_filter=True)
    assert d == pytest.approx(dadapy_gride(mus, n1, n2), abs=1e-8)
    assert (mus < outlier_ratio_threshold(torch.from_numpy(mus))).sum() == 490
    d_all, _ = gride_mle(torch.from_numpy(mus), n1, n2)
    assert d_all < d - 0.2  # the outliers pull the unfiltered estimate down


def test_near_duplicates_change_gride_and_the_filter_repairs_it() -> None:
    x = uniform_with_duplicates()
    plain = gride(x, max_rank=8)
    filt = gride(x, max_rank=8, outlier_filter=True)
    assert plain.n_fitted is None and filt.n_fitted is not None
    assert int(filt.n_fitted[0]) < int(filt.n_used[0])  # the duplicates' ratios are cut
    assert abs(filt.dimensions[0] - 2) < 0.3 < abs(plain.dimensions[0] - 2)
    # clean data: the filter removes nothing and the estimates are identical
    clean = np.random.default_rng(2).uniform(size=(600, 2))
    a, b = gride(clean, max_rank=8), gride(clean, max_rank=8, outlier_filter=True)
    assert torch.equal(b.n_fitted, b.n_used)
    assert torch.equal(a.dimensions, b.dimensions) and torch.equal(a.errors, b.errors)


def test_filter_argument_checked() -> None:
    with pytest.raises(TypeError, match="outlier_filter"):
        gride_mle(torch.tensor([1.5, 2.0, 3.0]), outlier_filter=1)
