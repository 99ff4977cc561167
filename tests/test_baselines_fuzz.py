"""Fuzzing the input validation of attribute, cam, grad_cam, the metrics and the prototype
metrics (hypothesis): every call either returns a correct result or raises our own
``ValueError``/``TypeError`` (raised from a frame inside ``interp_lib``), never an error
from inside torch or captum, never a silently wrong result.

The examples are derandomised (the same cases in every run); raise ``FUZZ_EXAMPLES`` to
search longer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from _fuzz import FUZZ, outcome
from _helpers import attribution_cnn, tiny_protopnet
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from interp_lib.baselines import (
    METHODS,
    attribute,
    cam,
    deletion,
    energy_in_mask,
    grad_cam,
    insertion,
    pointing_game,
    prototype_attribution,
)
from interp_lib.protopnet.prototype_metrics import (
    activation_peaks,
    box_part_presence,
    consistency,
    purity,
    stability,
)

pytestmark = pytest.mark.fuzz  # a few hundred attributions


# ---------------------------------------------------------------------------- inputs


def mostly(valid: Any, invalid: Any, p: float = 0.85) -> st.SearchStrategy:
    """``valid`` with probability about ``p``, else ``invalid`` (strategies or lists of
    values): each argument is usually fine, so that calls mixing one bad argument with
    good ones, and fully valid calls, are both frequent."""

    def strat(v: Any) -> st.SearchStrategy:
        return v if isinstance(v, st.SearchStrategy) else st.sampled_from(v)

    return st.integers(0, 99).flatmap(lambda i: strat(valid) if i < 100 * p else strat(invalid))


BAD_DTYPES = [torch.float64, torch.float16, torch.int64, torch.bool]


@st.composite
def tensors(draw, shapes, bad_shapes=(), dtype=torch.float32, bad_dtypes=BAD_DTYPES):  # fmt: skip
    """A tensor, usually of one of ``shapes`` and ``dtype``, sometimes of a bad shape or
    dtype, or (floating) holding a NaN or infinity."""
    shape = draw(mostly(list(shapes), list(bad_shapes) or list(shapes)))
    dtype = draw(mostly([dtype], list(bad_dtypes) or [dtype]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.rand(shape, generator=g)
    if dtype == torch.bool:
        return x > 0.5
    if not dtype.is_floating_point:
        return (x * 10).to(dtype)
    x = x.to(dtype)
    special = draw(mostly([None], [math.nan, math.inf, -math.inf], p=0.9))
    if special is not None and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = special
    return x


IMAGE_SHAPES = [(2, 3, 12, 12), (1, 3, 12, 12), (3, 3, 8, 10)]
BAD_IMAGE_SHAPES = [(0, 3, 12, 12), (2, 3, 1, 1), (2, 3, 0, 12), (2, 1, 12, 12),
                    (2, 4, 12, 12), (3, 12, 12), (1, 2, 3, 12, 12), (12, 12)]  # fmt: skip
images = mostly(
    tensors(IMAGE_SHAPES, BAD_IMAGE_SHAPES),
    [None, "image", 3.0, [[0.1, 0.2]], np.zeros((1, 3, 12, 12))],
    p=0.93,
)
targets = mostly(
    st.one_of(st.none(), st.integers(0, 2), st.lists(st.integers(0, 2), min_size=1, max_size=3)),
    st.one_of(
        st.integers(-3, 6),
        st.lists(st.integers(-1, 5), max_size=4),
        st.sampled_from([2.5, "cat", torch.tensor([0.5, 1.0]), [True, False], {"a": 1}]),
    ),
    p=0.8,
)


CNN = attribution_cnn()
#: 3 classes x 2 prototypes on a 1-stage small CNN, 12-px images, eval mode.
PROTO = tiny_protopnet(
    0, prototype_dim=4, image_size=12, widths=(4,), backbone_kwargs={"batch_norm": False}
).eval()
LAYERS = mostly(
    [None, "3", "4", "0", CNN[3]],
    ["5", "6", "7", "33", "input", "output", "", 3, nn.Conv2d(3, 3, 1)],
    p=0.7,
)


def is_valid_map(out: Any, x: Any) -> bool:
    return (
        isinstance(out, torch.Tensor)
        and out.shape == (x.shape[0], 1, *x.shape[-2:])
        and not out.requires_grad
        and bool(torch.isfinite(out).all())
    )


# ------------------------------------------------------------------------- attribute


@FUZZ
@given(
    x=images,
    target=targets,
    method=mostly(list(METHODS), ["gradcam", "", None], p=0.9),
    layer=LAYERS,
    extra=mostly(
        [{}, {"noise_tunnel": "smoothgrad", "nt_samples": 2}, {"seed": None},
         {"seed": torch.Generator().manual_seed(1)}, {"reduce": "l2"},
         {"interpolate_mode": "nearest"}],
        [{"reduce": "mean"}, {"interpolate_mode": "area"}, {"noise_tunnel": "blur"},
         {"nt_samples": 0}, {"percentile": 150.0}],
    ),
)  # fmt: skip
def test_fuzz_attribute(x: Any, target: Any, method: Any, layer: Any, extra: dict) -> None:
    model = PROTO if isinstance(method, str) and method.startswith("prototype") else CNN
    kw = dict(extra)
    if method == "integrated_gradients":
        kw["n_steps"] = 4
    if method != "prototype_box":
        kw.pop("percentile", None)
    out = outcome(attribute, model, x, target, method=method, layer=layer, **kw)
    if not isinstance(out, Exception):
        assert is_valid_map(out, x), (method, tuple(out.shape))
    assert CNN[1].inplace and CNN[4].inplace  # the user's model is never modified


@FUZZ
@given(
    x=images,
    target=targets,
    layer=mostly(["4", CNN[4], "3"], [None, "0", "6", "7", "33", "input", 3, nn.Conv2d(3, 3, 1)]),
    fc=mostly([None, "7", CNN[7]], ["3", "nope", 7]),
    upsample=st.booleans(),
    mode=mostly(["bilinear", "nearest", "bicubic"], ["linear", None]),
    which=st.sampled_from(["cam", "grad_cam"]),
)
def test_fuzz_cam_and_grad_cam(
    x: Any, target: Any, layer: Any, fc: Any, upsample: bool, mode: Any, which: str
) -> None:
    if which == "cam":
        out = outcome(
            cam, CNN, x, target, layer=layer, fc=fc, upsample=upsample, interpolate_mode=mode
        )
    else:
        out = outcome(
            grad_cam, CNN, x, target, layer=layer, upsample=upsample, interpolate_mode=mode
        )
    if not isinstance(out, Exception):
        if upsample:
            assert is_valid_map(out, x)
        else:
            assert out.ndim == 4 and out.shape[:2] == (x.shape[0], 1)
            assert bool(torch.isfinite(out).all())


@FUZZ
@given(
    x=images,
    target=targets,
    mode=mostly(["map", "box"], ["boxes", None]),
    percentile=mostly([95.0, 0.0, 100.0, 50], [-1.0, 101.0, math.nan, "95", True]),
)
def test_fuzz_prototype_attribution(x: Any, target: Any, mode: Any, percentile: Any) -> None:
    out = outcome(prototype_attribution, PROTO, x, target, mode=mode, percentile=percentile)
    if not isinstance(out, Exception):
        assert is_valid_map(out, x)


# --------------------------------------------------------------------------- metrics


class LinearEvidence(nn.Module):
    """Two classes; logit_1 = sum(w * x) (fast enough for hundreds of curves)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.rand(1, 1, 8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x * self.w).sum((1, 2, 3))
        return torch.stack([torch.zeros_like(z), z], dim=1)


