"""Which visual characteristics a prototype responds to (Nauta et al. 2021).

"This Looks Like That, Because ... Explaining Prototypes for Interpretable Image
Recognition" (Nauta, Jutte, Provoost, Seifert; XKDD @ ECML-PKDD 2021) explains a
prototype by how its similarity changes when one characteristic of the image is changed:
hue, shape, texture, contrast, saturation (and brightness in their code). Following their
released code (``M-Nauta/Explaining_Prototypes``: ``preprocessing/create_modified_datasets
.py``, ``mod_values.py``, ``prototype_activation.py``):

- the whole image is perturbed in pixel space (values in ``[0, 1]``), then normalised for
  the model (``normalize``);
- ``delta = similarity(original) - similarity(perturbed)``, both at the patch location
  that is nearest to the prototype **in the original image** (their
  ``forward_particular_patch``); a positive delta means the perturbation removed some of
  what the prototype matched;
- a prototype's global importance of a characteristic is the mean of ``delta`` over the
  images weighted by the original similarity (their ``weighted_mean``).

The perturbations and their default levels (their ``mod_values.py``):

- ``hue``: ``adjust_hue(0.1)`` (torchvision; their ``ColorJitter(hue=[0.1, 0.1])``);
- ``contrast``: ``adjust_contrast(0.45)``; ``saturation``: ``adjust_saturation(0.7)``;
  ``brightness``: ``adjust_brightness(0.8)``;
- ``shape``: their sinusoidal warp with amplitude ``A = 4`` and frequency ``w = 0.05``:
  row ``i`` is rolled along the width by ``int(A sin(pi i w))`` pixels, then column ``j``
  along the height by ``int(A sin(pi j w))`` (:func:`~interp_lib.protopnet.characteristics.sine_warp`, equal to their
  ``modify_shape``);
- ``texture``: they denoise with OpenCV's ``fastNlMeansDenoisingColored(h=4, hColor=4,
  templateWindowSize=7, searchWindowSize=21)`` on 8-bit images. OpenCV is not a
  dependency here: :func:`~interp_lib.protopnet.characteristics.non_local_means` follows
  its algorithm (CIELAB, lightness and colour denoised apart, the same windows and
  strengths) in floating point; ``tests/test_protopnet_characteristics.py`` measures how
  close it comes to OpenCV's.

Levels are the perturbation's parameter (``levels={"hue": 0.2}``); a custom perturbation
is any callable ``images (N, 3, H, W) in [0, 1] -> images``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from .._plumbing import evaluating, require
from .._validation import check_images, check_int
from . import functional as PF
from .model import is_protopnet

__all__ = [
    "DEFAULT_LEVELS",
    "PERTURBATIONS",
    "CharacteristicImportance",
    "lab8_to_rgb",
    "non_local_means",
    "perturb",
    "prototype_characteristics",
    "rgb_to_lab8",
    "sine_warp",
]

#: The five characteristics of the paper (brightness, in their code, is also available).
PERTURBATIONS = ("hue", "shape", "texture", "contrast", "saturation")

#: Nauta et al.'s ``mod_values.py``.
DEFAULT_LEVELS: dict[str, Any] = {
    "hue": 0.1,
    "contrast": 0.45,
    "saturation": 0.7,
    "brightness": 0.8,
    "shape": (4, 0.05),
    "texture": 4.0,
}


def sine_warp(images: torch.Tensor, amplitude: float = 4, frequency: float = 0.05) -> torch.Tensor:
    """Nauta et al.'s shape perturbation: roll rows, then columns, by a sine of their index.

    Row ``i`` moves right by ``int(amplitude * sin(pi * i * frequency))`` pixels (cyclic,
    as ``np.roll``), then column ``j`` moves down by ``int(amplitude * sin(pi * j *
    frequency))``, ``int`` truncating towards zero as in their code.

    Parameters
    ----------
    images : Tensor, shape (..., H, W)

    Returns
    -------
    Tensor, shape (..., H, W)
    """
    h, w = images.shape[-2:]
    dev = images.device

    def shifts(n: int) -> torch.Tensor:
        return torch.tensor(
            [math.trunc(amplitude * math.sin(math.pi * i * frequency)) for i in range(n)],
            device=dev,
        )

    cols = torch.arange(w, device=dev)
    rows = torch.arange(h, device=dev)
    # rows: out[i, j] = in[i, (j - s_i) mod W]
    src = (cols[None, :] - shifts(h)[:, None]) % w  # (H, W)
    out = images.gather(-1, src.expand(*images.shape[:-2], h, w))
    # columns (of the row-rolled image): out2[i, j] = out[(i - t_j) mod H, j]
    src = (rows[:, None] - shifts(w)[None, :]) % h  # (H, W)
    return out.gather(-2, src.expand(*images.shape[:-2], h, w))


_RGB2XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > 0.008856, t.clamp(min=1e-12) ** (1 / 3), 7.787 * t + 16 / 116)


def rgb_to_lab8(images: torch.Tensor) -> torch.Tensor:
    """sRGB in ``[0, 1]`` to OpenCV's 8-bit CIELAB scale (``L * 255 / 100``, ``a + 128``,
    ``b + 128``; D65 white), as floats. Shape ``(N, 3, H, W)`` both ways."""
    lin = torch.where(images <= 0.04045, images / 12.92, ((images + 0.055) / 1.055) ** 2.4)
    m = _RGB2XYZ.to(images)
    xyz = torch.einsum("ij,njhw->nihw", m, lin) / _WHITE.to(images)[:, None, None]
    fx, fy, fz = _lab_f(xyz[:, 0]), _lab_f(xyz[:, 1]), _lab_f(xyz[:, 2])
    y = xyz[:, 1]
    big_l = torch.where(y > 0.008856, 116 * fy - 16, 903.3 * y)
    return torch.stack([big_l * 255 / 100, 500 * (fx - fy) + 128, 200 * (fy - fz) + 128], 1)


def lab8_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_lab8` (clamped to ``[0, 1]``)."""
    big_l = lab[:, 0] * 100 / 255
    fy = (big_l + 16) / 116
    fx = fy + (lab[:, 1] - 128) / 500
    fz = fy - (lab[:, 2] - 128) / 200

    def inv(f: torch.Tensor) -> torch.Tensor:
        return torch.where(f > 0.206893, f**3, (f - 16 / 116) / 7.787)

    y = torch.where(big_l > 903.3 * 0.008856, fy**3, big_l / 903.3)
    xyz = torch.stack([inv(fx), y, inv(fz)], 1) * _WHITE.to(lab)[:, None, None]
    lin = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB2XYZ.double()).to(lab), xyz)
    lin = lin.clamp(0, 1)
    rgb = torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return rgb.clamp(0, 1)


