"""Image filters for controls: remove the fine detail of a set of images.

:func:`low_pass` blurs images with a Gaussian kernel: pixel noise and fine texture (the
variations over one or two pixels) are removed, the large-scale content is kept. The
chapter on why the intrinsic dimension rises trains and measures networks on such
images to see whether the rise needs the fine detail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import check_images, check_real

__all__ = ["gaussian_kernel", "low_pass"]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of standard deviation ``sigma`` pixels, radius ``ceil(3 sigma)``.

    Returns
    -------
    torch.Tensor, shape (2 * radius + 1,), float32, summing to 1
    """
    sigma = check_real(sigma, "sigma", positive=True)
    radius = max(1, int(torch.tensor(3.0 * sigma).ceil()))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).float()


def low_pass(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Blur each channel with a separable Gaussian of ``sigma`` pixels (reflected borders).

    A linear filter that keeps constant images as they are (its kernel sums to 1) and
    damps a pattern of period ``p`` pixels by ``exp(-2 pi^2 sigma^2 / p^2)``: the
    one-pixel checkerboard (``p = 2``) by ``exp(-pi^2 sigma^2 / 2)``, 0.007 at
    ``sigma = 1``.

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), floating point
    sigma : float > 0, default 1.0
        The kernel's standard deviation in pixels; its radius ``ceil(3 sigma)`` must be
        smaller than ``H`` and ``W``.

    Returns
    -------
    torch.Tensor, shape (N, C, H, W), the input's dtype
    """
    images = check_images(images, "images")
    k = gaussian_kernel(sigma).to(images.device, images.dtype)
    r = (k.numel() - 1) // 2
    _, c, h, w = images.shape
    if r >= min(h, w):
        raise ValueError(
            f"sigma={sigma} needs a kernel of radius {r}, too large for {h}x{w} images; "
            "use a smaller sigma."
        )
    x = F.pad(images, (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
