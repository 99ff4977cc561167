"""A plain training loop for image classifiers, and their accuracy.

The ID chapters train many small networks on CPU (different widths, depths, label
noise, training lengths) with :func:`train_classifier`; the architectures live in
:mod:`interp_lib.networks` (:func:`~interp_lib.networks.cnn_classifier`,
:func:`~interp_lib.networks.residual_classifier`). ProtoPNet's warm start trains its
trunk with the same loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ._plumbing import (
    NonFiniteLossError,
    check_device,
    evaluating,
    to_device,
    train_device,
    unpack_batch,
)
from ._plumbing import progress as progress_bar
from ._validation import check_bool, check_int, make_generator

__all__ = ["TrainHistory", "accuracy", "train_classifier"]


@dataclass
class TrainHistory:
    """Per-epoch record of :func:`train_classifier`."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)

    @property
    def final_test_accuracy(self) -> float:
        return self.test_accuracy[-1] if self.test_accuracy else float("nan")


def _as_dataset(data) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return TensorDataset(*data)
    raise TypeError(
        f"data must be a Dataset or an (images, labels) tuple of tensors, got {type(data).__name__}."
    )


@torch.no_grad()
def accuracy(
    model: nn.Module, data, *, batch_size: int = 256, device: torch.device | str | None = None
) -> float:
    """Share of correctly classified samples; ``data`` is a Dataset or ``(x, y)`` tensors.

    Runs on the model's device (``device``, if given, must agree with it), in eval mode
    (the previous mode is restored).
    """
    device = check_device(model, device)
    correct = total = 0
    with evaluating(model):
        for batch in DataLoader(_as_dataset(data), batch_size=batch_size):
            b = unpack_batch(batch, need_labels=True)
            pred = model(b.x.to(device)).argmax(1).cpu()
            correct += int((pred == b.y).sum())
            total += len(b.y)
    return correct / max(total, 1)


def train_classifier(
    model: nn.Module,
    train,
    *,
    test=None,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    shuffle_labels: bool = False,
    seed: int | torch.Generator | None = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    lr_milestones: Sequence[int] = (),
    lr_gamma: float = 0.1,
    restore_best: bool = False,
    channels_last: bool = False,
) -> TrainHistory:
    """Train ``model`` with Adam and cross-entropy; record loss and accuracies per epoch.

    Parameters
    ----------
    model : torch.nn.Module
        Maps images to logits.
    train, test : Dataset or (images, labels) tuple
        ``test`` is only evaluated, never trained on.
    epochs, lr, weight_decay, batch_size : training settings
    shuffle_labels : bool, default False
        Train on a fixed random permutation of the labels (Zhang et al.'s control: the
        network can only memorise).
    seed : int, torch.Generator or None
        Seeds the initial shuffle of labels and the batch order (a generator is used,
        and advanced, as is; ``None`` draws fresh randomness).
    device : torch.device or str, optional
        The model is moved there (a trainer, see the device policy in
        ``interp_lib._plumbing``); ``None`` keeps it where it is.
    progress : bool
    lr_milestones : sequence of int
        Multiply the learning rate by ``lr_gamma`` after each of these epochs
        (``torch.optim.lr_scheduler.MultiStepLR``); empty: a constant learning rate.
    lr_gamma : float
        The factor of each step.
    restore_best : bool, default False
        At the end, load the weights of the epoch with the highest ``test`` accuracy
        (pass a *validation* split as ``test`` then: it selects the model). Needs ``test``.
    channels_last : bool, default False
        Train in the channels-last memory format (model and images): the same function,
        faster convolutions on most CPUs and recent GPUs; the model is left in that format.

    Returns
    -------
    TrainHistory

    Raises
    ------
    interp_lib.protopnet.NonFiniteLossError
        If the loss becomes NaN or infinite (the epoch and batch are named); a subclass
        of ``FloatingPointError``.
    """
    epochs = check_int(epochs, "epochs")
    milestones = [check_int(m, "lr_milestones entry", minimum=1) for m in lr_milestones]
    if restore_best and test is None:
        raise ValueError(
            "restore_best=True selects the epoch with the best accuracy on `test`, but no "
            "test split was given; pass test=<a validation split> or restore_best=False."
        )
    channels_last = check_bool(channels_last, "channels_last")
    device = train_device(model, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    ds = _as_dataset(train)
    gen = make_generator(seed)
    if shuffle_labels:
        x, y = zip(*(ds[i][:2] for i in range(len(ds))), strict=True)
        y = torch.as_tensor(y)
        ds = TensorDataset(torch.stack(x), y[torch.randperm(len(y), generator=gen)])
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = None
    if milestones:
        steps = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=lr_gamma)
    history = TrainHistory()
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    for epoch in progress_bar(range(1, epochs + 1), progress, "training"):
        model.train()
        total = correct = 0
        running = 0.0
        for b, batch in enumerate(loader):
            batch = to_device(unpack_batch(batch, need_labels=True), device,
                              channels_last=channels_last)  # fmt: skip
            x, y = batch.x, batch.y
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, batch {b}: lower the learning rate."
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += value * len(y)
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
        history.loss.append(running / total)
        history.train_accuracy.append(correct / total)
        if steps is not None:
            steps.step()
        if test is not None:
            history.test_accuracy.append(accuracy(model, test, device=device))
            if restore_best and (best is None or history.test_accuracy[-1] > best[0]):
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (history.test_accuracy[-1], state)
    if best is not None:
        model.load_state_dict(best[1])
    model.eval()
    return history