def _nlm(x: torch.Tensor, h: float, template: int, search: int) -> torch.Tensor:
    """Non-local means of ``(N, C, H, W)`` values on the 0-255 scale: weights
    ``exp(-d2 / h^2)`` with ``d2`` the mean squared difference over the template and the
    channels, weights below 0.001 dropped (OpenCV's ``WEIGHT_THRESHOLD``)."""
    n, _, hh, ww = x.shape
    r, t = search // 2, template // 2
    pad = r + t
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    centre = xp[..., r : r + hh + 2 * t, r : r + ww + 2 * t]
    num = torch.zeros_like(x)
    den = torch.zeros(n, 1, hh, ww, dtype=x.dtype, device=x.device)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            other = xp[..., r + dy : r + dy + hh + 2 * t, r + dx : r + dx + ww + 2 * t]
            d2 = ((centre - other) ** 2).mean(1, keepdim=True)
            d2 = F.avg_pool2d(d2, template, stride=1)  # mean over the template
            wgt = torch.exp(-d2 / (h * h))
            wgt = torch.where(wgt < 1e-3, torch.zeros_like(wgt), wgt)
            num += wgt * other[..., t : t + hh, t : t + ww]
            den += wgt
    return num / den


def non_local_means(
    images: torch.Tensor,
    h: float = 4.0,
    h_color: float | None = None,
    template: int = 7,
    search: int = 21,
) -> torch.Tensor:
    """Non-local means denoising of colour images in ``[0, 1]``, after OpenCV's
    ``fastNlMeansDenoisingColored``.

    As OpenCV: the image goes to 8-bit-scaled CIELAB (:func:`rgb_to_lab8`); the lightness
    is denoised with strength ``h`` and the two colour channels together with
    ``h_color`` (default ``h``); each pixel becomes the mean of the pixels of its
    ``search x search`` window weighted by ``exp(-d2 / h^2)``, ``d2`` the mean squared
    difference between the two pixels' ``template x template`` patches (and channels),
    weights below 0.001 dropped; back to sRGB. Unlike OpenCV: floating point throughout
    (OpenCV rounds to 8 bits and tabulates the weights), exact patch distances, and
    reflected borders. Removes fine texture and keeps edges.

    Parameters
    ----------
    images : Tensor, shape (N, 3, H, W)
    h, h_color : float
        Filter strengths on the 0-255 scale (OpenCV's ``h`` and ``hColor``; both 4 in
        Nauta et al.).
    template, search : int
        Odd window sides (OpenCV's defaults 7 and 21).

    Returns
    -------
    Tensor, shape (N, 3, H, W)
    """
    check_images(images, "images", nonempty=True)
    if images.shape[1] != 3:
        raise ValueError(f"images must have 3 (RGB) channels, got {images.shape[1]}.")
    template = check_int(template, "template")
    search = check_int(search, "search")
    if template % 2 == 0 or search % 2 == 0:
        raise ValueError(f"template and search must be odd, got {template} and {search}.")
    hh, ww = images.shape[-2:]
    if search // 2 + template // 2 >= min(hh, ww):
        raise ValueError(
            f"images of {hh}x{ww} are too small for search={search} and template={template}."
        )
    h_color = h if h_color is None else h_color
    lab = rgb_to_lab8(images.clamp(0, 1))
    light = _nlm(lab[:, :1], float(h), template, search)
    colour = _nlm(lab[:, 1:], float(h_color), template, search)
    return lab8_to_rgb(torch.cat([light, colour], 1)).to(images.dtype)


