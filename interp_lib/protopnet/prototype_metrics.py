"""Do prototypes point at object parts? Consistency, stability (Huang et al. 2023), purity.

All three start from the same object: for every image ``n`` and prototype ``p``, a box of
side ``box_size`` centred on the maximum of the prototype's upsampled activation map, and
the set of ground-truth parts that fall in that box, a boolean ``presence (N, P, J)``.

- **Consistency**: prototype ``p`` is consistent when one part is in its box in at least
  ``threshold`` (80 %) of the images of its class; the score is the share of consistent
  prototypes.
- **Stability**: the share of a prototype's class images whose part set is unchanged when
  Gaussian noise (std 0.2, clipped to +-0.25 in normalised units, as Huang et al.'s code)
  is added to the image; averaged over prototypes.
- **Purity** (PIP-Net, Nauta et al. 2023): among the ``k`` images where the prototype is
  most active, the share whose box holds the prototype's most frequent part; averaged.

Huang et al. use a 72 x 72 box at 224 px (``half_size=36``); ``box_size=None`` scales that
to the image. A part "falls in" the box when more than ``overlap`` of the box area is
covered by its mask (``overlap=0``: any pixel, which is the keypoint rule when the masks
mark keypoints).

One of ProtoPNet's evaluation modules, with :mod:`interp_lib.protopnet.placement` (the
part under each pushed prototype), :mod:`interp_lib.protopnet.evidence` (where a
decision's points come from) and :mod:`interp_lib.protopnet.boxes_eval` (the paper's boxes
against part masks); none of them is part of training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._validation import check_choice, check_fraction, check_images, check_int, make_generator
from ..networks import resettable_layers
from .boxes import INTERPOLATE_MODES, upsample_maps
from .model import is_protopnet

_INTS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@dataclass
class PrototypeScore:
    """A score per prototype and its mean.

    Attributes
    ----------
    score : float
        Mean over prototypes (NaN ones, e.g. classes without images, ignored).
    per_prototype : Tensor, shape (P,)
    """

    score: float
    per_prototype: torch.Tensor


def _score(per_prototype: torch.Tensor) -> PrototypeScore:
    return PrototypeScore(float(per_prototype.nanmean()), per_prototype)


def _tensor(value: object, name: str, ndim: int, shape: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape {shape}, got {type(value).__name__}.")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}.")
    return value


def _check_presence(presence: object, name: str = "presence") -> torch.Tensor:
    presence = _tensor(presence, name, 3, "(N, P, J)")
    if presence.dtype != torch.bool:
        raise TypeError(
            f"{name} must be a boolean tensor (from box_part_presence), got {presence.dtype}."
        )
    return presence


def _check_classes(value: object, name: str, n: int, what: str) -> torch.Tensor:
    """A 1-D integer tensor of ``n`` class indices (``labels`` or ``prototype_classes``)."""
    value = torch.as_tensor(value) if isinstance(value, (list, tuple)) else value
    value = _tensor(value, name, 1, f"({n},)")
    if value.dtype not in _INTS:
        raise TypeError(f"{name} must hold integer classes, got dtype {value.dtype}.")
    if value.shape[0] != n:
        raise ValueError(f"{name} must have one class per {what} ({n}), got {value.shape[0]}.")
    return value


def default_box_size(height: int, width: int) -> int:
    """Huang et al.'s 72-pixel box at 224 px, scaled to the image (at least 1 pixel)."""
    return max(1, round(72 / 224 * min(height, width)))


