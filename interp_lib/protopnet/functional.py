"""The pure math of ProtoPNet: patch distances, similarities and min-pooling.

All functions are small, stateless and work on whatever device their inputs live on.
Shapes use ``N`` images, ``D`` latent channels, ``H x W`` latent map, ``P`` prototypes
of spatial size ``s x s``; distance maps have ``H' = H - s + 1`` rows and
``W' = W - s + 1`` columns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIMILARITIES = ("log", "linear", "cosine")


def _check_pair(z: torch.Tensor, prototypes: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor) or not isinstance(prototypes, torch.Tensor):
        raise TypeError(
            "z and prototypes must be torch tensors, got "
            f"{type(z).__name__} and {type(prototypes).__name__}."
        )
    if z.ndim != 4:
        raise ValueError(
            f"z must be a latent map of shape (N, D, H, W), got shape {tuple(z.shape)}."
        )
    if prototypes.ndim != 4:
        raise ValueError(
            f"prototypes must have shape (P, D, s, s), got shape {tuple(prototypes.shape)}."
        )
    if z.shape[1] != prototypes.shape[1]:
        raise ValueError(
            f"z has {z.shape[1]} channels but the prototypes have {prototypes.shape[1]}; "
            "the latent depth D must match the prototype depth."
        )
    if prototypes.shape[2] > z.shape[2] or prototypes.shape[3] > z.shape[3]:
        raise ValueError(
            f"prototypes of spatial size {tuple(prototypes.shape[2:])} do not fit in a "
            f"latent map of size {tuple(z.shape[2:])}; use smaller prototypes or larger "
            "images."
        )


def l2_patch_distances(z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between every prototype and every latent patch.

    Computed with convolutions as in the original ProtoPNet,
    ``relu(conv(z**2, ones) - 2 conv(z, P) + sum(P**2))``; the ReLU removes the tiny
    negative values that rounding produces where a patch equals a prototype.

    Parameters
    ----------
    z : Tensor, shape (N, D, H, W)
        Latent feature maps.
    prototypes : Tensor, shape (P, D, s, s)
        Prototype vectors.

    Returns
    -------
    Tensor, shape (N, P, H - s + 1, W - s + 1)
        ``d[n, p, h, w] = || z[n, :, h:h+s, w:w+s] - prototypes[p] ||^2``.
    """
    _check_pair(z, prototypes)
    ones = torch.ones_like(prototypes)
    z2 = F.conv2d(z * z, ones)
    zp = F.conv2d(z, prototypes)
    p2 = (prototypes * prototypes).sum(dim=(1, 2, 3)).view(1, -1, 1, 1)
    return F.relu(z2 - 2 * zp + p2)