def perturb(images: torch.Tensor, kind: str, level: Any = None) -> torch.Tensor:
    """One of Nauta et al.'s perturbations of images in ``[0, 1]``.

    Parameters
    ----------
    images : Tensor, shape (N, 3, H, W)
        Pixel values in ``[0, 1]`` (not normalised).
    kind : {"hue", "shape", "texture", "contrast", "saturation", "brightness"}
    level : optional
        The perturbation's parameter (default :data:`~interp_lib.protopnet.characteristics.DEFAULT_LEVELS`): the factor of
        torchvision's ``adjust_*``, ``(amplitude, frequency)`` for ``shape``, ``h`` for
        ``texture``.

    Returns
    -------
    Tensor, shape (N, 3, H, W)
    """
    if kind not in DEFAULT_LEVELS:
        raise ValueError(f"kind must be one of {sorted(DEFAULT_LEVELS)}, got {kind!r}.")
    level = DEFAULT_LEVELS[kind] if level is None else level
    if kind == "hue":
        return TF.adjust_hue(images, float(level))
    if kind == "contrast":
        return TF.adjust_contrast(images, float(level))
    if kind == "saturation":
        return TF.adjust_saturation(images, float(level))
    if kind == "brightness":
        return TF.adjust_brightness(images, float(level))
    if kind == "shape":
        amplitude, frequency = level
        return sine_warp(images, amplitude, frequency)
    return non_local_means(images, float(level), float(level))


@dataclass
class CharacteristicImportance:
    """How each prototype's similarity changes under each perturbation.

    Attributes
    ----------
    perturbations : list of str
    prototypes : Tensor, shape (P,), long
    similarity : Tensor, shape (N, P)
        Similarity of each prototype to its nearest patch of each original image.
    delta : Tensor, shape (K, N, P)
        ``similarity - similarity of the perturbed image at the same patch``.
    """

    perturbations: list[str]
    prototypes: torch.Tensor
    similarity: torch.Tensor
    delta: torch.Tensor

    @property
    def importance(self) -> torch.Tensor:
        """Nauta et al.'s global score, shape (K, P): the mean of ``delta`` over the
        images weighted by the original similarity (NaN if all weights are 0)."""
        w = self.similarity[None]
        return (self.delta * w).sum(1) / w.sum(1)

    def to_pandas(self, *, per_image: bool = False) -> Any:
        """A tidy table: ``prototype, perturbation, importance`` (one row per pair), or
        with ``per_image=True`` their local table ``image, prototype, perturbation,
        delta, orig_similarity``."""
        pd = require("pandas", "CharacteristicImportance.to_pandas")
        k, n, p = self.delta.shape
        protos = self.prototypes.cpu().numpy()
        if not per_image:
            imp = self.importance.cpu()
            return pd.DataFrame(
                {
                    "prototype": [int(protos[j]) for i in range(k) for j in range(p)],
                    "perturbation": [self.perturbations[i] for i in range(k) for _ in range(p)],
                    "importance": imp.flatten().numpy(),
                }
            )
        return pd.DataFrame(
            {
                "image": torch.arange(n).repeat_interleave(p).repeat(k).numpy(),
                "prototype": self.prototypes.repeat(n * k).cpu().numpy(),
                "perturbation": [name for name in self.perturbations for _ in range(n * p)],
                "delta": self.delta.flatten().cpu().numpy(),
                "orig_similarity": self.similarity.flatten().repeat(k).cpu().numpy(),
            }
        )


