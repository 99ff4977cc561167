"""The two controls of Ansuini et al. (2019), Section 4: shuffled labels and MNIST*.

==============================  =====================================================
shuffled labels, memorised      :func:`shuffled_label_study` (the paper's MNIST
                                architecture trained on true or shuffled labels until
                                it fits them; layer IDs on the training images)
MNIST*, a brightness offset     :func:`mnist_star_study` (the same architecture, clean
                                digits vs MNIST* at several offsets ``lambda``;
                                accuracy and layer IDs)
==============================  =====================================================

Both run on scikit-learn's 1797 digits at 16 px (the book is offline; the authors use
MNIST's 60000 images at 28 px). Results are plain dicts, ready for JSON.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import torch

from .._plumbing import require
from .generalisation import Architecture, train_to_criterion

__all__ = [
    "MNIST_NET",
    "PROFILE_LAYERS",
    "mnist_star_study",
    "profile_table",
    "shuffled_label_study",
]

#: The authors' MNIST network (``mnist_archs.Net``: conv32-pool-conv64-pool-fc128-out),
#: with padded 3x3 convolutions for 16-px digits.
MNIST_NET = Architecture("mnist-net", "vgg", (32, 64), hidden=(128,))

#: The checkpoints profiled: input, both pools, the last hidden layer (after its ReLU),
#: the output.
PROFILE_LAYERS = ("input", "features.pool1", "features.pool2", "relu_fc1", "out")


def _profile(net, images: torch.Tensor, n_resamples: int = 5) -> dict[str, float]:
    from ..profile import layer_ids

    with warnings.catch_warnings():  # ReLU ties: TwoNN drops them and says so
        warnings.filterwarnings("ignore", message=".*dropped.*")
        prof = layer_ids(net, images, list(PROFILE_LAYERS), n_resamples=n_resamples,
                         progress=False)  # fmt: skip
    return {layer: sum(r) / len(r) for layer, r in zip(prof.layers, prof.resamples, strict=True)}


def shuffled_label_study(
    *,
    seeds: Sequence[int] = (0, 1, 2),
    n_images: int = 400,
    target: float = 0.99,
    max_epochs: int = 400,
    lr: float = 1e-3,
    architecture: Architecture = MNIST_NET,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train the MNIST network on true and on shuffled labels until it fits them.

    The first ``n_images`` training digits (16 px, z-scored); the shuffled labels are one
    fixed random permutation per seed. Training stops when the accuracy on those images
    (eval mode) reaches ``target`` (:func:`train_to_criterion`), at most ``max_epochs``.
    The IDs of ``PROFILE_LAYERS`` are measured on the same training images, as the
    authors' ``analyze.py`` does.

    Returns
    -------
    dict
        ``settings`` and ``rows`` (``seed, labels ("true"/"shuffled"), epochs, reached,
        train_accuracy, seconds, ids {layer: TwoNN}``).
    """
    from ..datasets import digits

    train = digits("train", image_size=16, normalize=True)
    x, y = train.images[:n_images], train.labels[:n_images]
    rows = []
    for seed in seeds:
        for shuffled in (False, True):
            start = time.perf_counter()
            gen = torch.Generator().manual_seed(10_000 + seed)
            labels = y[torch.randperm(len(y), generator=gen)] if shuffled else y
            net = architecture.build(10, in_channels=1, image_size=16, seed=seed)
            fit = train_to_criterion(
                net, x, labels, target=target, max_epochs=max_epochs, lr=lr, seed=seed
            )
            row = {
                "seed": seed,
                "labels": "shuffled" if shuffled else "true",
                "epochs": fit.epochs,
                "reached": fit.reached,
                "train_accuracy": fit.train_accuracy,
                "ids": _profile(net, x),
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            if log is not None:
                log(
                    f"shuffled={shuffled} seed {seed}: {fit.epochs} epochs, train acc "
                    f"{fit.train_accuracy:.3f}, IDs "
                    f"{[round(v, 1) for v in row['ids'].values()]} ({row['seconds']:.0f} s)"
                )
    settings = {
        "n_images": n_images,
        "target": target,
        "max_epochs": max_epochs,
        "lr": lr,
        "architecture": architecture.name,
        "layers": list(PROFILE_LAYERS),
    }
    return {"settings": settings, "rows": rows}


def _star_sets(lam: float, *, seed: int = 0):
    """Training and test digits (16 px) with the offset ``lam`` (0: clean), z-scored with
    the training set's scalar mean and std, as the authors' ``mnist_grad.py``."""
    from ..datasets import digits, luminance_offset

    raw_tr, raw_te = digits("train", image_size=16), digits("test", image_size=16)
    x_tr, x_te = raw_tr.images, raw_te.images
    if lam:
        x_tr = luminance_offset(x_tr, lam, seed=2 * seed + 1)
        x_te = luminance_offset(x_te, lam, seed=2 * seed + 2)
    mean, std = x_tr.mean(), x_tr.std()
    return (x_tr - mean) / std, raw_tr.labels, (x_te - mean) / std, raw_te.labels


def mnist_star_study(
    *,
    seeds: Sequence[int] = (0, 1, 2),
    lams: Sequence[float] = (0.0, 3.0, 30.0, 300.0),
    recipes: dict[str, dict] | None = None,
    architecture: Architecture = MNIST_NET,
    profile: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train the MNIST network on digits with a brightness offset of strength ``lambda``.

    Every ``lambda`` in ``lams`` (0: the clean digits), every recipe, every seed: test
    accuracy after training, the first convolution's kernel sums (a kernel whose weights
    sum to zero ignores a constant offset), and, with ``profile``, the TwoNN IDs of
    ``PROFILE_LAYERS`` on all 1797 images (training and test sets together).

    Parameters
    ----------
    recipes : dict name -> dict, optional
        Training settings: ``optimizer`` ("adam" or "sgd", SGD with momentum 0.9 as the
        authors), ``lr``, ``epochs``, ``batch_size`` (default 64). Default: Adam at 1e-3
        for 40 epochs. The authors' recipe is SGD at lr 1e-4, momentum 0.9, for 2 epochs
        of 60000 MNIST images at batch 64 (1876 steps, about 90 epochs of our 1347).

    Returns
    -------
    dict
        ``settings`` and ``rows`` (``lam, recipe, seed, train_accuracy,
        test_accuracy, test_accuracy_curve, kernel_sum_ratio, ids, seconds``).
        ``kernel_sum_ratio`` is the median over the first convolution's kernels of
        ``|sum w| / sum |w|`` (0: blind to an offset).
    """
    if recipes is None:
        recipes = {
            "adam": {"optimizer": "adam", "lr": 1e-3, "epochs": 40},
        }
    rows = []
    for lam in lams:
        for seed in seeds:
            x_tr, y_tr, x_te, y_te = _star_sets(float(lam), seed=seed)
            for name, recipe in recipes.items():
                start = time.perf_counter()
                net = architecture.build(10, in_channels=1, image_size=16, seed=seed)
                curve = _train_fixed(net, x_tr, y_tr, x_te, y_te, seed=seed, **recipe)
                w = net.features.conv1.weight.detach().flatten(1)
                ratio = float((w.sum(1).abs() / w.abs().sum(1)).median())
                row = {
                    "lam": float(lam),
                    "recipe": name,
                    "seed": seed,
                    "train_accuracy": curve[-1][1],
                    "test_accuracy": curve[-1][2],
                    "test_accuracy_curve": curve,
                    "kernel_sum_ratio": ratio,
                    "ids": _profile(net, torch.cat([x_tr, x_te])) if profile else {},
                    "seconds": time.perf_counter() - start,
                }
                rows.append(row)
                if log is not None:
                    log(
                        f"lambda {lam:g} {name} seed {seed}: train acc "
                        f"{row['train_accuracy']:.3f}, test acc {row['test_accuracy']:.3f}, "
                        f"|sum w|/sum|w| {ratio:.3f} ({row['seconds']:.0f} s)"
                    )
    settings = {"lams": [float(v) for v in lams], "recipes": recipes,
                "architecture": architecture.name, "layers": list(PROFILE_LAYERS)}  # fmt: skip
    return {"settings": settings, "rows": rows}


def _train_fixed(net, x_tr, y_tr, x_te, y_te, *, optimizer, lr, epochs, seed, batch_size=64):
    """A fixed number of epochs; ``[(epoch, train acc, test acc)]`` at five checkpoints."""
    from .generalisation import _accuracy

    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    elif optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}.")
    gen = torch.Generator().manual_seed(seed)
    curve = []
    every = max(1, epochs // 5)
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(y_tr), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss = torch.nn.functional.cross_entropy(net(x_tr[idx]), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch % every == 0 or epoch == epochs:
            if not curve or curve[-1][0] != epoch:
                curve.append((epoch, _accuracy(net, x_tr, y_tr), _accuracy(net, x_te, y_te)))
    net.eval()
    return curve


def profile_table(result: dict, by: str | Sequence[str]):
    """Mean and sd over seeds of the accuracies and layer IDs of a control's ``rows``.

    Parameters
    ----------
    result : dict
        From :func:`shuffled_label_study` or :func:`mnist_star_study`.
    by : str or sequence of str
        The grouping columns (``"labels"``; ``["lam", "recipe"]``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``by``; columns ``(quantity, "mean" | "sd")``.
    """
    pd = require("pandas", "interp_lib.studies.profile_table")

    by = [by] if isinstance(by, str) else list(by)
    flat = [
        {k: v for k, v in r.items() if k not in ("ids", "test_accuracy_curve")} | r["ids"]
        for r in result["rows"]
    ]
    df = pd.DataFrame(flat)
    cols = [c for c in df.columns if c not in (*by, "seed", "reached", "seconds")]
    cols = [c for c in cols if pd.api.types.is_numeric_dtype(df[c])]
    table = df.groupby(by, sort=False)[cols].agg(["mean", "std"])
    return table.rename(columns={"std": "sd"}, level=1)
