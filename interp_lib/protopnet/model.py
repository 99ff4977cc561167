"""The ProtoPNet model (Chen et al., NeurIPS 2019): trunk, add-on, prototypes, last layer."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._validation import check_choice, check_int
from . import functional as PF
from .backbones import WeightsLike, build_backbone, infer_out_channels
from .receptive_field import ReceptiveField, layer_receptive_field, module_receptive_field


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


def _class_counts(prototypes_per_class: int | Sequence[int], num_classes: int) -> list[int]:
    if isinstance(prototypes_per_class, int) and not isinstance(prototypes_per_class, bool):
        check_int(prototypes_per_class, "prototypes_per_class", minimum=1)
        return [prototypes_per_class] * num_classes
    counts = [int(c) for c in prototypes_per_class]
    if len(counts) != num_classes or any(c < 0 for c in counts) or sum(counts) == 0:
        raise ValueError(
            "prototypes_per_class must be a positive int or a list of num_classes = "
            f"{num_classes} non-negative counts (not all zero), got {prototypes_per_class}."
        )
    return counts


class ProtoPNet(nn.Module):
    """Prototypical part network: "this looks like that".

    ``image -> features (trunk) -> add_on (Conv1x1 C->D, ReLU, Conv1x1 D->D, Sigmoid)
    -> distances to P prototypes (N, P, H', W') -> min-pool -> similarity -> last_layer``.

    Parameters
    ----------
    backbone : str or nn.Module
        A trunk mapping ``(N, 3, H, W)`` to ``(N, C, H', W')``, or a name understood by
        :func:`interp_lib.protopnet.build_backbone` (``"small_cnn"``,
        ``"vgg16"``, ``"resnet34"``, ``"densenet121"``...).
    num_classes : int
        ``K``.
    prototypes_per_class : int or list of int
        ``10`` in the paper; a list gives per-class counts (what pruning leaves).
        Prototypes are stored grouped by class: prototype ``j`` of the default layout
        belongs to class ``j // prototypes_per_class``.
    prototype_dim : int
        Latent depth ``D`` (128 in the paper).
    prototype_size : int
        Spatial side ``s`` of a prototype (1 in the paper).
    similarity : {"log", "linear", "cosine"}
        ``log((d + 1) / (d + eps))`` of squared L2 distances (paper), ``-d``, or the
        cosine between patch and prototype.
    eps : float
        The ``eps`` of the log similarity.
    img_size : int
        Input side in pixels, used for the receptive-field geometry only.
    incorrect_class_connection : float
        Initial last-layer weight from a prototype to the other classes (-0.5).
    backbone_weights : str or path, optional
        Passed to ``build_backbone`` when ``backbone`` is a name (never downloads).
    backbone_kwargs : dict, optional
        Extra arguments of ``build_backbone`` (e.g. ``widths`` of the small CNN).

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
        num_classes: int,
        prototypes_per_class: int | Sequence[int] = 10,
        prototype_dim: int = 128,
        prototype_size: int = 1,
        similarity: str = "log",
        eps: float = 1e-4,
        img_size: int = 224,
        incorrect_class_connection: float = -0.5,
        backbone_weights: WeightsLike = None,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        num_classes = check_int(num_classes, "num_classes", minimum=1)
        prototype_dim = check_int(prototype_dim, "prototype_dim")
        prototype_size = check_int(prototype_size, "prototype_size")
        img_size = check_int(img_size, "img_size")
        check_choice(similarity, "similarity", PF.SIMILARITIES)
        counts = _class_counts(prototypes_per_class, num_classes)
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
        channels = infer_out_channels(self.features)
        self.add_on = nn.Sequential(
            nn.Conv2d(channels, prototype_dim, 1),
            nn.ReLU(),
            nn.Conv2d(prototype_dim, prototype_dim, 1),
            nn.Sigmoid(),
        )
        for layer in self.add_on:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        num_prototypes = sum(counts)
        self.prototypes = nn.Parameter(
            torch.rand(num_prototypes, prototype_dim, prototype_size, prototype_size)
        )
        classes = torch.repeat_interleave(torch.arange(num_classes), torch.tensor(counts))
        self.register_buffer(
            "class_identity",
            nn.functional.one_hot(classes, num_classes).float(),
        )
        self.last_layer = nn.Linear(num_prototypes, num_classes, bias=False)
        self.similarity = similarity
        self.eps = float(eps)
        self.img_size = img_size
        self._config: dict[str, Any] = {
            "backbone": backbone_name,
            "backbone_kwargs": backbone_kwargs,
            "num_classes": num_classes,
            "prototypes_per_class": (
                prototypes_per_class if isinstance(prototypes_per_class, int) else counts
            ),
            "prototype_dim": prototype_dim,
            "prototype_size": prototype_size,
            "similarity": similarity,
            "eps": self.eps,
            "img_size": img_size,
            "incorrect_class_connection": float(incorrect_class_connection),
        }
        self.set_last_layer_incorrect_connection(incorrect_class_connection)

    # ------------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        """``K``."""
        return self.class_identity.shape[1]

    @property
    def num_prototypes(self) -> int:
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
        """Receptive field of the latent map (trunk + 1x1 add-on) at ``img_size``."""
        return module_receptive_field(self.features, self.img_size)

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
        ident = self.class_identity.t()
        with torch.no_grad():
            self.last_layer.weight.copy_(ident + value * (1 - ident))

    def remove_prototypes(self, indices: Sequence[int] | torch.Tensor) -> None:
        """Delete prototypes: their vectors, class-identity rows and last-layer columns.

        Parameters are replaced by smaller ones, so build optimisers afterwards.
        :attr:`config` is updated to per-class counts and still rebuilds the model.
        """
        drop = torch.as_tensor(indices, dtype=torch.long).flatten()
        if drop.numel() and (drop.min() < 0 or drop.max() >= self.num_prototypes):
            raise ValueError(
                f"prototype indices must lie in [0, {self.num_prototypes}), got {drop.tolist()}."
            )
        keep = torch.ones(self.num_prototypes, dtype=torch.bool)
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
        self._config["prototypes_per_class"] = self.class_identity.sum(0).long().cpu().tolist()

    # ------------------------------------------------------------------ forward
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Latent map ``z``, shape (N, D, H, W), values in (0, 1), for images (N, C, H, W)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ValueError(
                "x must be a batch of images of shape (N, C, H, W), got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}."
            )
        return self.add_on(self.features(x))

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N, K), for images (N, C, H, W)."""
        min_d = PF.min_pool(self.distances(self.latent(x)))
        return self.last_layer(PF.similarity(min_d, self.similarity, self.eps))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, num_prototypes={self.num_prototypes}, "
            f"prototype_shape={tuple(self.prototypes.shape)}, "
            f"similarity={self.similarity!r}"
        )