def _similarity_at(
    model: torch.nn.Module, x: torch.Tensor, flat_loc: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarities ``(N, P_all)`` at ``flat_loc`` (the nearest patch if ``None``) and the
    locations used ``(N, P_all)``."""
    d = model.forward_all(x).distances  # (N, P, h, w)
    flat = d.flatten(2)
    if flat_loc is None:
        flat_loc = flat.argmin(2)
    dist = flat.gather(2, flat_loc[..., None]).squeeze(2)
    return PF.similarity(dist, model.similarity, model.eps), flat_loc


@torch.no_grad()
def prototype_characteristics(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    perturbations: Sequence[str | tuple[str, Callable]] = PERTURBATIONS,
    levels: Mapping[str, Any] | None = None,
    prototypes: Sequence[int] | torch.Tensor | None = None,
    region: torch.Tensor | None = None,
    batch_size: int = 64,
) -> CharacteristicImportance:
    """Nauta et al.'s importance of hue, shape, texture, contrast and saturation.

    Parameters
    ----------
    model : ProtoPNet
        Run in eval mode (its mode restored).
    images : Tensor, shape (N, 3, H, W)
        Pixel values in ``[0, 1]``, on the model's device.
    normalize : callable, optional
        Maps pixel images to the model's input space (e.g. the dataset's normalisation);
        default identity.
    perturbations : sequence of str or (name, callable)
        Names from :func:`~interp_lib.protopnet.characteristics.perturb`, or ``(name, f)`` with ``f(images) -> images``.
    levels : mapping, optional
        Levels overriding :data:`~interp_lib.protopnet.characteristics.DEFAULT_LEVELS` by name.
    prototypes : sequence of int or Tensor, optional
        Prototype indices (default all).
    region : Tensor of bool, shape (N, H, W), optional
        Perturb only these pixels (e.g. a part or the prototype's box); default the whole
        image, as the paper.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    CharacteristicImportance
        ``delta (K, N, P)``, ``similarity (N, P)``, ``importance (K, P)``, ``to_pandas()``.
    """
    if not is_protopnet(model):
        raise TypeError(f"model must be a ProtoPNet, got {type(model).__name__}.")
    check_images(images, "images", nonempty=True, finite=True)
    batch_size = check_int(batch_size, "batch_size")
    if float(images.min()) < 0 or float(images.max()) > 1:
        raise ValueError(
            "images must hold pixel values in [0, 1] (perturb first, then normalise: pass "
            "the normalisation as normalize=...)."
        )
    norm = normalize or (lambda t: t)
    lv = dict(DEFAULT_LEVELS, **(levels or {}))
    named: list[tuple[str, Callable]] = []
    for item in perturbations:
        if isinstance(item, str):
            if item not in DEFAULT_LEVELS:
                raise ValueError(
                    f"perturbation must be one of {sorted(DEFAULT_LEVELS)} or (name, callable), "
                    f"got {item!r}."
                )
            named.append((item, lambda t, k=item: perturb(t, k, lv[k])))
        else:
            name, fn = item
            named.append((str(name), fn))
    n_all = model.n_prototypes
    protos = (
        torch.arange(n_all)
        if prototypes is None
        else torch.as_tensor(prototypes, dtype=torch.long).flatten().cpu()
    )
    if protos.numel() == 0 or bool(((protos < 0) | (protos >= n_all)).any()):
        raise ValueError(f"prototypes must be indices in [0, {n_all}), got {protos.tolist()}.")
    if region is not None:
        region = torch.as_tensor(region, dtype=torch.bool, device=images.device)
        if region.ndim == 4 and region.shape[1] == 1:
            region = region[:, 0]
        if tuple(region.shape) != (images.shape[0], *images.shape[2:]):
            raise ValueError(
                f"region must have shape (N, H, W) matching the images, got {tuple(region.shape)}."
            )
    sims, deltas = [], [[] for _ in named]
    with evaluating(model):
        for lo in range(0, images.shape[0], batch_size):
            xb = images[lo : lo + batch_size]
            s0, loc = _similarity_at(model, norm(xb), None)
            sims.append(s0[:, protos])
            for k, (_, fn) in enumerate(named):
                xp = fn(xb)
                if region is not None:
                    xp = torch.where(region[lo : lo + batch_size, None], xp, xb)
                s1, _ = _similarity_at(model, norm(xp), loc)
                deltas[k].append((s0 - s1)[:, protos])
    return CharacteristicImportance(
        perturbations=[name for name, _ in named],
        prototypes=protos,
        similarity=torch.cat(sims).float(),
        delta=torch.stack([torch.cat(d) for d in deltas]).float(),
    )
