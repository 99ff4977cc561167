"""Consistency with DADApy, the field's reference implementation, on its own test data.

``tests/data/dadapy_2gaussians_in_2d.npy`` is DADApy's ``tests/2gaussians_in_2d.npy``
(Apache-2.0, see ``tests/data/dadapy_2gaussians_in_2d.NOTICE.md``); the expected values
and tolerances are those of DADApy's own tests (``test_2NN.py``, ``test_gride.py``).
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from interp_lib.id import (
    block_analysis,
    gride,
    gride_mle,
    nearest_neighbors,
    twonn,
    twonn_mle,
    twonn_posterior,
)

X = np.load(Path(__file__).parent / "data" / "dadapy_2gaussians_in_2d.npy")

GRIDE_IDS = [2.00075528, 2.0321371, 1.91183327, 2.00055726, 1.6747242]
GRIDE_ERRORS = [0.20007553, 0.14664295, 0.09766772, 0.07223903, 0.04275823]
GRIDE_SCALES = [0.39476585, 0.56740507, 0.80139545, 1.13457408, 1.64776878]


def test_data_file():
    assert X.shape == (100, 2) and X.dtype == np.float64


def test_twonn_least_squares():
    # DADApy compute_id_2NN(): 1.85491, abs tolerance 0.01
    assert twonn(X).dimension == pytest.approx(1.85491, abs=0.01)
    assert twonn(X).dimension == pytest.approx(1.85491, abs=1e-5)  # in fact to 1e-5


def test_bayesian_twonn_with_dadapy_prior():
    # DADApy compute_id_2NN_wprior(alpha=2, beta=5): posterior mean 1.8722, abs tol 1e-4
    res = twonn(X, method="bayes", prior=(2, 5))
    assert res.dimension == pytest.approx(1.8722, abs=1e-4)
    assert res.error_kind == "posterior"


def test_gride_scaling():
    # DADApy return_id_scaling_gride(): IDs, errors and scales, abs tolerance 0.01
    res = gride(X, max_rank=32)
    assert res.n1.tolist() == [1, 2, 4, 8, 16] and res.n2.tolist() == [2, 4, 8, 16, 32]
    assert res.dimensions.tolist() == pytest.approx(GRIDE_IDS, abs=0.01)
    assert res.errors.tolist() == pytest.approx(GRIDE_ERRORS, abs=0.01)
    assert res.scales.tolist() == pytest.approx(GRIDE_SCALES, abs=0.01)
    # the published digits are matched to 1e-6: same likelihood, same Fisher
    # information, same definition of the scale
    assert res.dimensions.tolist() == pytest.approx(GRIDE_IDS, abs=1e-6)
    assert res.errors.tolist() == pytest.approx(GRIDE_ERRORS, abs=1e-6)
    assert res.scales.tolist() == pytest.approx(GRIDE_SCALES, abs=1e-6)


def test_gride_default_ranks_match_dadapy_default_range():
    # DADApy's current test (range_max=64) adds the scale (32, 64)
    res = gride(X)
    assert res.n2.tolist() == [2, 4, 8, 16, 32, 64]
    assert res.dimensions[-1].item() == pytest.approx(0.7208, abs=1e-3)
    assert res.errors[-1].item() == pytest.approx(0.0130, abs=1e-3)
    assert res.scales[-1].item() == pytest.approx(3.5726, abs=1e-3)


def test_gride_at_ranks_1_2_is_the_twonn_mle():
    # one MLE convention in the library: (N - 1) / sum(log mu), DADApy's
    assert gride(X).dimensions[0].item() == pytest.approx(
        twonn(X, method="mle").dimension, rel=1e-9
    )
    d = nearest_neighbors(X, k=2).distances
    mu = d[:, 1] / d[:, 0]
    assert gride_mle(mu, 1, 2)[0] == pytest.approx(twonn_mle(mu)[0], rel=1e-9)
    assert twonn_mle(mu)[0] == pytest.approx(2.00075528, abs=1e-6)  # DADApy's Gride (1, 2)


def test_scale_definitions():
    inner = gride(X, max_rank=32, scale="mean").scales
    outer = gride(X, max_rank=32, scale="outer").scales
    # interp_lib's previous definition, the mean distance to the n2-th neighbour
    assert outer.tolist() == pytest.approx([0.4766, 0.6582, 0.9446, 1.3246, 1.9709], abs=1e-4)
    assert bool((outer > inner).all())
    # block analysis reports the same scale as DADApy's compute_id_2NN on all points
    assert block_analysis(X).scales[0].item() == pytest.approx(0.39476, abs=1e-5)
    assert block_analysis(X, scale="outer").scales[0].item() == pytest.approx(outer[0].item())


def test_prior_is_a_choice():
    d = nearest_neighbors(X, k=2).distances
    mu = d[:, 1] / d[:, 0]
    vague = twonn_posterior(mu)[0]
    dadapy = twonn_posterior(mu, prior=(2, 5))[0]
    n, s = mu.numel(), float(torch.log(mu).sum())
    assert vague == pytest.approx((1e-3 + n) / (1e-3 + s), rel=1e-12)
    assert dadapy == pytest.approx((2 + n) / (5 + s), rel=1e-12)
    assert twonn(X, method="bayes").dimension == pytest.approx(vague, rel=1e-12)
    with pytest.raises(ValueError, match="positive"):
        twonn_posterior(mu, prior=(0, 5))
    with pytest.raises(TypeError, match="pair"):
        twonn(X, method="bayes", prior=2.0)
