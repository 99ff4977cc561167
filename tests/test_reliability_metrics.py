"""Issue 21, items 5, 6, 10, 11: metrics that were silently wrong on valid input, and
values that only made NaNs later."""

import pytest
import torch
from torch import nn

from interp_lib.baselines import deletion, energy_in_mask, insertion
from interp_lib.baselines.masks import boxes_to_region_masks
from interp_lib.baselines.metrics import perturbation_curve


class _Reader(nn.Module):
    """Class 1's logit is the mean of the image's first column: a map that ranks those
    pixels first is perfect."""

    def forward(self, x):
        col = x[:, 0, :, 0].mean(1)
        return torch.stack([torch.zeros_like(col), 8 * col], 1)

    def __init__(self):
        super().__init__()
        self.eval()


def _perfect_map(h=8, w=8):
    s = torch.zeros(1, 1, h, w, dtype=torch.float64)
    s[..., 0] = 1.0
    return s + 1e-3 * torch.arange(h * w, dtype=torch.float64).view(1, 1, h, w).flip(-1)


@pytest.mark.parametrize("transform", [lambda s: s * 1e300, lambda s: 1e3 + 1e-9 * s])
def test_deletion_ranks_float64_maps_in_their_own_dtype(transform):
    x = torch.ones(1, 1, 8, 8)
    s = _perfect_map()
    reference = deletion(_Reader(), x, s, target=1, step=1).auc
    moved = deletion(_Reader(), x, transform(s), target=1, step=1).auc
    torch.testing.assert_close(moved, reference)  # float32 casting merged these into ties
    ins = insertion(_Reader(), x, transform(s), target=1, step=1, substrate="zeros").auc
    torch.testing.assert_close(ins, insertion(_Reader(), x, s, 1, step=1, substrate="zeros").auc)


def test_energy_in_mask_of_a_float16_map_does_not_overflow():
    s = torch.full((1, 1, 64, 64), 20.0, dtype=torch.float16)  # sum 81920 > 65504
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[:, :32] = True
    assert energy_in_mask(s, mask).item() == pytest.approx(0.5)


def test_metrics_run_a_training_model_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 3)).train()
    x, s = torch.randn(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    with pytest.warns(UserWarning, match="training mode"):
        a = deletion(model, x, s, target=0).auc
    with pytest.warns(UserWarning, match="training mode"):
        b = deletion(model, x, s, target=0).auc
    torch.testing.assert_close(a, b)  # dropout off: the same curve twice
    assert model.training and model[1].training  # the mode is restored
    model.eval()
    torch.testing.assert_close(deletion(model, x, s, target=0).auc, a)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_substrate_is_refused(bad):
    x, s = torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match="finite"):
        deletion(_Reader(), x, s, target=1, substrate=bad)
    with pytest.raises(ValueError, match="NaN or infinity"):
        perturbation_curve(_Reader(), x, s, 1, kind="deletion", substrate=torch.full_like(x, bad))


def test_nan_boxes_are_refused():
    with pytest.raises(ValueError, match="NaN or infinity in 1 of 2"):
        boxes_to_region_masks(torch.tensor([[0.0, 0, 4, 4], [float("nan"), 0, 2, 2]]), (8, 8))


def test_explain_refuses_a_nan_image():
    from interp_lib.protopnet import ProtoPNet, explain

    torch.manual_seed(0)
    model = ProtoPNet("small_cnn", n_classes=2, image_size=16, n_prototypes_per_class=2)
    x = torch.rand(2, 3, 16, 16)
    x[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity in 1 of its 2 images"):
        explain(model, x)
