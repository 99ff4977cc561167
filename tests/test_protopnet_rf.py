"""Receptive-field arithmetic of the trunks (REFERENCE.md section 3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp_lib.networks import (
    TORCHVISION_INFO,
    available_backbones,
    build_backbone,
    infer_out_channels,
    small_cnn,
)
from interp_lib.protopnet.receptive_field import (
    ReceptiveField,
    layer_receptive_field,
    module_receptive_field,
    receptive_field_box,
)


def _meta_trunk(name):
    with torch.device("meta"):  # no weight initialisation cost, shapes still work
        return build_backbone(name)


def test_vgg19_at_224_gives_the_paper_receptive_field():
    rf = module_receptive_field(_meta_trunk("vgg19"), 224)
    assert rf == ReceptiveField(n=7, jump=32, size=268, start=16)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet34", "resnet50", "densenet121"])
def test_rf_map_size_matches_the_real_output(name):
    trunk = _meta_trunk(name)
    for size in (224, 97):
        out = trunk(torch.empty(1, 3, size, size, device="meta"))
        rf = module_receptive_field(trunk, size)
        assert rf.n == out.shape[-1], (name, size)


def test_small_cnn_rf_by_hand_and_map_size():
    trunk = small_cnn(widths=(4, 8, 16))
    # conv3 -> 3, pool -> 4 (j=2); conv3 -> 8, pool -> 10 (j=4); conv3 -> 18, pool -> 22
    assert module_receptive_field(trunk, 64) == ReceptiveField(8, 8, 22, 4)
    for size in (64, 50):
        assert (
            module_receptive_field(trunk, size).n == trunk(torch.rand(1, 3, size, size)).shape[-1]
        )


def test_small_cnn_without_the_last_pool_has_half_the_stride():
    trunk = small_cnn(widths=(4, 8, 16), pool_last=False)
    # as above, without the last pool: conv3 -> 18 px, jump 4, a 16 x 16 map at 64 px
    assert module_receptive_field(trunk, 64) == ReceptiveField(16, 4, 18, 2)
    assert trunk(torch.rand(1, 3, 64, 64)).shape[-2:] == (16, 16)
    assert trunk.reduction == 4 and trunk.out_channels == 16
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in list(trunk.children())[-3:])


def test_layer_formulas_and_residual_shortcuts_skipped():
    rf = layer_receptive_field(ReceptiveField(10, 2, 5, 1.5), kernel=3, stride=2, padding=0)
    assert rf == ReceptiveField(4, 4, 9, 3.5)
    block = nn.Sequential()
    block.add_module("conv", nn.Conv2d(1, 1, 3, padding=1))
    block.add_module("downsample", nn.Conv2d(1, 1, 7, stride=4))
    assert module_receptive_field(block, 8) == ReceptiveField(8, 1, 3, 0.5)


def test_unsupported_layers_fail_clearly():
    with pytest.raises(ValueError, match="adaptive"):
        module_receptive_field(nn.Sequential(nn.AdaptiveAvgPool2d(1)), 8)
    with pytest.raises(ValueError, match="non-square"):
        module_receptive_field(nn.Sequential(nn.Conv2d(1, 1, (3, 1))), 8)


def test_receptive_field_boxes_vgg19():
    rf = ReceptiveField(7, 32, 268, 16)
    loc = torch.tensor([[0, 0], [6, 6], [3, 1]])
    boxes = receptive_field_box(rf, loc, 224)  # (x0, y0, x1, y1)
    # centre 16 -> (16-134, 16+134) clipped; centre 208 -> (74, 342) clipped; 112 / 48
    # the original code's order (y0, y1, x0, x1):
    original = [[0, 150, 0, 150], [74, 224, 74, 224], [0, 224, 0, 182]]
    assert boxes[:, [1, 3, 0, 2]].tolist() == original
    assert boxes.tolist() == [[0, 0, 150, 150], [74, 74, 224, 224], [0, 0, 182, 224]]


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in available_backbones() if n != "small_cnn"])
def test_torchvision_trunks_declare_their_real_geometry(name):
    trunk = _meta_trunk(name)
    out = trunk(torch.empty(1, 3, 224, 224, device="meta"))
    channels, reduction = TORCHVISION_INFO[name]
    assert (trunk.out_channels, trunk.reduction, trunk.in_channels) == (channels, reduction, 3)
    assert out.shape[1] == channels and out.shape[-1] == 224 // reduction
    assert infer_out_channels(nn.Sequential(*trunk.children())) == channels  # the fallback
