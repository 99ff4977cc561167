"""ProtoPNet's own evidence as a pixel attribution map (as used by FunnyBirds).

For image ``n`` and class ``c``, with ``S_j`` the similarity map of prototype ``j`` (the
log-similarity of every latent patch), ``s_j = max S_j`` its activation and ``W[c, j]``
the last-layer weight, the map is

    sum over prototypes j of class c of  U(S_j) * s_j * W[c, j]        (mode="map")
    sum over prototypes j of class c of  B(S_j) * s_j * W[c, j]        (mode="box")

where ``U`` upsamples to the image size (bicubic, as ProtoPNet draws its heat maps) and
``B`` is the 0/1 mask of the tight box around the pixels at or above the 95th percentile
of ``U(S_j)`` (ProtoPNet's visual box). Upsampling and boxes are
:mod:`interp_lib.protopnet.boxes` (``upsample_maps``, ``percentile_box``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from interp_lib.protopnet.boxes import boxes_to_masks, percentile_box, upsample_maps
from interp_lib.protopnet.model import is_protopnet

from .._plumbing import resolve_target
from .._validation import check_choice, check_images, check_real
from ._utils import (
    INTERPOLATE_MODES,
    warn_if_training,
)

MODES = ("map", "box")


def prototype_attribution(
    protopnet: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    mode: str = "map",
    percentile: float = 95.0,
    interpolate_mode: str = "bicubic",
) -> torch.Tensor:
    """ProtoPNet's evidence for ``target`` as a pixel map ``(N, 1, H, W)``.

    Parameters
    ----------
    protopnet : ProtoPNet
        An :class:`interp_lib.protopnet.ProtoPNet` (its ``forward_all`` similarity maps,
        ``last_layer`` and ``class_identity`` are used).
    inputs : Tensor, shape (N, C, H, W)
        Images.
    target : int, sequence of N ints, Tensor (N,), or None
        Class whose prototypes are summed; ``None`` takes the predicted class.
    mode : {"map", "box"}
        Upsampled similarity maps, or their 95th-percentile box masks.
    percentile : float
        Box threshold for ``mode="box"``, in ``[0, 100]``.
    interpolate_mode : {"bicubic", "bilinear", "nearest"}
        How similarity maps are resized to the image (bicubic, as ProtoPNet).

    Returns
    -------
    Tensor, shape (N, 1, H, W)
        Detached map. Only the target class's own prototypes contribute (their
        connections to other classes are ignored, as in FunnyBirds).
    """
    check_images(inputs, nonempty=True, finite=True)
    check_choice(mode, "mode", MODES)
    check_choice(interpolate_mode, "interpolate_mode", INTERPOLATE_MODES)
    percentile = check_real(percentile, "percentile", minimum=0, maximum=100)
    if not is_protopnet(protopnet):
        raise TypeError(
            f"prototype_attribution needs a ProtoPNet (interp_lib.protopnet.ProtoPNet), got "
            f"{type(protopnet).__name__}. Use attribute(..., method='grad_cam') for other models."
        )
    warn_if_training(protopnet)
    with torch.no_grad():
        out = protopnet.forward_all(inputs)
        t = resolve_target(protopnet, inputs, target, logits=out.logits)
        sims = out.similarities  # (N, P, h, w)
        act = sims.flatten(2).amax(2)  # (N, P)
        weight = protopnet.last_layer.weight  # (K, P)
        own = protopnet.class_identity.t().bool()  # (K, P)
        size = tuple(inputs.shape[-2:])
        maps = inputs.new_zeros(inputs.shape[0], 1, *size)
        for n in range(inputs.shape[0]):
            idx = own[t[n]].nonzero().flatten()
            if idx.numel() == 0:
                continue
            up = upsample_maps(sims[n, idx], size, interpolate_mode)  # (P_c, H, W)
            if mode == "box":
                up = boxes_to_masks(percentile_box(up, percentile), size).to(up.dtype)
            coef = act[n, idx] * weight[t[n], idx]
            maps[n, 0] = torch.einsum("phw,p->hw", up, coef.to(up.dtype))
    return maps