def cosine_patch_distances(
    z: torch.Tensor, prototypes: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Cosine distance ``1 - cos(patch, prototype)`` for every prototype and patch.

    Parameters
    ----------
    z : Tensor, shape (N, D, H, W)
    prototypes : Tensor, shape (P, D, s, s)
    eps : float
        Guards the norms against zero.

    Returns
    -------
    Tensor, shape (N, P, H - s + 1, W - s + 1)
        Values in ``[0, 2]``; 0 where a patch points in the prototype's direction.
    """
    _check_pair(z, prototypes)
    ones = torch.ones_like(prototypes[:1])
    z_norm = F.conv2d(z * z, ones).clamp_min(0).sqrt().clamp_min(eps)
    p_norm = prototypes.flatten(1).norm(dim=1).clamp_min(eps).view(1, -1, 1, 1)
    cos = F.conv2d(z, prototypes) / (z_norm * p_norm)
    return (1 - cos).clamp(0, 2)


def patch_distances(z: torch.Tensor, prototypes: torch.Tensor, kind: str = "log") -> torch.Tensor:
    """The distance that goes with a similarity ``kind``.

    ``"log"`` and ``"linear"`` use :func:`l2_patch_distances`; ``"cosine"`` uses
    :func:`cosine_patch_distances`. Shapes as in :func:`l2_patch_distances`.
    """
    if kind == "cosine":
        return cosine_patch_distances(z, prototypes)
    if kind in ("log", "linear"):
        return l2_patch_distances(z, prototypes)
    raise ValueError(f"kind must be one of {list(SIMILARITIES)}, got {kind!r}.")


def similarity(distances: torch.Tensor, kind: str = "log", eps: float = 1e-4) -> torch.Tensor:
    """Turn distances into similarities (larger means more alike).

    ``"log"``: ``log((d + 1) / (d + eps))`` (the paper; 9.210340 at ``d = 0``);
    ``"linear"``: ``-d``; ``"cosine"``: ``1 - d`` for cosine distances (the cosine).

    Parameters
    ----------
    distances : Tensor, any shape
        Squared L2 distances (``"log"``, ``"linear"``) or cosine distances.
    kind : {"log", "linear", "cosine"}
    eps : float
        The ``eps`` of the log similarity.

    Returns
    -------
    Tensor, same shape as ``distances``.
    """
    if kind == "log":
        return torch.log((distances + 1) / (distances + eps))
    if kind == "linear":
        return -distances
    if kind == "cosine":
        return 1 - distances
    raise ValueError(f"kind must be one of {list(SIMILARITIES)}, got {kind!r}.")


def min_pool(distances: torch.Tensor) -> torch.Tensor:
    """Global min-pooling of distance maps.

    Parameters
    ----------
    distances : Tensor, shape (N, P, H, W)

    Returns
    -------
    Tensor, shape (N, P)
        The smallest distance of each prototype over all locations of each image.
    """
    if distances.ndim != 4:
        raise ValueError(f"distances must have shape (N, P, H, W), got {tuple(distances.shape)}.")
    return distances.amin(dim=(2, 3))


def argmin_location(distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest distance and its ``(h, w)`` location for every image and prototype.

    Parameters
    ----------
    distances : Tensor, shape (N, P, H, W)

    Returns
    -------
    values : Tensor, shape (N, P)
    location : Tensor, shape (N, P, 2), long
        ``(h, w)`` of the first minimum in row-major order.
    """
    if distances.ndim != 4:
        raise ValueError(f"distances must have shape (N, P, H, W), got {tuple(distances.shape)}.")
    width = distances.shape[3]
    values, flat = distances.flatten(2).min(dim=2)
    return values, torch.stack((flat // width, flat % width), dim=-1)


def gather_patches(
    z: torch.Tensor, sample: torch.Tensor, location: torch.Tensor, size: int
) -> torch.Tensor:
    """Cut ``s x s`` latent patches out of ``z`` (vectorised, no Python loop).

    Parameters
    ----------
    z : Tensor, shape (N, D, H, W)
    sample : Tensor, shape (M,), long
        Which image each patch comes from.
    location : Tensor, shape (M, 2), long
        Top-left ``(h, w)`` of each patch.
    size : int
        Patch size ``s``.

    Returns
    -------
    Tensor, shape (M, D, s, s)
    """
    offsets = torch.arange(size, device=z.device)
    rows = (location[:, 0, None] + offsets)[:, None, :, None]  # (M, 1, s, 1)
    cols = (location[:, 1, None] + offsets)[:, None, None, :]  # (M, 1, 1, s)
    chans = torch.arange(z.shape[1], device=z.device)[None, :, None, None]
    return z[sample[:, None, None, None], chans, rows, cols]


def paired_patch_distances(
    z: torch.Tensor, prototypes: torch.Tensor, kind: str = "log"
) -> torch.Tensor:
    """Distance of prototype ``m`` to every patch of map ``m`` (one map per prototype).

    Computed by direct differences, so a patch equal to its prototype gives exactly 0.

    Parameters
    ----------
    z : Tensor, shape (M, D, H, W)
    prototypes : Tensor, shape (M, D, s, s)
    kind : {"log", "linear", "cosine"}
        Squared L2 distance for ``"log"``/``"linear"``, cosine distance for ``"cosine"``.

    Returns
    -------
    Tensor, shape (M, H - s + 1, W - s + 1)
    """
    _check_pair(z, prototypes)
    if z.shape[0] != prototypes.shape[0]:
        raise ValueError(
            f"z and prototypes must pair up one to one, got {z.shape[0]} maps and "
            f"{prototypes.shape[0]} prototypes."
        )
    m, _, h, w = z.shape
    s = prototypes.shape[2]
    patches = F.unfold(z, s) if s > 1 else z.flatten(2)  # (M, D s s, L)
    protos = prototypes.flatten(1)[:, :, None]
    if kind == "cosine":
        cos = F.cosine_similarity(patches, protos, dim=1, eps=1e-8)
        out = (1 - cos).clamp(0, 2)
    elif kind in ("log", "linear"):
        out = ((patches - protos) ** 2).sum(dim=1)
    else:
        raise ValueError(f"kind must be one of {list(SIMILARITIES)}, got {kind!r}.")
    return out.reshape(m, h - s + 1, w - s + 1)
