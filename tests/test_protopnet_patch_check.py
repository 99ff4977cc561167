"""Xu-Darme et al. 2023's sanity check of ProtoPNet's patch visualisation, on hand-built
ProtoPNets whose answer is known: latent cell (i, j) reads only the 4 x 4 pixel block
(i, j + shift) of a 16 x 16 image. With shift 0 the upsampling box shows where the
similarity comes from; with shift 2 it shows a block the similarity does not depend on."""

from __future__ import annotations

import pytest
import torch
from _helpers import tiny_protopnet
from torch import nn

from interp_lib.protopnet import ProtoPNet
from interp_lib.protopnet.patch_check import box_iou_pairs, patch_visualisation_check


class Blocks(nn.Module):
    """Cell (i, j) of the 4 x 4 output sees pixel block (i, (j + shift) mod 4) only."""

    in_channels = 3
    out_channels = 4

    def __init__(self, shift: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 4, stride=4)
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(self.conv(x), shifts=-self.shift, dims=3)


def block_model(shift: int):
    torch.manual_seed(0)
    model = ProtoPNet(Blocks(shift), n_classes=2, n_prototypes_per_class=1, prototype_dim=4,
                      image_size=16).eval()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x = 0.1 * torch.rand(2, 3, 16, 16, generator=g)
    x[:, :, 4:8, 4:8] = torch.rand(3, 4, 4, generator=g)  # the patch: block (1, 1)
    with torch.no_grad():
        z = model.latent(x[:1])
        cell = (1, (1 - shift) % 4)  # the cell that reads block (1, 1)
        # near the patch's latent, not on it: at distance 0 the gradient of the squared
        # distance (and of the similarity) vanishes
        model.prototypes[0] = z[0, :, cell[0], cell[1], None, None] + 0.05
    return model, x


def test_honest_model_box_shows_the_evidence() -> None:
    model, x = block_model(0)
    res = patch_visualisation_check(model, x, prototypes=[0])
    assert res.iou.shape == (2, 1) and res.upsampling_boxes.shape == (2, 1, 4)
    # relevance lives in the patch block only; the box of its top 5 % lies inside it
    rb = res.relevance_boxes[:, 0]
    assert bool(((rb[:, :2] >= 4) & (rb[:, 2:] <= 8)).all())
    assert bool((res.iou > 0.3).all())
    assert bool((res.mass_inside > 0.5).all()) and bool(res.peak_inside.all())
    assert bool((res.mass_inside > 5 * res.box_share).all())
    assert bool((res.occluded_similarity < res.similarity - 0.2).all())  # the box mattered
    # CaBRNet-style smoothing of the relevance map spreads it, the peak stays in the box
    smooth = patch_visualisation_check(model, x, prototypes=[0], smooth_sigma=1.0)
    assert bool(smooth.peak_inside.all()) and bool(
        (smooth.mass_inside > 3 * smooth.box_share).all()
    )


@pytest.mark.parametrize("method", ["gradient", "gradient_x_input", "smoothgrad"])
def test_shifted_model_box_shows_the_wrong_place(method: str) -> None:
    model, x = block_model(2)
    # SmoothGrad at a small noise: at CaBRNet's 0.2 of the range the noise swamps this
    # dark toy image and moves the peak between cells
    res = patch_visualisation_check(
        model, x, prototypes=[0], method=method, keep_maps=True, noise=0.05
    )
    # the similarity peaks at cell (1, 3): the upsampling box is over columns 12-16,
    # but the gradient is only on block (1, 1) (columns 4-8)
    assert bool((res.upsampling_boxes[:, 0, 0] >= 9).all())
    assert bool((res.relevance.flatten(2).sum(2) > 0).all())
    if method != "smoothgrad":  # noisy copies may move the peak to a neighbouring cell
        assert float(res.relevance[..., 8:].abs().max()) == 0.0
    assert res.iou.max().item() == 0.0
    assert res.mass_inside.max().item() == 0.0 and not res.peak_inside.any()
    torch.testing.assert_close(res.occluded_similarity, res.similarity)


@pytest.mark.slow  # imports pandas
def test_box_iou_pairs_and_to_pandas() -> None:
    a = torch.tensor([[0, 0, 4, 4], [0, 0, 2, 2]])
    b = torch.tensor([[2, 2, 6, 6], [4, 4, 6, 6]])
    torch.testing.assert_close(box_iou_pairs(a, b), torch.tensor([4 / 28, 0.0]))
    model = tiny_protopnet().eval()
    x = torch.rand(2, 3, 16, 16)
    res = patch_visualisation_check(model, x, prototypes=[0, 3])
    df = res.to_pandas()
    assert len(df) == 4 and list(df["prototype"]) == [0, 3, 0, 3]
    assert {"iou", "mass_inside", "upsampling_x0", "relevance_y1"} <= set(df.columns)
    with pytest.raises(ValueError, match="prototypes must be indices"):
        patch_visualisation_check(model, x, prototypes=[99])
    with pytest.raises(TypeError, match="ProtoPNet"):
        patch_visualisation_check(nn.Conv2d(3, 3, 1), x)
