"""luminance_gradient: the MNIST* control (a random linear brightness ramp per image)."""

from __future__ import annotations

import math

import pytest
import torch

from interp_lib.datasets import digits_tensors, luminance_gradient
from interp_lib.id import twonn


def _plane_fit_residual(diff: torch.Tensor) -> torch.Tensor:
    """Max residual of a least-squares plane a*u + b*v + c fitted to each (H, W) map."""
    n, h, w = diff.shape
    u = torch.linspace(-1, 1, w, dtype=torch.float64).expand(h, w)
    v = torch.linspace(-1, 1, h, dtype=torch.float64)[:, None].expand(h, w)
    A = torch.stack([u.flatten(), v.flatten(), torch.ones(h * w, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(A, diff.reshape(n, -1).T.double()).solution  # (3, N)
    return (A @ coef - diff.reshape(n, -1).T.double()).abs().max()


def test_adds_a_plane_shared_by_channels_with_the_drawn_parameters():
    x = torch.rand(20, 3, 6, 10)
    y, p = luminance_gradient(x, 2.0, offset=0.5, seed=3, return_parameters=True)
    assert y.shape == x.shape and y.dtype == x.dtype
    diff = y - x
    assert torch.allclose(diff[:, 0], diff[:, 2], atol=1e-6)  # same ramp on every channel
    assert _plane_fit_residual(diff[:, 0]) < 1e-5
    # the drawn parameters reproduce the ramp: corner (u=1, v=-1) and centre-ish values
    gx, gy = p.amplitude * torch.cos(p.angle), p.amplitude * torch.sin(p.angle)
    assert torch.allclose(diff[:, 0, 0, -1], gx - gy + p.offset, atol=1e-5)
    assert torch.allclose(diff[:, 0, -1, 0], -gx + gy + p.offset, atol=1e-5)
    assert float(p.amplitude.max()) <= 2.0 and float(p.amplitude.min()) >= 0
    assert float(p.offset.abs().max()) <= 0.5
    assert float(p.angle.min()) >= 0 and float(p.angle.max()) < 2 * math.pi


def test_seeded_and_not_in_place():
    x = torch.zeros(8, 1, 5, 5)
    a = luminance_gradient(x, 1.0, seed=0)
    assert torch.equal(a, luminance_gradient(x, 1.0, seed=0))
    assert not torch.equal(a, luminance_gradient(x, 1.0, seed=1))
    assert torch.count_nonzero(x) == 0
    assert torch.equal(luminance_gradient(x, 0.0, seed=0), x)


def test_float64_kept():
    x = torch.zeros(3, 1, 4, 4, dtype=torch.float64)
    assert luminance_gradient(x, 1.0).dtype == torch.float64


def test_ramps_of_one_image_have_intrinsic_dimension_two_or_three():
    base = digits_tensors(image_size=8)[0][:1].expand(1500, -1, -1, -1)
    assert abs(twonn(luminance_gradient(base, 1.0, seed=0).flatten(1)).dimension - 2) < 0.3
    three = luminance_gradient(base, 1.0, offset=1.0, seed=0).flatten(1)
    assert abs(twonn(three).dimension - 3) < 0.4


def test_strong_ramp_lowers_the_input_id_of_digits():
    x = digits_tensors(image_size=16)[0]
    plain = twonn(x.flatten(1)).dimension
    ramped = twonn(luminance_gradient(x, 50.0, seed=0).flatten(1)).dimension
    assert ramped < plain / 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"images": torch.zeros(4, 4)}, ValueError, "N, C, H, W"),
        ({"images": torch.zeros(2, 1, 4, 4, dtype=torch.long)}, TypeError, "floating"),
        ({"images": [[0.0]]}, TypeError, "torch.Tensor"),
        ({"strength": -1.0}, ValueError, "strength"),
        ({"strength": float("nan")}, ValueError, "strength"),
        ({"offset": "1"}, TypeError, "offset"),
    ],
)
def test_errors(kwargs, error, match):
    args = {"images": torch.zeros(2, 1, 4, 4), **kwargs}
    with pytest.raises(error, match=match):
        luminance_gradient(**args)


# --- luminance_offset: MNIST* as the authors' released code builds it -----------------


def test_offset_matches_the_released_recipe():
    from interp_lib.datasets import luminance_offset

    x = torch.rand(50, 1, 6, 6)
    y, u = luminance_offset(x, 300.0, seed=4, return_offsets=True)
    assert u.shape == (50,) and float(u.min()) >= 0 and float(u.max()) <= 300
    raw = x.double() + u.double()[:, None, None, None]  # u * (1, ..., 1) per image
    expected = (raw - raw.min()) / (raw.max() - raw.min())  # min-max of the whole set
    assert torch.allclose(y.double(), expected, atol=1e-6)
    assert float(y.min()) == 0.0 and float(y.max()) == 1.0
    # a digit keeps its shape (differences within an image scale by one common factor)
    scale = 1.0 / float(raw.max() - raw.min())
    assert torch.allclose(
        (y[3] - y[3].mean()).double(), (x[3] - x[3].mean()).double() * scale, atol=1e-6
    )


def test_offset_is_one_parameter_family_and_seeded():
    from interp_lib.datasets import luminance_offset

    same = torch.rand(1, 1, 8, 8).expand(300, 1, 8, 8).contiguous()
    y = luminance_offset(same, 300.0, seed=0)
    # identical images + one offset each: the set is a segment (ID 1)
    assert abs(twonn(y.flatten(1)).dimension - 1.0) < 0.2
    assert torch.equal(luminance_offset(same, seed=1), luminance_offset(same, seed=1))
    assert not torch.equal(luminance_offset(same, seed=1), luminance_offset(same, seed=2))
    unscaled = luminance_offset(same, 2.0, seed=0, rescale=False)
    assert float(unscaled.max()) > 1.0


def test_offset_lowers_the_input_id_of_digits():
    from interp_lib.datasets import luminance_offset

    x, _ = digits_tensors(image_size=16)
    x = (x - x.min()) / (x.max() - x.min())
    plain = twonn(x.flatten(1)).dimension
    star = twonn(luminance_offset(x, 300.0, seed=0).flatten(1)).dimension
    assert star < plain - 2  # 8.2 -> 5.2 on 1797 digits at 16 px


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"images": torch.rand(4, 6, 6)}, ValueError),
        ({"images": torch.rand(4, 1, 6, 6) * 2}, ValueError),
        ({"images": torch.rand(4, 1, 6, 6), "lam": -1.0}, ValueError),
        ({"images": [[0.0]]}, TypeError),
        ({"images": torch.zeros(4, 1, 2, 2), "lam": 0.0}, ValueError),
    ],
)
def test_offset_rejects_bad_input(kwargs, error):
    from interp_lib.datasets import luminance_offset

    with pytest.raises(error):
        luminance_offset(**kwargs)