LINEAR = LinearEvidence().eval()
MAP_SHAPES = [(2, 1, 8, 8), (2, 8, 8)]
BAD_MAP_SHAPES = [(2, 3, 8, 8), (1, 1, 8, 8), (2, 1, 4, 8), (0, 1, 8, 8), (2, 1, 0, 8), (8, 8)]
MAP_DTYPES = [torch.float64, torch.float16, torch.int64, torch.bool]


@FUZZ
@given(
    x=mostly(tensors([(2, 1, 8, 8)], [(0, 1, 8, 8), (2, 1, 8)], bad_dtypes=[torch.float64]),
             ["x"], p=0.95),
    saliency=mostly(tensors(MAP_SHAPES, BAD_MAP_SHAPES, bad_dtypes=MAP_DTYPES),
                    [None, "map", [[1.0]]], p=0.95),
    target=targets,
    step=mostly([None, 1, 7, 64, 1000], [0, -3, 1.5, "a"]),
    batch_size=mostly([64, 1, 5], [0, -1]),
    substrate=mostly(["zeros", "blur", "mean", 0.5, torch.zeros(1, 1, 8, 8)],
                     ["noise", None, torch.zeros(3, 3)]),
    kind=st.sampled_from([deletion, insertion]),
)  # fmt: skip
def test_fuzz_deletion_insertion(
    x: Any, saliency: Any, target: Any, step: Any, batch_size: Any, substrate: Any, kind: Any
) -> None:
    curve = outcome(
        kind, LINEAR, x, saliency, target, step=step, batch_size=batch_size, substrate=substrate
    )
    if not isinstance(curve, Exception):
        assert curve.auc.shape == (x.shape[0],)
        assert bool(((curve.auc >= 0) & (curve.auc <= 1)).all())
        assert curve.fractions[0] == 0 and curve.fractions[-1] == 1


