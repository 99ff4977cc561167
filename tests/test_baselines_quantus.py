"""Our metrics against Quantus 0.6 (Hedström et al. 2023), the field's evaluation library.

- Pointing game == ``quantus.PointingGame`` on maps without ties. Two definitional
  differences, both shown below: a tie for the maximum is a hit in Quantus when any of the
  tied pixels is inside (ours: the first one in row-major order decides), and Quantus
  scores an empty mask as a hit (its NaN is written into a boolean array) where we return
  NaN.
- Energy inside the mask == ``quantus.AttributionLocalisation`` (positive attributions,
  unweighted), up to Quantus' ``1e-9`` in the denominator (1e-6 here).
- Deletion == ``quantus.RegionPerturbation`` (most relevant first, baseline 0, softmax
  probabilities): Quantus returns ``p(x) - p(x after k regions)``, our curve
  ``p(x after k pixels)``; with ``patch_size=1`` and ``step=1`` (and with 2 x 2 patches
  on maps constant over each patch and ``step=4``) the numbers agree to 1e-6. Quantus
  ranks patches by their summed attribution, we rank pixels: on other maps the
  definitions differ.
- Model-parameter randomisation == ``quantus.MPRT`` (top-down cascading, Spearman of
  absolute maps) when the layers are re-initialised as Quantus does
  (``torch.manual_seed(seed + 1)`` then ``reset_parameters()`` for every layer): agreement
  to 1e-9.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _helpers import attribution_cnn, require_module
from torch import nn

from interp_lib.baselines import (
    attribute,
    deletion,
    energy_in_mask,
    model_randomisation,
    pointing_game,
)

pytestmark = [
    pytest.mark.slow,  # imports Quantus (OpenCV, scikit-image); captum attributions
    pytest.mark.filterwarnings("ignore"),  # Quantus' own warnings and prints
]


@pytest.fixture(scope="module")
def quantus():
    """Quantus, imported when a test runs (not at collection: it costs seconds, also to
    the fast suite that deselects this module)."""
    return require_module("quantus")


@pytest.fixture(scope="module")
def data():
    net = attribution_cnn()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 12, 12, generator=g)
    y = net(x).argmax(1)
    return net, x, y, g


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def test_pointing_game_matches_quantus(data, quantus) -> None:
    net, x, y, g = data
    a = torch.rand(5, 1, 12, 12, generator=g)  # continuous: no ties
    masks = torch.zeros(5, 1, 12, 12, dtype=torch.bool)
    masks[:, 0, 3:9, 3:9] = True
    top = a.flatten(1).argmax(1)
    for i in (0, 2):  # hits: a 3 x 3 region around the maximum
        r, c = divmod(int(top[i]), 12)
        masks[i] = False
        masks[i, 0, max(0, r - 1) : r + 2, max(0, c - 1) : c + 2] = True
    ours = pointing_game(a, masks)
    ref = quantus.PointingGame(disable_warnings=True)(
        model=net, x_batch=_np(x), y_batch=_np(y), a_batch=_np(a),
        s_batch=_np(masks).astype(float), device="cpu",
    )  # fmt: skip
    assert ours.tolist() == [float(h) for h in ref]
    assert 0 < float(ours.sum()) < 5  # hits and misses both checked

    # Definitional differences: ties, and an empty mask.
    tie = torch.zeros(2, 1, 12, 12)
    tie[:, 0, 0, 0] = tie[:, 0, 11, 11] = 1.0  # two maxima; the second is in the mask
    m = torch.zeros(2, 1, 12, 12, dtype=torch.bool)
    m[0, 0, 8:, 8:] = True  # image 1: empty mask
    ref = quantus.PointingGame(disable_warnings=True)(
        model=net, x_batch=_np(x[:2]), y_batch=_np(y[:2]), a_batch=_np(tie),
        s_batch=_np(m).astype(float), device="cpu",
    )  # fmt: skip
    assert [bool(h) for h in ref] == [True, True]
    ours = pointing_game(tie, m)
    assert ours[0].item() == 0.0 and torch.isnan(ours[1])


def test_energy_in_mask_matches_quantus_attribution_localisation(data, quantus) -> None:
    net, x, y, g = data
    a = torch.randn(5, 1, 12, 12, generator=g)  # signed: the negative part is dropped
    masks = torch.zeros(5, 1, 12, 12, dtype=torch.bool)
    for i in range(5):
        masks[i, 0, i : i + 5, 2 * i : 2 * i + 3] = True
    ref = quantus.AttributionLocalisation(
        positive_attributions=True, weighted=False, normalise=False, abs=False,
        disable_warnings=True,
    )(model=net, x_batch=_np(x), y_batch=_np(y), a_batch=_np(a),
      s_batch=_np(masks).astype(float), device="cpu")  # fmt: skip
    ours = energy_in_mask(a, masks)
    np.testing.assert_allclose(_np(ours), np.asarray(ref, dtype=float), rtol=0, atol=1e-6)


@pytest.mark.parametrize("patch", [1, 2])
def test_deletion_matches_quantus_region_perturbation(data, quantus, patch: int) -> None:
    net, x, y, g = data
    a = torch.rand(5, 1, 12 // patch, 12 // patch, generator=g)
    a = a.repeat_interleave(patch, 2).repeat_interleave(patch, 3)  # constant on each patch
    metric = quantus.RegionPerturbation(
        patch_size=patch, order="morf", regions_evaluation=(12 // patch) ** 2,
        perturb_baseline=0.0, normalise=False, abs=False, disable_warnings=True,
    )  # fmt: skip
    ref = np.asarray(
        metric(
            model=net, x_batch=_np(x), y_batch=_np(y), a_batch=_np(a), device="cpu", softmax=True
        )
    )
    curve = deletion(net, x, a, y, step=patch * patch, substrate="zeros")
    ours = curve.scores[:, :1] - curve.scores[:, 1:]  # p(x) - p(after k regions)
    assert ref.shape == tuple(ours.shape) == (5, (12 // patch) ** 2)
    np.testing.assert_allclose(_np(ours), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("method", "kw"),
    [("saliency", {}), ("guided_backprop", {}), ("input_x_gradient", {})],
)
def test_model_randomisation_matches_quantus_mprt(data, quantus, method: str, kw: dict) -> None:
    net, x, y, _ = data

    def explain(model, inputs, targets, **_):
        return _np(attribute(model, torch.as_tensor(inputs), torch.as_tensor(targets),
                             method=method, **kw))  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = quantus.MPRT(layer_order="top_down", seed=42, disable_warnings=True)(
            model=net, x_batch=_np(x), y_batch=_np(y), a_batch=explain(net, x, y),
            explain_func=explain, device="cpu",
        )  # fmt: skip

    def as_quantus(name: str, module: nn.Module) -> None:
        torch.manual_seed(42 + 1)
        module.reset_parameters()

    ours = model_randomisation(
        net, x, y, method=method, measures=["spearman"], reinitialise=as_quantus, **kw
    )
    assert ours.layers == [k for k in ref if k != "original"] == ["7", "3", "0"]
    for k, layer in enumerate(ours.layers):
        np.testing.assert_allclose(
            _np(ours.similarity["spearman"][k]), np.asarray(ref[layer]), rtol=0, atol=1e-9
        )
