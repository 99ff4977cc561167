"""Model-parameter randomisation (Adebayo et al. 2018): similarities against SciPy and
scikit-image, and the randomisation itself (copies, order, seeds, ProtoPNet)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from _helpers import attribution_cnn as cnn
from _helpers import tiny_protopnet
from skimage.metrics import structural_similarity
from torch import nn

from interp_lib.baselines import attribute, model_randomisation
from interp_lib.baselines.sanity import (
    average_ranks,
    pearson,
    randomisable_layers,
    spearman,
    ssim,
)


def test_average_ranks_and_spearman_match_scipy() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (4, 30), generator=g).double()  # many ties
    y = torch.rand(4, 30, generator=g, dtype=torch.float64)
    np.testing.assert_array_equal(average_ranks(x).numpy(), scipy.stats.rankdata(x, axis=1))
    for i in range(4):
        ref = scipy.stats.spearmanr(x[i], y[i]).statistic
        assert spearman(x, y)[i].item() == pytest.approx(ref, abs=1e-12)
        assert pearson(x, y)[i].item() == pytest.approx(
            scipy.stats.pearsonr(x[i], y[i])[0], abs=1e-12
        )
    assert torch.isnan(pearson(torch.ones(1, 5), torch.rand(1, 5))).all()  # constant map


@pytest.mark.parametrize("win_size", [7, 3, 11])
def test_ssim_matches_scikit_image(win_size: int) -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 1, 12, 14, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(3, 1, 12, 14, generator=g, dtype=torch.float64)).clamp(0, 1)
    got = ssim(a, b, data_range=1.0, win_size=win_size)
    for i in range(3):
        ref = structural_similarity(
            a[i, 0].numpy(), b[i, 0].numpy(), win_size=win_size, data_range=1.0
        )
        assert got[i].item() == pytest.approx(ref, abs=1e-12)
    torch.testing.assert_close(ssim(a, a), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="win_size must be odd"):
        ssim(a, b, win_size=13)


@pytest.mark.slow
def test_model_is_not_modified_and_rng_is_left_alone() -> None:
    model, x = cnn(), torch.rand(3, 3, 12, 12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    res = model_randomisation(model, x, method="saliency", seed=0)
    assert torch.equal(torch.rand(3), expected_next)  # global RNG untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert res.layers == ["7", "3", "0"] == randomisable_layers(model)
    assert res.similarity["spearman"].shape == (3, 3) and res.maps.shape == (4, 3, 1, 12, 12)
    torch.testing.assert_close(res.maps[0], attribute(model, x, method="saliency"))
    again = model_randomisation(model, x, method="saliency", seed=0)
    torch.testing.assert_close(again.similarity["ssim"], res.similarity["ssim"])


@pytest.mark.slow
def test_cascading_steps_are_the_randomised_models() -> None:
    """Step k of cascading == a copy with layers[:k+1] re-initialised by hand."""
    model, x = cnn(), torch.rand(2, 3, 12, 12)
    t = model(x).argmax(1)
    res = model_randomisation(model, x, method="input_x_gradient", seed=5, measures=["pearson"])
    g = torch.Generator().manual_seed(5)
    seeds = torch.randint(0, 2**62, (3,), generator=g).tolist()
    manual = cnn()
    manual.load_state_dict(model.state_dict())
    for k, (name, s) in enumerate(zip(res.layers, seeds, strict=True)):
        torch.manual_seed(s)
        manual.get_submodule(name).reset_parameters()
        torch.testing.assert_close(
            res.maps[k + 1], attribute(manual, x, t, method="input_x_gradient")
        )
    indep = model_randomisation(model, x, method="input_x_gradient", seed=5, order="independent")
    torch.testing.assert_close(indep.maps[1], res.maps[1])  # the first step is the same
    assert not torch.allclose(indep.maps[2], res.maps[2])  # then only one layer is random


@pytest.mark.slow
def test_a_model_independent_map_fails_the_sanity_check() -> None:
    """Random maps (same seed) do not change with the weights: similarity 1 at every step;
    a gradient explanation does change."""
    model, x = cnn(), torch.rand(4, 3, 12, 12)
    rnd = model_randomisation(model, x, method="random", measures=["spearman", "ssim", "pearson"])
    for m in ("spearman", "ssim", "pearson"):
        torch.testing.assert_close(rnd.mean(m), torch.ones(3, dtype=torch.float64))
    sal = model_randomisation(model, x, method="saliency")
    assert float(sal.mean("spearman")[-1]) < 0.5
    rows = sal.records()
    assert len(rows) == 2 * 3 * 4 and {r["measure"] for r in rows} == {"spearman", "ssim"}
    assert len(sal.to_pandas()) == len(rows)


def test_protopnet_prototypes_are_randomised_after_the_last_layer() -> None:
    net = tiny_protopnet(
        0, prototype_dim=4, widths=(4,), backbone_kwargs={"batch_norm": False}
    ).eval()
    layers = randomisable_layers(net)
    assert layers[:2] == ["last_layer", "prototypes"] and layers[-1].startswith("features")
    x = torch.rand(2, 3, 16, 16)
    res = model_randomisation(net, x, method="prototype", layers=["prototypes"], measures=["ssim"])
    assert res.layers == ["prototypes"] and res.similarity["ssim"].shape == (1, 2)
    assert not torch.equal(res.maps[1], res.maps[0])


def test_errors() -> None:
    model, x = cnn(), torch.rand(2, 3, 12, 12)
    with pytest.raises(ValueError, match="measure must be one of"):
        model_randomisation(model, x, method="saliency", measures=["ssim", "kendall"])
    with pytest.raises(ValueError, match="order must be one of"):
        model_randomisation(model, x, method="saliency", order="bottom_up")
    with pytest.raises(ValueError, match="no layer named '9'"):
        model_randomisation(model, x, method="saliency", layers=["9"])
    with pytest.raises(ValueError, match="unknown method"):
        model_randomisation(model, x, method="gradcam")
    with pytest.raises(ValueError, match="no layer to randomise"):
        model_randomisation(nn.Sequential(nn.Flatten(), nn.Identity()).eval(), x, method="random")
