"""Infidelity and sensitivity (Yeh et al. 2019) through captum.metrics: known answers, and
equality with captum's own call (same perturbation function and seed: exactly equal)."""

from __future__ import annotations

import pytest
import torch
from _helpers import attribution_cnn, require_module
from torch import nn

from interp_lib.baselines import attribute, infidelity, sensitivity
from interp_lib.baselines.captum_metrics import gaussian_perturbation

pytestmark = pytest.mark.slow  # imports captum


@pytest.fixture(scope="module")
def captum_metrics():
    return require_module("captum.metrics")


class Linear(nn.Module):
    """Two classes; logit_1 = sum(w * x): the exact attribution of pixel p is sum_c w."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x * self.w).sum((1, 2, 3))
        return torch.stack([-z, z], dim=1)


def test_infidelity_known_answer(captum_metrics) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64)
    model = Linear(w).eval()
    x = torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64)
    exact = w.sum(1, keepdim=True).expand(4, 1, 8, 8)  # the gradient map, channels summed
    random = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    good = infidelity(model, x, exact, 1, normalize=False)
    bad = infidelity(model, x, random, 1, normalize=False)
    assert float(good.max()) < 1e-20 and bool((bad > 1e-6).all())
    # full per-channel attributions (gradient x 1): also exact, with per-channel noise
    full = infidelity(model, x, w.expand(4, 3, 8, 8), 1, normalize=False)
    assert float(full.max()) < 1e-20
    # normalize: a rescaled exact map is still exact
    assert float(infidelity(model, x, 5 * exact, 1).abs().max()) < 1e-12  # rounding of beta
    assert float(infidelity(model, x, 5 * exact, 1, normalize=False).min()) > 1e-8


def test_infidelity_equals_captum(captum_metrics) -> None:
    net = attribution_cnn()
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    y = net(x).argmax(1)
    sal = attribute(net, x, y, method="saliency")
    ours = infidelity(net, x, sal, y, seed=4, n_perturb_samples=7)
    torch.manual_seed(4)
    ref = captum_metrics.infidelity(
        net, gaussian_perturbation(0.003, True), x, (sal / 3).expand_as(x).contiguous(),
        target=y, n_perturb_samples=7, normalize=True,
    )  # fmt: skip
    assert torch.equal(ours, ref)
    # the caller's RNG is untouched, and the seed matters
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    infidelity(net, x, sal, y)
    assert torch.equal(torch.rand(3), before)
    assert not torch.equal(ours, infidelity(net, x, sal, y, seed=5, n_perturb_samples=7))


def test_sensitivity_known_answer_and_equals_captum(captum_metrics) -> None:
    g = torch.Generator().manual_seed(0)
    lin = Linear(torch.randn(1, 3, 8, 8, generator=g)).eval()
    x = torch.rand(2, 3, 8, 8, generator=g)
    # the gradient of a linear model does not depend on the input
    assert float(sensitivity(lin, x, 1, method="saliency").max()) < 1e-6
    net = attribution_cnn()
    x = torch.rand(3, 3, 12, 12, generator=g)
    y = net(x).argmax(1)
    ours = sensitivity(net, x, y, method="saliency", perturb_radius=0.1, seed=2)
    assert bool((ours > 1e-3).all())

    def explain(inputs, target):
        # captum hands its inputs as a tuple and reads a tuple back
        (inputs,) = inputs
        return (attribute(net, inputs, target, method="saliency"),)

    torch.manual_seed(2)
    ref = captum_metrics.sensitivity_max(explain, x, perturb_radius=0.1, target=y)
    assert torch.equal(ours, ref)


def test_bad_shapes() -> None:
    net = attribution_cnn()
    x = torch.rand(2, 3, 12, 12)
    with pytest.raises(ValueError, match="saliency has shape"):
        infidelity(net, x, torch.rand(2, 1, 6, 6))
