"""Explanations to compare with ProtoPNet, and the metrics that score them.

- :func:`attribute` -- one entry point for every method in :data:`interp_lib.baselines.METHODS` (captum's
  gradients, integrated gradients, occlusion, guided backprop, Grad-CAM..., CAM and
  ProtoPNet's own evidence), each returning a map ``(N, 1, H, W)`` at input resolution.
- :func:`cam`, :func:`grad_cam`, :func:`prototype_attribution` -- the methods by name.
- :mod:`interp_lib.baselines.metrics` -- deletion/insertion (RISE), pointing game,
  energy inside a mask; :func:`keypoints_to_masks` and :func:`boxes_to_region_masks` turn
  CUB keypoints and boxes into masks.
- :func:`mask_share` -- the chance level of the energy inside a mask. The prototype
  scores (consistency, stability, purity from part masks, and their chance levels) are
  ProtoPNet evaluation: :mod:`interp_lib.protopnet.prototype_metrics`.
- :func:`compare` -- run several methods over a dataset into a
  :class:`ComparisonResult` (tidy records, ``to_pandas()``); :func:`summarize`.
- :mod:`interp_lib.baselines.remove_debias` -- :func:`road` (Rong et al. 2022): remove
  and debias, deletion with noisy linear imputation instead of a constant (MoRF, LeRF).
- :mod:`interp_lib.baselines.captum_metrics` -- :func:`infidelity` and :func:`sensitivity`
  (Yeh et al. 2019) through ``captum.metrics``.
- :mod:`interp_lib.baselines.sanity` -- :func:`model_randomisation` (Adebayo et al. 2018):
  how much each explanation changes when the model's layers are randomised.
- :mod:`interp_lib.baselines.methods` -- the registry: one :class:`Method` record per
  method (what it needs, how it is computed), from which ``METHODS`` derives.

captum is imported only when a captum method runs (``pip install "interp_lib[captum]"``).
"""

from __future__ import annotations

from . import captum_metrics, methods, metrics, remove_debias, sanity
from .attribution import attribute
from .cam import cam, grad_cam
from .captum_metrics import infidelity, sensitivity
from .compare import ComparisonResult, compare, summarize
from .masks import boxes_to_region_masks, keypoints_to_masks
from .methods import METHODS, Method, get_method
from .metrics import deletion, energy_in_mask, insertion, mask_share, pointing_game
from .prototype import prototype_attribution
from .remove_debias import ROADResult, noisy_linear_imputation, road
from .sanity import RandomisationResult, model_randomisation

__all__ = [
    "METHODS",
    "ComparisonResult",
    "Method",
    "ROADResult",
    "RandomisationResult",
    "attribute",
    "boxes_to_region_masks",
    "cam",
    "captum_metrics",
    "compare",
    "deletion",
    "energy_in_mask",
    "get_method",
    "grad_cam",
    "infidelity",
    "insertion",
    "keypoints_to_masks",
    "mask_share",
    "methods",
    "metrics",
    "model_randomisation",
    "noisy_linear_imputation",
    "pointing_game",
    "prototype_attribution",
    "remove_debias",
    "road",
    "sanity",
    "sensitivity",
    "summarize",
]