@torch.no_grad()
def activation_peaks(
    similarity_maps: torch.Tensor,
    size: tuple[int, int],
    *,
    interpolate_mode: str = "bicubic",
    chunk_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak value and pixel location of each upsampled prototype activation map.

    Parameters
    ----------
    similarity_maps : Tensor, shape (N, P, h, w)
        ``ProtoPNetOutput.similarities``.
    size : (H, W)
        Image size.
    interpolate_mode : {"bicubic", "bilinear", "nearest"}
        How the maps are upsampled (bicubic, as ProtoPNet).
    chunk_size : int
        Prototypes upsampled at once (bounds the memory of ``(N, chunk_size, H, W)``).

    Returns
    -------
    values : Tensor, shape (N, P)
    locations : Tensor of long, shape (N, P, 2)
        ``(row, col)`` of the maximum of the upsampled map.
    """
    similarity_maps = _tensor(similarity_maps, "similarity_maps", 4, "(N, P, h, w)")
    if similarity_maps.shape[2] == 0 or similarity_maps.shape[3] == 0:
        raise ValueError(f"similarity_maps are empty (shape {tuple(similarity_maps.shape)}).")
    check_choice(interpolate_mode, "interpolate_mode", INTERPOLATE_MODES)
    chunk_size = check_int(chunk_size, "chunk_size")
    if len(size) != 2 or min(check_int(s, "size") for s in size) < 1:
        raise ValueError(f"size must be (H, W) with positive sides, got {size}.")
    p = similarity_maps.shape[1]
    values, flat = [], []
    for lo in range(0, p, chunk_size):
        up = upsample_maps(similarity_maps[:, lo : lo + chunk_size], size, interpolate_mode)
        v, i = up.flatten(2).max(2)
        values.append(v)
        flat.append(i)
    v, i = torch.cat(values, 1), torch.cat(flat, 1)
    return v, torch.stack([i // size[1], i % size[1]], dim=-1)


def box_part_presence(
    locations: torch.Tensor,
    part_masks: torch.Tensor,
    *,
    box_size: int | None = None,
    overlap: float = 0.0,
) -> torch.Tensor:
    """Which parts fall in the box around each location.

    Parameters
    ----------
    locations : Tensor of long, shape (N, P, 2)
        Box centres ``(row, col)`` in pixels.
    part_masks : Tensor, shape (N, J, H, W)
        One binary mask per part (all-zero where a part is absent).
    box_size : int, optional
        Side of the square box, clipped at the image border; default
        :func:`default_box_size`.
    overlap : float
        A part is present when its mask covers more than this share of the box.

    Returns
    -------
    Tensor of bool, shape (N, P, J)
    """
    part_masks = _tensor(part_masks, "part_masks", 4, "(N, parts, H, W)")
    n, j, h, w = part_masks.shape
    locations = _tensor(locations, "locations", 3, f"({n}, P, 2)")
    if locations.shape[0] != n or locations.shape[-1] != 2:
        raise ValueError(f"locations must have shape ({n}, P, 2), got {tuple(locations.shape)}.")
    if locations.dtype not in _INTS:
        raise TypeError(f"locations must be integer pixels, got dtype {locations.dtype}.")
    if h == 0 or w == 0:
        raise ValueError(f"part_masks has empty images (shape {tuple(part_masks.shape)}).")
    size = default_box_size(h, w) if box_size is None else check_int(box_size, "box_size")
    overlap = check_fraction(overlap, "overlap", inclusive_low=True)
    half = size // 2
    # Summed-area table with a zero border: box sums by four lookups.
    sat = torch.zeros(n, j, h + 1, w + 1, device=part_masks.device, dtype=torch.long)
    sat[:, :, 1:, 1:] = part_masks.long().cumsum(2).cumsum(3)
    loc = locations.to(part_masks.device).long()
    r0 = (loc[..., 0] - half).clamp(0, h)
    c0 = (loc[..., 1] - half).clamp(0, w)
    r1 = (loc[..., 0] - half + size).clamp(0, h)
    c1 = (loc[..., 1] - half + size).clamp(0, w)
    flat = sat.flatten(2)  # (N, J, (H+1)(W+1))

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # (N, P) -> (N, P, J)
        idx = (r * (w + 1) + c).unsqueeze(1).expand(n, j, -1)
        return flat.gather(2, idx).transpose(1, 2)

    inside = at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0)
    area = ((r1 - r0) * (c1 - c0)).unsqueeze(-1)
    return inside.float() > overlap * area.float() + 1e-6


def _own(labels: torch.Tensor, prototype_classes: torch.Tensor) -> torch.Tensor:
    return labels.view(-1, 1).to(prototype_classes.device) == prototype_classes.view(1, -1)


def consistency(
    presence: torch.Tensor,
    labels: torch.Tensor,
    prototype_classes: torch.Tensor,
    *,
    threshold: float = 0.8,
) -> PrototypeScore:
    """Share of prototypes that find one part in ``threshold`` of their class's images.

    Parameters
    ----------
    presence : Tensor of bool, shape (N, P, J)
        From :func:`box_part_presence`.
    labels : Tensor of long, shape (N,)
    prototype_classes : Tensor of long, shape (P,)

    Returns
    -------
    PrototypeScore
        ``per_prototype`` is 1.0 (consistent), 0.0, or NaN (no image of its class).
    """
    presence = _check_presence(presence)
    n, p, _ = presence.shape
    labels = _check_classes(labels, "labels", n, "image")
    prototype_classes = _check_classes(prototype_classes, "prototype_classes", p, "prototype")
    threshold = check_fraction(threshold, "threshold")
    own = _own(labels, prototype_classes).to(presence.device).float()  # (N, P)
    count = own.sum(0)
    freq = torch.einsum("np,npj->pj", own, presence.float()) / count.clamp(min=1)[:, None]
    per = (freq.amax(1) >= threshold - 1e-6).float()
    per[count == 0] = float("nan")
    return _score(per)


def stability(
    presence: torch.Tensor,
    presence_noisy: torch.Tensor,
    labels: torch.Tensor,
    prototype_classes: torch.Tensor,
) -> PrototypeScore:
    """Share of a prototype's class images whose part set survives input noise.

    Parameters
    ----------
    presence, presence_noisy : Tensor of bool, shape (N, P, J)
        Part presence on the clean and on the perturbed images.
    labels : Tensor of long, shape (N,)
    prototype_classes : Tensor of long, shape (P,)
    """
    presence = _check_presence(presence)
    presence_noisy = _check_presence(presence_noisy, "presence_noisy")
    if presence.shape != presence_noisy.shape:
        raise ValueError(
            f"presence shapes differ: {tuple(presence.shape)} vs {tuple(presence_noisy.shape)}."
        )
    n, p, _ = presence.shape
    labels = _check_classes(labels, "labels", n, "image")
    prototype_classes = _check_classes(prototype_classes, "prototype_classes", p, "prototype")
    own = _own(labels, prototype_classes).to(presence.device).float()
    same = (presence == presence_noisy).all(2).float()
    count = own.sum(0)
    per = (own * same).sum(0) / count.clamp(min=1)
    per[count == 0] = float("nan")
    return _score(per)


def purity(
    presence: torch.Tensor,
    activations: torch.Tensor,
    *,
    k: int = 10,
    labels: torch.Tensor | None = None,
    prototype_classes: torch.Tensor | None = None,
) -> PrototypeScore:
    """PIP-Net purity: share of a prototype's top-``k`` patches holding its commonest part.

    Parameters
    ----------
    presence : Tensor of bool, shape (N, P, J)
        Parts in the box around each image's peak.
    activations : Tensor, shape (N, P)
        Peak activation of each prototype on each image (ranks the patches).
    k : int
        Number of top patches (one per image).
    labels, prototype_classes : optional
        When both are given, only images of the prototype's own class are ranked.
    """
    presence = _check_presence(presence)
    n, p, _ = presence.shape
    activations = _tensor(activations, "activations", 2, f"({n}, {p})")
    if tuple(activations.shape) != (n, p):
        raise ValueError(
            f"activations must have shape ({n}, {p}) like presence, got {tuple(activations.shape)}."
        )
    if not activations.is_floating_point() or not bool(torch.isfinite(activations).all()):
        raise ValueError("activations must be finite floating-point values.")
    k = check_int(k, "k")
    scores = activations.float().clone()
    if (labels is None) != (prototype_classes is None):
        raise ValueError("give both labels and prototype_classes, or neither.")
    if labels is not None:
        labels = _check_classes(labels, "labels", n, "image")
        prototype_classes = _check_classes(prototype_classes, "prototype_classes", p, "prototype")
        scores[~_own(labels, prototype_classes).to(scores.device)] = float("-inf")
    kk = min(int(k), scores.shape[0])
    top_v, top_i = scores.topk(kk, dim=0)  # (k, P)
    valid = torch.isfinite(top_v).float()  # (k, P)
    p_idx = torch.arange(scores.shape[1], device=scores.device).expand(kk, -1)
    hits = presence[top_i, p_idx].float() * valid[..., None]  # (k, P, J)
    n_valid = valid.sum(0)
    per = hits.sum(0).amax(1) / n_valid.clamp(min=1)
    per[n_valid == 0] = float("nan")
    return _score(per)


@torch.no_grad()
def prototype_part_metrics(
    protopnet: nn.Module,
    images: torch.Tensor,
    part_masks: torch.Tensor,
    labels: torch.Tensor,
    *,
    box_size: int | None = None,
    overlap: float = 0.0,
    threshold: float = 0.8,
    k: int = 10,
    noise_std: float = 0.2,
    noise_clip: float | None = 0.25,
    batch_size: int = 32,
    seed: int | torch.Generator | None = 0,
) -> dict[str, PrototypeScore]:
    """Consistency, stability and purity of a ProtoPNet's prototypes on annotated images.

    Parameters
    ----------
    protopnet : ProtoPNet
        With ``forward_all`` and ``prototype_classes``; put it in ``eval()`` mode.
    images : Tensor, shape (N, C, H, W)
        Normalised images (noise is added in this space).
    part_masks : Tensor, shape (N, J, H, W)
        Binary part masks.
    labels : Tensor of long, shape (N,)
    noise_std, noise_clip : float
        Stability noise: Gaussian of this std, clipped to +-``noise_clip`` (None: no clip).
    k : int
        Purity's top patches, ranked among the prototype's own-class images.
    seed : int, torch.Generator or None
        Randomness of the stability noise (``None``: fresh randomness).

    Returns
    -------
    dict
        ``{"consistency", "stability", "purity"}`` -> :class:`PrototypeScore`.
    """
    if not is_protopnet(protopnet):
        raise TypeError(
            "prototype_part_metrics needs a ProtoPNet (interp_lib.protopnet.ProtoPNet), got "
            f"{type(protopnet).__name__}."
        )
    check_images(images, "images", nonempty=True, finite=True)
    if (
        not isinstance(part_masks, torch.Tensor)
        or part_masks.ndim != 4
        or part_masks.shape[0] != images.shape[0]
        or part_masks.shape[2:] != images.shape[2:]
    ):
        got = tuple(part_masks.shape) if isinstance(part_masks, torch.Tensor) else part_masks
        raise ValueError(
            f"part_masks {got} must be (N, parts, H, W) matching the images {tuple(images.shape)}."
        )
    labels = _check_classes(labels, "labels", images.shape[0], "image")
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or noise_std < 0:
        raise ValueError(f"noise_std must be a number >= 0, got {noise_std!r}.")
    if noise_clip is not None and (
        isinstance(noise_clip, bool) or not isinstance(noise_clip, (int, float)) or noise_clip < 0
    ):
        raise ValueError(f"noise_clip must be a number >= 0 or None, got {noise_clip!r}.")
    batch_size = check_int(batch_size, "batch_size")
    device = images.device
    g = make_generator(seed)
    size = tuple(images.shape[-2:])
    pres, pres_noisy, acts = [], [], []
    for lo in range(0, images.shape[0], batch_size):
        x = images[lo : lo + batch_size]
        m = part_masks[lo : lo + batch_size].to(device)
        noise = noise_std * torch.randn(x.shape, generator=g)
        if noise_clip is not None:
            noise = noise.clamp(-noise_clip, noise_clip)
        for xi, store in ((x, pres), (x + noise.to(device, x.dtype), pres_noisy)):
            v, loc = activation_peaks(protopnet.forward_all(xi).similarities, size)
            store.append(box_part_presence(loc, m, box_size=box_size, overlap=overlap))
            if store is pres:
                acts.append(v)
    presence, noisy, act = torch.cat(pres), torch.cat(pres_noisy), torch.cat(acts)
    classes = protopnet.prototype_classes.to(device)
    labels = labels.to(device).long()
    return {
        "consistency": consistency(presence, labels, classes, threshold=threshold),
        "stability": stability(presence, noisy, labels, classes),
        "purity": purity(presence, act, k=k, labels=labels, prototype_classes=classes),
    }


def random_box_part_metrics(
    part_masks: torch.Tensor,
    labels: torch.Tensor,
    prototype_classes: torch.Tensor,
    *,
    box_size: int | None = None,
    overlap: float = 0.0,
    threshold: float = 0.8,
    k: int = 10,
    n_draws: int = 10,
    seed: int | torch.Generator | None = 0,
) -> dict[str, PrototypeScore]:
    """The chance level of :func:`prototype_part_metrics`: boxes at random positions.

    Every "prototype" puts its box (same ``box_size``) at a position drawn uniformly over
    the image, independently per image, per prototype and per view, so the box knows
    nothing of the image: consistency and purity then measure how often a part falls in
    a box of that size by chance (large boxes on large parts score high), and stability
    how often two independent boxes hold the same part set. Scores are averaged over
    ``n_draws`` draws (``per_prototype`` too).

    Parameters
    ----------
    part_masks : Tensor, shape (N, J, H, W)
    labels : Tensor of long, shape (N,)
    prototype_classes : Tensor of long, shape (P,)
    box_size, overlap, threshold, k
        As in :func:`prototype_part_metrics`.
    n_draws : int
        Independent draws averaged.
    seed : int, torch.Generator or None

    Returns
    -------
    dict
        ``{"consistency", "stability", "purity"}`` -> :class:`PrototypeScore`.
    """
    part_masks = _tensor(part_masks, "part_masks", 4, "(N, parts, H, W)")
    n, _, h, w = part_masks.shape
    labels = _check_classes(labels, "labels", n, "image")
    prototype_classes = _check_classes(
        prototype_classes, "prototype_classes", len(prototype_classes), "prototype"
    )
    n_draws = check_int(n_draws, "n_draws")
    g = make_generator(seed)
    p = prototype_classes.shape[0]
    sums: dict[str, torch.Tensor] = {}
    for _ in range(n_draws):

        def draw() -> torch.Tensor:
            rows = torch.randint(0, h, (n, p), generator=g)
            cols = torch.randint(0, w, (n, p), generator=g)
            loc = torch.stack((rows, cols), -1).to(part_masks.device)
            return box_part_presence(loc, part_masks, box_size=box_size, overlap=overlap)

        presence, noisy = draw(), draw()
        act = torch.rand(n, p, generator=g).to(part_masks.device)
        scores = {
            "consistency": consistency(presence, labels, prototype_classes, threshold=threshold),
            "stability": stability(presence, noisy, labels, prototype_classes),
            "purity": purity(
                presence, act, k=k, labels=labels, prototype_classes=prototype_classes
            ),
        }
        for key, s in scores.items():
            sums[key] = sums.get(key, 0) + s.per_prototype.double()
    return {key: _score((v / n_draws).float()) for key, v in sums.items()}


def untrained_protopnet(protopnet: nn.Module, *, seed: int | None = 0) -> nn.Module:
    """A copy of a ProtoPNet with every layer re-initialised: the "untrained" baseline.

    Every layer with a ``reset_parameters`` method gets PyTorch's default initialisation
    (as :func:`interp_lib.baselines.model_randomisation`), and the prototype vectors
    ProtoPNet's own, uniform in ``[0, 1)``; ``prototype_classes`` and the architecture are
    kept. The caller's random state is left alone. Its prototype scores are the level of
    random prototypes on a random trunk (the box geometry and the part sizes, nothing
    learned).

    Parameters
    ----------
    protopnet : ProtoPNet
    seed : int or None
        Seed of the re-initialisation (``None``: fresh randomness).

    Returns
    -------
    ProtoPNet
        In eval mode, on the device of ``protopnet``.
    """
    import copy

    if not is_protopnet(protopnet):
        raise TypeError(f"untrained_protopnet needs a ProtoPNet, got {type(protopnet).__name__}.")
    model = copy.deepcopy(protopnet)
    devices = [protopnet.prototypes.device] if protopnet.prototypes.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        if seed is not None:
            torch.manual_seed(int(seed))
        for name in resettable_layers(model):
            model.get_submodule(name).reset_parameters()
        model.prototypes.uniform_()
    return model.eval()
