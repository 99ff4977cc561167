"""Warm-start a ProtoPNet backbone offline: our stand-in for ImageNet pretraining.

The paper always starts from an ImageNet-pretrained trunk; warm-up and joint training only
adapt it. A small trunk trained *from scratch* inside ProtoPNet learns very slowly: the
latent patches start far from every prototype (squared distances of order ``D / 6``),
where the log similarity is flat, so the cross-entropy gradient reaching the trunk is
tiny. On the procedural birds ``fit`` from scratch stays near chance for many epochs,
while the same trunk under a global pool and a linear head learns the classes in a few.

:func:`pretrain_backbone` therefore trains ``trunk -> global pool -> linear`` with plain
cross-entropy (through :func:`interp_lib.models.train_classifier`) on the training images
and returns the trunk, ready for ``ProtoPNet(trunk, n_classes=..., ...)`` and
:func:`~interp_lib.protopnet.fit`. A global pool (rather than a flattening head) keeps the
trunk's features local and translation-equivariant, as in an ImageNet trunk. The default
is global *max* pooling, which mirrors ProtoPNet's own max-pooled similarity: one location
must carry the class evidence, so the trunk learns local part detectors. It also learns
faster when the object is small (a bird covers about a tenth of the image): average
pooling dilutes the bird's signal with the clutter around it.

A warm trunk alone is not enough on a CPU budget: with prototypes drawn ``U[0, 1)`` the
cluster cost pulls latents and prototypes together long before the cross-entropy makes
them discriminative, and the pushes land them on background patches.
:func:`seed_prototypes` therefore also uses the pretrained head: each class's prototypes
start as the latent patches of its training images where the head sees the most evidence
for the class (``head.weight[c] . f(x)[:, h, w]``, a class activation map), one image per
prototype.

The zoo's birds recipe (:func:`interp_lib.zoo.protopnet_birds`) starts its ProtoPNets
this way; ``bench/protopnet_birds.py`` measures it (test accuracy against the same-trunk
CNN, prototypes on the bird), with the figures in
``bench/summaries/protopnet_variants.json``.

Examples
--------
A tiny run (two classes, one epoch) that shows the calls; a real one trains for epochs
and then calls :func:`~interp_lib.protopnet.fit`:

>>> from torch.utils.data import DataLoader
>>> from interp_lib.datasets import birds
>>> from interp_lib.protopnet import ProtoPNet, pretrain_backbone, seed_prototypes
>>> train = birds(4, image_size=32, classes=2, seed=0)
>>> net, history = pretrain_backbone("small_cnn", train, n_classes=2, epochs=1,
...                                  progress=False, backbone_kwargs={"widths": [8, 16]})
>>> model = ProtoPNet(net.features, n_classes=2, n_prototypes_per_class=2,
...                   prototype_dim=16, image_size=32)
>>> start = seed_prototypes(model, DataLoader(train, batch_size=8), net.head)
>>> sorted(start), start["sample_index"].shape
(['evidence', 'location', 'sample_index'], torch.Size([4]))
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from .._plumbing import check_device, evaluating
from .._validation import make_generator
from ..models import TrainHistory, train_classifier
from ..networks import build_backbone, infer_out_channels, pooled_classifier

__all__ = ["PretrainedBackbone", "pretrain_backbone", "seed_prototypes"]


class PretrainedBackbone(NamedTuple):
    """What :func:`pretrain_backbone` returns (unpack it: ``net, history = ...``).

    Attributes
    ----------
    classifier : nn.Sequential
        ``features`` (the trunk) -> ``pool`` -> ``flatten`` -> ``head`` (see
        :func:`~interp_lib.networks.pooled_classifier`), trained, in eval mode.
    history : interp_lib.models.TrainHistory
        Per-epoch loss and accuracies (``test_accuracy`` holds the ``val`` accuracies).
    """

    classifier: nn.Sequential
    history: TrainHistory


def pretrain_backbone(
    backbone: str | nn.Module,
    train,
    *,
    n_classes: int,
    epochs: int = 10,
    pool: str = "max",
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    batch_size: int = 16,
    val=None,
    seed: int | torch.Generator | None = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    backbone_kwargs: dict[str, Any] | None = None,
    channels_last: bool = False,
) -> PretrainedBackbone:
    """Train a trunk as a globally pooled linear classifier
    (:func:`~interp_lib.networks.pooled_classifier`).

    Parameters
    ----------
    backbone : str or nn.Module
        A trunk (trained in place and returned) or a name for
        :func:`~interp_lib.networks.build_backbone` (``"small_cnn"``...).
    train : Dataset or (images, labels) tuple
        Yields ``(x, y, ...)`` with images ``(C, H, W)`` and integer labels in
        ``[0, n_classes)``: the same (normalised, possibly augmented) images that
        ProtoPNet will be trained on. Never the test set.
    n_classes : int
        ``K``.
    epochs : int
        Passes over ``train``.
    pool : {"max", "avg"}
        Global pooling of the head (see :func:`~interp_lib.networks.pooled_classifier`).
    lr, weight_decay, batch_size : training settings
        Adam with cross-entropy (see :func:`interp_lib.models.train_classifier`).
    val : Dataset or (images, labels) tuple, optional
        Evaluated after every epoch (``history.test_accuracy`` holds these validation
        accuracies); never trained on.
    seed : int, torch.Generator or None
        Seeds the weight initialisation of a named backbone and of the head, and the
        batch order. An int ``s`` initialises the backbone under seed ``s``, the head
        under ``s + 1`` (inside ``torch.random.fork_rng``: the global RNG is left as it
        was) and orders the batches with ``torch.Generator().manual_seed(s)``; a
        generator supplies these two seeds and then orders the batches; ``None`` draws
        fresh randomness.
    device : torch.device or str, optional
        The trunk is moved there (a trainer, see the device policy in
        ``interp_lib._plumbing``); ``None`` keeps it where it is.
    progress : bool
        Show a progress bar over epochs.
    backbone_kwargs : dict, optional
        Extra arguments of ``build_backbone`` when ``backbone`` is a name (e.g.
        ``{"widths": (16, 32, 64)}``).
    channels_last : bool
        Train in the channels-last memory format (see
        :func:`~interp_lib.models.train_classifier`).

    Returns
    -------
    PretrainedBackbone
        ``(classifier, history)``, one type whatever the arguments: the trained
        classifier in eval mode (``classifier.features`` is the trunk, the same object as
        ``backbone`` when a module was given, to build the ProtoPNet on;
        ``classifier.head`` the linear layer that :func:`seed_prototypes` uses) and its
        :class:`~interp_lib.models.TrainHistory`.

    Raises
    ------
    TypeError
        If ``backbone`` is neither a name nor a module.
    interp_lib.protopnet.NonFiniteLossError
        If the loss becomes non-finite (lower ``lr``).
    """
    trunk_seed, head_seed, batch_order = _seeds(seed)
    if isinstance(backbone, str):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(trunk_seed)
            trunk = build_backbone(backbone, **dict(backbone_kwargs or {}))
    elif isinstance(backbone, nn.Module):
        if backbone_kwargs:
            raise ValueError("backbone_kwargs only apply when backbone is a name.")
        trunk = backbone
    else:
        raise TypeError(
            f"backbone must be a name (str) or an nn.Module trunk, got {type(backbone).__name__}."
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(head_seed)
        net = pooled_classifier(trunk, n_classes, pool)
    history = train_classifier(
        net,
        train,
        test=val,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        seed=batch_order,
        device=device,
        progress=progress,
        channels_last=channels_last,
    )
    net.eval()
    return PretrainedBackbone(net, history)


def _seeds(seed: int | torch.Generator | None) -> tuple[int, int, torch.Generator]:
    """Seeds of the trunk and head initialisation, and the batch-order generator."""
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed, seed + 1, make_generator(seed)
    g = make_generator(seed)
    trunk_seed, head_seed = torch.randint(0, 2**62, (2,), generator=g).tolist()
    return trunk_seed, head_seed, g


@torch.no_grad()
def seed_prototypes(
    model,
    loader,
    head: nn.Linear,
    *,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Start each prototype on a latent patch where a pretrained head sees its class.

    For every training image ``x`` of class ``y`` the evidence map is
    ``e[h, w] = head.weight[y] . features(x)[:, h, w]`` (averaged over ``s x s`` windows
    for prototypes of side ``s``); its maximum is the image's best patch. The ``m_c``
    prototypes of class ``c`` become the latent patches (``model.latent``) of the ``m_c``
    class-``c`` images with the largest maxima, one image per prototype (fewer images
    than prototypes: images are reused in that order). Run it after building the model
    and before :func:`~interp_lib.protopnet.fit`; the add-on layers stay as initialised.

    Parameters
    ----------
    model : ProtoPNet
        Its ``features`` must be the trunk ``head`` was trained on. Modified in place
        (``model.prototypes``).
    loader : iterable of (x, y, ...)
        Un-augmented training images in a fixed order (the push loader).
    head : nn.Linear
        ``Linear(C, K)`` on globally pooled trunk features, e.g. ``pretrain_backbone(...).classifier.head``.
    device : torch.device or str, optional
        Default: the model's device (it must be the model's device type).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``sample_index`` (P,) long (position in the loader's order), ``location`` (P, 2)
        long (top-left ``(h, w)`` in the distance map) and ``evidence`` (P,) of each
        prototype's seed patch.

    Raises
    ------
    ValueError
        If ``head`` does not match the trunk's channels and the model's classes, or a
        class that owns prototypes has no image in ``loader``.
    """
    from . import functional as PF
    from .push import check_ordered_loader, labelled_batches

    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}.")
    channels = infer_out_channels(model.features)
    if tuple(head.weight.shape) != (model.n_classes, channels):
        raise ValueError(
            f"head must map the trunk's {channels} channels to the model's "
            f"{model.n_classes} classes, got Linear{tuple(head.weight.shape[::-1])}."
        )
    check_ordered_loader(loader)
    device = check_device(model, device)
    s = model.prototype_size
    weight = head.weight.detach().to(device)
    scores, samples, locations, patches, labels = [], [], [], [], []
    offset = 0
    with evaluating(model):
        for x, y in labelled_batches(
            loader, model.n_classes, device, show_progress=progress, desc="seed prototypes"
        ):
            model.check_input(x)
            f = model.features(x)
            z = model.add_on(f)
            e = torch.einsum("nchw,nc->nhw", f.float(), weight[y].float())
            if s > 1:
                e = nn.functional.avg_pool2d(e[:, None], s, stride=1)[:, 0]
            best, flat = e.flatten(1).max(dim=1)
            loc = torch.stack((flat // e.shape[-1], flat % e.shape[-1]), dim=1)
            idx = torch.arange(len(y), device=device)
            patches.append(PF.gather_patches(z, idx, loc, s).float())
            scores.append(best)
            locations.append(loc)
            labels.append(y)
            samples.append(idx + offset)
            offset += len(y)
    if not scores:
        raise ValueError("the loader yielded no images.")
    score, sample = torch.cat(scores), torch.cat(samples)
    location, patch, label = torch.cat(locations), torch.cat(patches), torch.cat(labels)
    classes = model.prototype_classes.to(device)
    chosen = torch.empty(model.n_prototypes, dtype=torch.long, device=device)
    for c in torch.unique(classes).tolist():
        slots = torch.nonzero(classes == c).flatten()
        mine = torch.nonzero(label == c).flatten()
        if mine.numel() == 0:
            raise ValueError(
                f"the loader has no images of class {c}, which owns prototypes; pass the "
                "(un-augmented) training set whose labels match the model's classes."
            )
        order = mine[score[mine].argsort(descending=True, stable=True)]
        chosen[slots] = order[torch.arange(slots.numel(), device=device) % order.numel()]
    model.prototypes.copy_(patch[chosen].to(model.prototypes))
    return {"sample_index": sample[chosen], "location": location[chosen], "evidence": score[chosen]}
