r"""Random brightness changes added to every image: the MNIST* control of Ansuini et al.

:func:`luminance_offset` is MNIST* as the authors' released code builds it
(``scripts/mnist/create_mnist_with_gradient.py`` of ansuini/IntrinsicDimDeep): pixels in
:math:`[0, 1]`, image :math:`i` gets :math:`u_i (1, \dots, 1)` added with
:math:`u_i \sim U(0, \lambda)`, :math:`\lambda = 300`, then the whole set is min-max
rescaled to :math:`[0, 1]` (a training set and a test set each on their own). It is a
one-parameter brightness family. :func:`luminance_gradient` is a richer variant (a
spatial ramp with a random direction), kept for comparison.

Ansuini et al. (2019) add a random luminance gradient to each MNIST image ("MNIST*") to
show that the ID of the *input* says little about the ID the network arrives at: a
smooth brightness ramp changes the pixels a lot, but it is described by a couple of
numbers, and a trained network learns to ignore it.

Image :math:`i` (pixel coordinates :math:`u, v \in [-1, 1]`, :math:`u` along the width)
becomes

.. math:: x_i(u, v) + a_i (\cos\theta_i\, u + \sin\theta_i\, v) + b_i,

with :math:`\theta_i \sim U[0, 2\pi)`, :math:`a_i \sim U[0, \text{strength}]` and
:math:`b_i \sim U[-\text{offset}, \text{offset}]`, the same ramp on every channel. The
ramps form a 2-dimensional family (3-dimensional with an offset): on a set of identical
images the result has intrinsic dimension 2 (or 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validation import check_real, make_generator

__all__ = ["GradientParameters", "luminance_gradient", "luminance_offset"]


@dataclass(frozen=True)
class GradientParameters:
    """The ramp drawn for each image by :func:`luminance_gradient`.

    Attributes
    ----------
    angle : torch.Tensor, shape (N,)
        Direction of increasing brightness, radians in [0, 2 pi) (0 = to the right).
    amplitude : torch.Tensor, shape (N,)
        Slope per half image side, in [0, strength].
    offset : torch.Tensor, shape (N,)
        Added constant, in [-offset, offset] (zeros when ``offset=0``).
    """

    angle: torch.Tensor
    amplitude: torch.Tensor
    offset: torch.Tensor


def luminance_gradient(
    images: torch.Tensor,
    strength: float = 1.0,
    *,
    offset: float = 0.0,
    seed: int | torch.Generator | None = 0,
    return_parameters: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, GradientParameters]:
    """Add a seeded random linear brightness ramp to each image.

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating point
        Not modified.
    strength : float >= 0, default 1.0
        Largest ramp amplitude, in pixel units: the ramp changes brightness by up to
        ``strength`` from the image centre to the middle of an edge.
    offset : float >= 0, default 0.0
        Largest random constant shift of the brightness.
    seed : int, torch.Generator or None, default 0
        Same seed, same ramps (drawn on the CPU, so identical on every device).
    return_parameters : bool, default False
        Also return the :class:`GradientParameters`.

    Returns
    -------
    torch.Tensor, shape (N, C, H, W)
        Same dtype and device as ``images``; values are not clipped.
    GradientParameters
        Only if ``return_parameters``.

    Examples
    --------
    >>> x = torch.zeros(4, 1, 8, 8)
    >>> luminance_gradient(x, 0.5, seed=1).shape
    torch.Size([4, 1, 8, 8])
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}.")
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (N, C, H, W), got {tuple(images.shape)}; "
            "add a channel axis with images.unsqueeze(1) for grey images."
        )
    if not images.is_floating_point():
        raise TypeError(
            f"images must be floating point, got {images.dtype}; convert with .float()."
        )
    strength = check_real(strength, "strength", minimum=0)
    offset = check_real(offset, "offset", minimum=0)
    n, _, h, w = images.shape
    gen = make_generator(seed)
    angle = torch.rand(n, generator=gen, dtype=torch.float64) * (2 * math.pi)
    amplitude = torch.rand(n, generator=gen, dtype=torch.float64) * strength
    shift = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * offset
    u = torch.linspace(-1.0, 1.0, w, dtype=torch.float64)
    v = torch.linspace(-1.0, 1.0, h, dtype=torch.float64)
    gx = (amplitude * torch.cos(angle))[:, None, None]  # (N, 1, 1)
    gy = (amplitude * torch.sin(angle))[:, None, None]
    ramp = gx * u[None, None, :] + gy * v[None, :, None] + shift[:, None, None]  # (N, H, W)
    out = images + ramp.unsqueeze(1).to(device=images.device, dtype=images.dtype)
    if return_parameters:
        return out, GradientParameters(angle.float(), amplitude.float(), shift.float())
    return out


def luminance_offset(
    images: torch.Tensor,
    lam: float = 300.0,
    *,
    seed: int | torch.Generator | None = 0,
    rescale: bool = True,
    return_offsets: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """MNIST* as in the authors' released code: a random uniform brightness offset per image.

    Image ``i`` becomes ``images[i] + u_i`` with ``u_i ~ U(0, lam)`` (the same ``u_i`` on
    every pixel and channel); then, if ``rescale``, the whole set is min-max rescaled to
    ``[0, 1]`` with its own global minimum and maximum. Apply it to a training set and a
    test set separately, as the released code does.

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating point
        Pixels in ``[0, 1]`` (the released code divides MNIST's bytes by 255). Not modified.
    lam : float >= 0, default 300.0
        Largest offset, in units of the pixel range (the released code's ``lambdavar``).
    seed : int, torch.Generator or None, default 0
        Seed of the offsets (drawn on the CPU in float64).
    rescale : bool, default True
        Min-max rescale the whole set to ``[0, 1]`` afterwards.
    return_offsets : bool, default False
        Also return the offsets ``u``, shape (N,).

    Returns
    -------
    torch.Tensor, shape (N, C, H, W)
        Same dtype and device as ``images``. After the rescaling a digit's contrast is
        about ``1 / (1 + lam)`` of the range, and its mean brightness is ``u_i / (1 + lam)``
        up to the digit's own pixels.
    torch.Tensor, shape (N,)
        Only if ``return_offsets``.

    Raises
    ------
    ValueError
        Images outside ``[0, 1]``, a negative or non-finite ``lam``, or a constant set
        (nothing to rescale).

    Examples
    --------
    >>> x = torch.rand(8, 1, 4, 4)
    >>> y = luminance_offset(x, seed=0)
    >>> float(y.min()), float(y.max())
    (0.0, 1.0)
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}.")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a floating (N, C, H, W) tensor, got {tuple(images.shape)} "
            f"{images.dtype}; add a channel axis with images.unsqueeze(1) and call .float()."
        )
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"images must have pixels in [0, 1] as in the released code, got "
            f"[{float(images.min()):.3g}, {float(images.max()):.3g}]; divide bytes by 255 "
            "and apply any normalisation afterwards."
        )
    lam = check_real(lam, "lam", minimum=0)
    gen = make_generator(seed)
    u = torch.rand(images.shape[0], generator=gen, dtype=torch.float64) * lam
    out = images.double() + u.to(images.device)[:, None, None, None]
    if rescale:
        low, high = out.min(), out.max()
        if not high > low:
            raise ValueError("the offset images are all equal: nothing to rescale.")
        out = (out - low) / (high - low)
    out = out.to(images.dtype)
    if return_offsets:
        return out, u.to(images.dtype)
    return out
