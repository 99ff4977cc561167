"""The ProtoPNet model (Chen et al., NeurIPS 2019): trunk, add-on, prototypes, last layer."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._validation import check_choice, check_images, check_int, check_real
from ..networks import build_backbone, trunk_info
from ..networks.weights import WeightsLike
from . import functional as PF
from .receptive_field import (
    ReceptiveField,
    layer_receptive_field,
    map_side,
    module_receptive_field,
)

#: Add-on layer types (``add_on_layers_type`` of the original ``construct_PPNet``).
ADD_ONS = ("regular", "bottleneck")


@dataclass
class ProtoPNetOutput:
    """Everything one forward pass computes.

    Attributes
    ----------
    logits : Tensor, shape (N, K)
    min_distances : Tensor, shape (N, P)
        Smallest distance of each prototype over each image's latent patches.
    distances : Tensor, shape (N, P, H', W')
        Distance of each prototype to each latent patch.
    similarities : Tensor, shape (N, P, H', W')
        The activation maps: ``similarity(distances)``.
    latent : Tensor, shape (N, D, H, W)
        Output of trunk + add-on layers.
    """

    logits: torch.Tensor
    min_distances: torch.Tensor
    distances: torch.Tensor
    similarities: torch.Tensor
    latent: torch.Tensor


def _class_counts(n_prototypes_per_class: int | Sequence[int], n_classes: int) -> list[int]:
    per_class = n_prototypes_per_class
    if isinstance(per_class, int) and not isinstance(per_class, bool):
        check_int(per_class, "n_prototypes_per_class", minimum=1)
        return [per_class] * n_classes
    counts = [int(c) for c in per_class]
    if len(counts) != n_classes or any(c < 0 for c in counts) or sum(counts) == 0:
        raise ValueError(
            "n_prototypes_per_class must be a positive int or a list of n_classes = "
            f"{n_classes} non-negative counts (not all zero), got {per_class}."
        )
    return counts


def add_on_layers(kind: str, in_channels: int, prototype_dim: int) -> nn.Sequential:
    """The 1x1 convolutions between the trunk and the prototypes (``C -> D``).

    Parameters
    ----------
    kind : {"regular", "bottleneck"}
        ``"regular"``: ``Conv1x1(C, D), ReLU, Conv1x1(D, D), Sigmoid`` (the original's
        non-bottleneck branch). ``"bottleneck"``: the original's default, exactly its
        layer sequence: while the width ``c`` exceeds ``D`` (at least once), a block
        ``Conv1x1(c, m), ReLU, Conv1x1(m, m)`` with ``m = max(D, c // 2)``, followed by
        ``ReLU`` when ``m > D`` and by ``Sigmoid`` for the last block; then ``c = c // 2``.
        E.g. ``C = 512, D = 128``: 512 -> 256 -> 256, ReLU, 256 -> 128 -> 128, Sigmoid.
        With ``C <= 2 D`` both kinds are the same layers.
    in_channels : int
        ``C``, channels of the trunk's output.
    prototype_dim : int
        ``D``.

    Returns
    -------
    nn.Sequential
        Convolutions initialised as in the original (Kaiming normal, ``fan_out``, ReLU
        gain; zero bias), mapping ``(N, C, H, W)`` to ``(N, D, H, W)`` in ``(0, 1)``.
    """
    check_choice(kind, "add_on", ADD_ONS)
    if kind == "regular":
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, prototype_dim, 1),
            nn.ReLU(),
            nn.Conv2d(prototype_dim, prototype_dim, 1),
            nn.Sigmoid(),
        ]
    else:
        layers = []
        current = in_channels
        while current > prototype_dim or not layers:
            out = max(prototype_dim, current // 2)
            layers += [nn.Conv2d(current, out, 1), nn.ReLU(), nn.Conv2d(out, out, 1)]
            layers.append(nn.ReLU() if out > prototype_dim else nn.Sigmoid())
            current = current // 2
    add_on = nn.Sequential(*layers)
    for layer in add_on:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return add_on


class ProtoPNet(nn.Module):
    """Prototypical part network: "this looks like that".

    ``image -> features (trunk) -> add_on (Conv1x1 C->D, ReLU, Conv1x1 D->D, Sigmoid)
    -> distances to P prototypes (N, P, H', W') -> min-pool -> similarity -> last_layer``.

    Images go through :meth:`latent`, which checks them first: a non-tensor, a tensor
    that is not 4-D or not floating point, the wrong number of channels (as the trunk
    declares it), another device or dtype than the model's (outside ``torch.autocast``),
    or images too small for the trunk give a ``ValueError`` / ``TypeError`` that says
    what to change.

    Parameters
    ----------
    backbone : str or nn.Module
        A trunk mapping ``(N, 3, H, W)`` to ``(N, C, H', W')``, or a name understood by
        :func:`interp_lib.networks.build_backbone` (``"small_cnn"``,
        ``"vgg16"``, ``"resnet34"``, ``"densenet121"``...).
    n_classes : int
        ``K``.
    n_prototypes_per_class : int or list of int
        ``10`` in the paper; a list gives per-class counts (what pruning leaves).
        Prototypes are stored grouped by class: prototype ``j`` of the default layout
        belongs to class ``j // n_prototypes_per_class``.
    prototype_dim : int
        Latent depth ``D`` (128 in the paper).
    prototype_size : int
        Spatial side ``s`` of a prototype (1 in the paper).
    similarity : {"log", "linear", "cosine"}
        ``log((d + 1) / (d + eps))`` of squared L2 distances (paper), ``-d``, or the
        cosine between patch and prototype.
    eps : float
        The ``eps`` of the log similarity: a finite number ``> 0`` (``1e-4``).
    image_size : int
        Input side in pixels, used for the receptive-field geometry only.
    incorrect_class_connection : float
        Initial last-layer weight from a prototype to the other classes (-0.5); finite.
    backbone_weights : str or path, optional
        Passed to ``build_backbone`` when ``backbone`` is a name (never downloads).
    backbone_kwargs : dict, optional
        Extra arguments of ``build_backbone`` (e.g. ``widths`` of the small CNN).
    add_on : {"regular", "bottleneck"}
        The add-on layers (:func:`add_on_layers`). The original ``construct_PPNet``
        defaults to ``"bottleneck"``; we keep ``"regular"`` as the default because it
        is the layers every model of this library was trained and tested with (and the
        same layers as ``"bottleneck"`` whenever the trunk has at most ``2 D`` channels,
        e.g. the small CNN with ``D = 128``); pass ``add_on="bottleneck"`` to reproduce
        the original with a wide trunk (VGG: 512 channels, ResNet-50: 2048).

    Attributes
    ----------
    features, add_on : nn.Module
    prototypes : nn.Parameter, shape (P, D, s, s)
        Initialised ``U[0, 1)``.
    last_layer : nn.Linear(P, K, bias=False)
    class_identity : buffer, shape (P, K)
        One-hot class of each prototype.
    """

    def __init__(
        self,
        backbone: str | nn.Module = "small_cnn",
        *,
        n_classes: int,
        n_prototypes_per_class: int | Sequence[int] = 10,
        prototype_dim: int = 128,
        prototype_size: int = 1,
        similarity: str = "log",
        eps: float = 1e-4,
        image_size: int = 224,
        incorrect_class_connection: float = -0.5,
        backbone_weights: WeightsLike = None,
        backbone_kwargs: dict[str, Any] | None = None,
        add_on: str = "regular",
    ) -> None:
        super().__init__()
        n_classes = check_int(n_classes, "n_classes", minimum=1)
        prototype_dim = check_int(prototype_dim, "prototype_dim")
        prototype_size = check_int(prototype_size, "prototype_size")
        image_size = check_int(image_size, "image_size")
        check_choice(similarity, "similarity", PF.SIMILARITIES)
        check_choice(add_on, "add_on", ADD_ONS)
        eps = check_real(eps, "eps", positive=True)
        incorrect_class_connection = check_real(
            incorrect_class_connection, "incorrect_class_connection"
        )
        counts = _class_counts(n_prototypes_per_class, n_classes)
        backbone_kwargs = dict(backbone_kwargs or {})
        if isinstance(backbone, str):
            self.features = build_backbone(backbone, weights=backbone_weights, **backbone_kwargs)
            backbone_name: str | None = backbone
        elif isinstance(backbone, nn.Module):
            self.features = backbone
            backbone_name = None
        else:
            raise TypeError(
                "backbone must be a name (str) or an nn.Module trunk, got "
                f"{type(backbone).__name__}."
            )
        info = trunk_info(self.features)
        self.add_on = add_on_layers(add_on, info.out_channels, prototype_dim)
        n_prototypes = sum(counts)
        self.prototypes = nn.Parameter(
            torch.rand(n_prototypes, prototype_dim, prototype_size, prototype_size)
        )
        classes = torch.repeat_interleave(
            torch.arange(n_classes), torch.tensor(counts), output_size=sum(counts)
        )
        self.register_buffer(
            "class_identity",
            nn.functional.one_hot(classes, n_classes).float(),
        )
        self.last_layer = nn.Linear(n_prototypes, n_classes, bias=False)
        self.similarity = similarity
        self.eps = float(eps)
        self.image_size = image_size
        self.in_channels = info.in_channels
        per_class = n_prototypes_per_class
        self._config: dict[str, Any] = {
            "backbone": backbone_name,
            "backbone_kwargs": backbone_kwargs,
            "n_classes": n_classes,
            "n_prototypes_per_class": per_class if isinstance(per_class, int) else counts,
            "prototype_dim": prototype_dim,
            "prototype_size": prototype_size,
            "similarity": similarity,
            "eps": self.eps,
            "image_size": image_size,
            "incorrect_class_connection": float(incorrect_class_connection),
            "add_on": add_on,
        }
        self.set_last_layer_incorrect_connection(incorrect_class_connection)

    # ------------------------------------------------------------------ properties
    @property
    def n_classes(self) -> int:
        """``K``."""
        return self.class_identity.shape[1]

    @property
    def n_prototypes(self) -> int:
        """``P``."""
        return self.prototypes.shape[0]

    @property
    def prototype_size(self) -> int:
        """Spatial side ``s`` of the prototypes."""
        return self.prototypes.shape[2]

    @property
    def prototype_classes(self) -> torch.Tensor:
        """Class of each prototype, shape (P,), long."""
        return self.class_identity.argmax(dim=1)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able arguments that rebuild this architecture with :meth:`from_config`.

        ``backbone`` is ``None`` for a user-supplied trunk module: pass it again to
        :meth:`from_config`.
        """
        return copy.deepcopy(self._config)

    @property
    def receptive_field(self) -> ReceptiveField:
        """Receptive field of the latent map (trunk + 1x1 add-on) at ``image_size``."""
        return module_receptive_field(self.features, self.image_size)

    @property
    def prototype_receptive_field(self) -> ReceptiveField:
        """Receptive field of the distance / similarity maps (equal to
        :attr:`receptive_field` when ``prototype_size == 1``)."""
        return layer_receptive_field(self.receptive_field, self.prototype_size)

    @classmethod
    def from_config(cls, config: dict[str, Any], *, backbone: nn.Module | None = None) -> ProtoPNet:
        """Rebuild a model (fresh weights) from :attr:`config`."""
        config = dict(config)
        name = config.pop("backbone", None)
        if backbone is None:
            if name is None:
                raise ValueError(
                    "this config was made with a custom backbone module; pass it as "
                    "from_config(config, backbone=<the same trunk>)."
                )
            backbone = name
        return cls(backbone, **config)

    # ------------------------------------------------------------------ set-up
    def set_last_layer_incorrect_connection(self, value: float = -0.5) -> None:
        """Set the last layer to 1 for own-class connections and ``value`` otherwise."""
        value = check_real(value, "incorrect_class_connection")
        ident = self.class_identity.t()
        with torch.no_grad():
            self.last_layer.weight.copy_(ident + value * (1 - ident))

    def remove_prototypes(self, indices: Sequence[int] | torch.Tensor) -> None:
        """Delete prototypes: their vectors, class-identity rows and last-layer columns.

        Parameters are replaced by smaller ones, so build optimisers afterwards.
        :attr:`config` is updated to per-class counts and still rebuilds the model.
        """
        drop = torch.as_tensor(indices, dtype=torch.long).flatten()
        if drop.numel() and (drop.min() < 0 or drop.max() >= self.n_prototypes):
            raise ValueError(
                f"prototype indices must lie in [0, {self.n_prototypes}), got {drop.tolist()}."
            )
        keep = torch.ones(self.n_prototypes, dtype=torch.bool)
        keep[drop] = False
        if not bool(keep.any()):
            raise ValueError("cannot remove every prototype.")
        keep = keep.to(self.prototypes.device)
        trainable = (self.prototypes.requires_grad, self.last_layer.weight.requires_grad)
        self.prototypes = nn.Parameter(
            self.prototypes.detach()[keep].clone(), requires_grad=trainable[0]
        )
        self.class_identity = self.class_identity[keep].clone()
        weight = self.last_layer.weight.detach()[:, keep].clone()
        self.last_layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False).to(
            device=weight.device, dtype=weight.dtype
        )
        with torch.no_grad():
            self.last_layer.weight.copy_(weight)
        self.last_layer.weight.requires_grad_(trainable[1])
        self._config["n_prototypes_per_class"] = self.class_identity.sum(0).long().cpu().tolist()

    # ------------------------------------------------------------------ forward
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Check a batch of images before it reaches the trunk (see the class docstring).

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor, or its dtype differs from the
            model's outside ``torch.autocast``.
        ValueError
            If ``x`` is not ``(N, C, H, W)``, has another number of channels than the
            trunk takes, or lives on another device than the model.
        """
        check_images(x, "images")
        if self.in_channels is not None and x.shape[1] != self.in_channels:
            raise ValueError(
                f"images must have {self.in_channels} channels (the trunk's input), got "
                f"shape {tuple(x.shape)}. Convert grey images with x.expand(-1, 3, -1, -1) "
                "or build the trunk for your channels."
            )
        weight = self.prototypes
        if x.device != weight.device:
            raise ValueError(
                f"images are on {x.device} but the model is on {weight.device}; move them "
                f"with x.to({str(weight.device)!r})."
            )
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(
                f"images have dtype {x.dtype} but the model's weights are {weight.dtype}; "
                f"convert them with x.to({weight.dtype}) (or run under torch.autocast)."
            )
        return x

    def _too_small(self, x: torch.Tensor) -> str | None:
        """Why images of this size cannot go through the trunk, if they cannot."""
        sides = []
        for side in x.shape[-2:]:
            try:
                n = map_side(self.features, int(side))
            except ValueError as exc:
                return str(exc)
            if n is None:
                return None
            sides.append(n)
        if min(sides) < self.prototype_size:
            return (
                f"the trunk maps them to a {sides[0]}x{sides[1]} latent map, smaller than "
                f"the {self.prototype_size}x{self.prototype_size} prototypes."
            )
        return None

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Latent map ``z``, shape (N, D, H, W), values in (0, 1), for images (N, C, H, W).

        The images are checked first (:meth:`check_input`).
        """
        self.check_input(x)
        try:
            return self.add_on(self.features(x))
        except RuntimeError as exc:
            why = self._too_small(x)
            if why is None:
                raise
            raise ValueError(
                f"images of {x.shape[-2]}x{x.shape[-1]} pixels are too small for this "
                f"model: {why} Use larger images (the model was built for "
                f"image_size={self.image_size})."
            ) from exc

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Distances (N, P, H', W') from latent maps (N, D, H, W) to the prototypes.

        Always computed in at least float32, also under ``torch.autocast``: the
        expansion ``|z|^2 - 2 z.p + |p|^2`` cancels badly in half precision.
        """
        dtype = torch.promote_types(z.dtype, self.prototypes.dtype)
        dtype = torch.promote_types(dtype, torch.float32)
        with torch.autocast(z.device.type, enabled=False):
            return PF.patch_distances(z.to(dtype), self.prototypes.to(dtype), self.similarity)

    def forward_all(self, x: torch.Tensor) -> ProtoPNetOutput:
        """Logits and every intermediate (see :class:`ProtoPNetOutput`)."""
        z = self.latent(x)
        d = self.distances(z)
        min_d = PF.min_pool(d)
        logits = self.last_layer(PF.similarity(min_d, self.similarity, self.eps))
        sims = PF.similarity(d, self.similarity, self.eps)
        return ProtoPNetOutput(logits, min_d, d, sims, z)

    def pooled_similarities(self, z: torch.Tensor) -> torch.Tensor:
        """The last layer's inputs, shape (N, P): the similarity of every prototype to
        its nearest patch of each latent map (N, D, H, W)."""
        return PF.similarity(PF.min_pool(self.distances(z)), self.similarity, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N, K), for images (N, C, H, W)."""
        return self.last_layer(self.pooled_similarities(self.latent(x)))

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, n_prototypes={self.n_prototypes}, "
            f"prototype_shape={tuple(self.prototypes.shape)}, "
            f"similarity={self.similarity!r}"
        )


def is_protopnet(model: object) -> bool:
    """Whether ``model`` is a :class:`ProtoPNet`: the library's one test for it.

    Used by :func:`~interp_lib.protopnet.explain`, :func:`~interp_lib.protopnet.push`,
    the training stages and :mod:`interp_lib.baselines` (prototype methods, ``compare``).
    A ``DistributedDataParallel`` wrapper is not a ProtoPNet: pass ``wrapper.module``.
    """
    return isinstance(model, ProtoPNet)
