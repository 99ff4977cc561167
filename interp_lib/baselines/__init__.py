"""Explanations to compare with ProtoPNet, and the metrics that score them.

- :func:`attribute` -- one entry point for every method in :data:`interp_lib.baselines.METHODS` (captum's
  gradients, integrated gradients, occlusion, guided backprop, Grad-CAM..., CAM and
  ProtoPNet's own evidence), each returning a map ``(N, 1, H, W)`` at input resolution.
- :func:`cam`, :func:`grad_cam`, :func:`prototype_attribution` -- the methods by name.
- :mod:`interp_lib.baselines.metrics` -- deletion/insertion (RISE), pointing game,
  energy inside a mask; :func:`keypoints_to_masks` and :func:`boxes_to_region_masks` turn
  CUB keypoints and boxes into masks.
- :mod:`interp_lib.baselines.prototype_metrics` -- prototype consistency and stability
  (Huang et al. 2023) and purity (PIP-Net) from part masks.
- :func:`compare` -- run several methods over a dataset into a tidy table.

captum is imported only when a captum method runs.
"""

from __future__ import annotations

from . import metrics, prototype_metrics
from .attribution import METHODS, attribute
from .cam import cam, grad_cam
from .compare import compare, summarize
from .masks import boxes_to_region_masks, keypoints_to_masks
from .metrics import deletion, energy_in_mask, insertion, pointing_game
from .prototype import prototype_attribution

__all__ = [
    "METHODS",
    "attribute",
    "boxes_to_region_masks",
    "cam",
    "compare",
    "deletion",
    "energy_in_mask",
    "grad_cam",
    "insertion",
    "keypoints_to_masks",
    "metrics",
    "pointing_game",
    "prototype_attribution",
    "prototype_metrics",
    "summarize",
]