@FUZZ
@given(
    saliency=mostly(tensors(MAP_SHAPES, BAD_MAP_SHAPES, bad_dtypes=MAP_DTYPES),
                    [None, "map", [[[1.0, 2.0]]]], p=0.95),
    masks=mostly(tensors(MAP_SHAPES, BAD_MAP_SHAPES, torch.bool, [torch.float32, torch.int64]),
                 [None, "mask"], p=0.95),
    tolerance=mostly([0, 1, 3], [-3, 1.5, True, "2"]),
    positive=st.booleans(),
)  # fmt: skip
def test_fuzz_localisation(saliency: Any, masks: Any, tolerance: Any, positive: bool) -> None:
    hits = outcome(pointing_game, saliency, masks, tolerance=tolerance)
    if not isinstance(hits, Exception):
        n = saliency.shape[0]
        assert hits.shape == (n,)
        assert all(v in (0.0, 1.0) or math.isnan(v) for v in hits.tolist())
    energy = outcome(energy_in_mask, saliency, masks, positive=positive)
    if not isinstance(energy, Exception):
        ok = energy[~torch.isnan(energy)]
        assert bool(((ok >= -1e-6) & (ok <= 1 + 1e-6)).all())


# ---------------------------------------------------------------- prototype metrics

presences = mostly(
    tensors([(6, 4, 3)], [(6, 4), (0, 4, 3), (6, 0, 3), (5, 4, 3), (6, 4, 3, 1)], torch.bool,
            [torch.float32, torch.int64]),
    [None, [[True]]],
    p=0.95,
)  # fmt: skip
labels_ = mostly(
    st.one_of(tensors([(6,)], [(5,), (6, 1), ()], torch.int64, [torch.float32]),
              st.just([0, 1, 0, 1, 0, 1])),
    [None, "labels"],
    p=0.95,
)  # fmt: skip
classes_ = mostly(
    st.one_of(tensors([(4,)], [(3,), (4, 1)], torch.int64, [torch.float32]),
              st.just([0, 0, 1, 2])),
    [None],
    p=0.95,
)  # fmt: skip


@FUZZ
@given(
    presence=presences,
    noisy=presences,
    activations=mostly(tensors([(6, 4)], [(6, 3), (6,)]), [None], p=0.95),
    labels=labels_,
    classes=classes_,
    threshold=mostly([0.8, 1.0, 0.5], [0.0, 1.5, -0.1, "x"]),
    k=mostly([1, 3, 10], [0, -2, 2.5]),
    own=st.booleans(),
)
def test_fuzz_consistency_stability_purity(
    presence: Any, noisy: Any, activations: Any, labels: Any, classes: Any, threshold: Any,
    k: Any, own: bool,
) -> None:  # fmt: skip
    for fn, args, kw in (
        (consistency, (presence, labels, classes), {"threshold": threshold}),
        (stability, (presence, noisy, labels, classes), {}),
        (purity, (presence, activations), {"k": k, "labels": labels if own else None,
                                          "prototype_classes": classes if own else None}),
    ):  # fmt: skip
        score = outcome(fn, *args, **kw)
        if not isinstance(score, Exception):
            per = score.per_prototype
            assert per.shape == (presence.shape[1],)
            ok = per[~torch.isnan(per)]
            assert bool(((ok >= 0) & (ok <= 1)).all())


@FUZZ
@given(
    locations=mostly(
        tensors([(2, 5, 2)], [(2, 5), (3, 5, 2), (2, 5, 3)], torch.int64, [torch.float32]),
        [None], p=0.95,
    ),
    part_masks=mostly(tensors([(2, 3, 9, 7)], [(2, 9, 7), (2, 3, 0, 7)], torch.bool, [torch.bool]),
                      [None], p=0.95),
    box_size=mostly([None, 1, 4, 100], [0, -1, 2.5]),
    overlap=mostly([0.0, 0.3, 1.0], [-0.5, 2.0, "a"]),
    maps=tensors([(2, 5, 3, 3)], [(2, 5, 3), (2, 5, 0, 3)], bad_dtypes=[torch.float64]),
    size=mostly([(9, 7), (4, 4)], [(0, 7), (9,), ("a", 3)]),
    chunk_size=mostly([256, 2], [0, -1]),
)  # fmt: skip
def test_fuzz_box_part_presence_and_peaks(
    locations: Any, part_masks: Any, box_size: Any, overlap: Any, maps: Any, size: Any,
    chunk_size: Any,
) -> None:  # fmt: skip
    pres = outcome(box_part_presence, locations, part_masks, box_size=box_size, overlap=overlap)
    if not isinstance(pres, Exception):
        assert pres.dtype == torch.bool and pres.shape == (2, 5, part_masks.shape[1])
    peaks = outcome(activation_peaks, maps, size, chunk_size=chunk_size)
    if not isinstance(peaks, Exception):
        values, loc = peaks
        assert values.shape == (2, 5) and loc.shape == (2, 5, 2)
        assert bool((loc[..., 0] < size[0]).all()) and bool((loc[..., 1] < size[1]).all())
