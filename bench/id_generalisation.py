"""Bench: last-hidden ID against test error over converged networks; shuffled labels; MNIST*.

Three experiments of Ansuini et al. (2019) on scikit-learn's 1797 digits at 16 px
(1347 training and 450 test images, a seeded stratified split):

- ``family``: networks that differ in architecture (depth, width, kind: VGG-like and
  ResNet-like), several seeds each, all trained to convergence (Adam, ``--epochs``).
  The last hidden layer is taken **after** its ReLU, as the released
  ``scripts/pretrained/last_hidden.py`` takes ``classifier[:-1]`` (a ResNet's average
  pool). Its TwoNN ID (mean over 90 % subsamples) on all 1797 images against the test
  error; also the ID after every ``--every`` epochs (training progress, kept apart);
- ``shuffled``: the paper's MNIST architecture (conv32-pool-conv64-pool-fc128-out) on
  600 training digits with true or shuffled labels, several seeds, until it fits;
  profile on those 600 images (the released ``analyze.py`` measures training images);
- ``star``: MNIST* as the released ``create_mnist_with_gradient.py`` builds it
  (:func:`interp_lib.datasets.luminance_offset`, lambda = 300, train and test rescaled
  separately), then z-scored with the training set's mean and std as ``mnist_grad.py``
  does; the same architecture, clean vs MNIST*, several seeds.

    python bench/id_generalisation.py --out bench/results/id_generalisation.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from interp_lib.datasets import digits, luminance_offset
from interp_lib.id import twonn
from interp_lib.models import accuracy, cnn_classifier, train_classifier
from interp_lib.profile import collect_activations, layer_ids
from interp_lib.studies import residual_classifier

#: name -> (factory keyword arguments, last hidden layer after its ReLU)
ARCHS = {
    "vgg1-16": ("cnn", dict(widths=(16,), hidden=(128,))),
    "vgg2-8": ("cnn", dict(widths=(8, 16), hidden=(64,))),
    "vgg2-32": ("cnn", dict(widths=(32, 64), hidden=(128,))),  # the paper's MNIST net
    "vgg2-fc2": ("cnn", dict(widths=(16, 32), hidden=(128, 64))),
    "vgg3x2": ("cnn", dict(widths=(16, 32, 64), convs_per_stage=2, hidden=(128,))),
    "resnet3": ("resnet", dict(widths=(16, 32, 64))),
}


def make_net(arch: str, seed: int, size: int = 16) -> tuple[torch.nn.Module, str]:
    """A fresh network and the name of its last hidden layer (post-ReLU)."""
    kind, kw = ARCHS[arch]
    torch.manual_seed(seed)
    if kind == "resnet":
        return residual_classifier(10, in_channels=1, image_size=size, **kw), "avgpool"
    net = cnn_classifier(10, in_channels=1, image_size=size, **kw)
    return net, f"relu_fc{len(kw['hidden'])}"


def last_hidden_id(net, layer, images, n_resamples=5) -> float:
    acts = collect_activations(net, images, [layer], progress=False)[layer]
    res = twonn(acts.flatten(1).double(), n_resamples=n_resamples, seed=0)
    return float(res.resamples.mean()) if res.resamples is not None else res.dimension


def profile_ids(net, layer: str, images: torch.Tensor) -> dict:
    """Mean TwoNN ID (5 resamples) of the input, both pools, the last hidden layer and the
    output: the ``layers`` and ``ids`` of a row."""
    layers = ["input", "features.pool1", "features.pool2", layer, "out"]
    prof = layer_ids(net, images, layers, n_resamples=5, progress=False)
    return {"layers": list(prof.layers), "ids": [sum(r) / len(r) for r in prof.resamples]}


def ids_text(row: dict) -> str:
    return f"IDs {[round(v, 1) for v in row['ids']]}"


def family(args, train, test, every) -> list[dict]:
    rows = []
    for arch in ARCHS:
        for seed in args.seeds:
            t = time.time()
            net, layer = make_net(arch, seed)
            progress = [(0, last_hidden_id(net, layer, every.images), 1 - accuracy(net, test))]
            for start in range(0, args.epochs, args.every):
                n = min(args.every, args.epochs - start)
                hist = train_classifier(
                    net, train, epochs=n, seed=seed * 1000 + start, progress=False
                )
                progress.append(
                    (start + n, last_hidden_id(net, layer, every.images), 1 - accuracy(net, test))
                )
            row = {
                "arch": arch,
                "seed": seed,
                "layer": layer,
                "train_accuracy": hist.train_accuracy[-1],
                "test_error": 1 - accuracy(net, test),
                "last_hidden_id": progress[-1][1],
                "progress": progress,
                "seconds": time.time() - t,
            }
            rows.append(row)
            print(
                f"{arch} seed {seed}: train acc {row['train_accuracy']:.3f} test err "
                f"{row['test_error']:.3f} ID {row['last_hidden_id']:.2f} "
                f"({row['seconds']:.0f} s)",
                flush=True,
            )
    return rows


def shuffled(args, train) -> list[dict]:
    x, y = train.images[:600], train.labels[:600]
    rows = []
    for seed in args.seeds:
        for shuffle in (False, True):
            net, layer = make_net("vgg2-32", seed)
            hist = train_classifier(
                net,
                (x, y),
                epochs=args.shuffled_epochs,
                shuffle_labels=shuffle,
                seed=seed,
                progress=False,
            )
            rows.append(
                {
                    "seed": seed,
                    "shuffled": shuffle,
                    "train_accuracy": hist.train_accuracy[-1],
                    **profile_ids(net, layer, x),
                }
            )
            print(
                f"shuffled={shuffle} seed {seed}: train acc {hist.train_accuracy[-1]:.3f} "
                f"{ids_text(rows[-1])}",
                flush=True,
            )
    return rows


def star(args) -> list[dict]:
    raw_train = digits("train", image_size=16)
    raw_test = digits("test", image_size=16)
    rows = []
    for variant in ("clean", "star"):
        xtr, xte = raw_train.images, raw_test.images
        if variant == "star":
            xtr = luminance_offset(xtr, args.lam, seed=1)
            xte = luminance_offset(xte, args.lam, seed=2)
        mean, std = xtr.mean(), xtr.std()  # as mnist_grad.py: the training set's scalars
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
        x_all = torch.cat([xtr, xte])
        for seed in args.seeds:
            net, layer = make_net("vgg2-32", seed)
            hist = train_classifier(
                net,
                (xtr, raw_train.labels),
                test=(xte, raw_test.labels),
                epochs=args.star_epochs,
                seed=seed,
                progress=False,
            )
            rows.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "test_accuracy": hist.test_accuracy,
                    **profile_ids(net, layer, x_all),
                }
            )
            print(
                f"{variant} seed {seed}: test acc {hist.test_accuracy[-1]:.3f} {ids_text(rows[-1])}",
                flush=True,
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["family", "shuffled", "star"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--shuffled-epochs", type=int, default=150)
    ap.add_argument("--star-epochs", type=int, default=60)
    ap.add_argument("--lam", type=float, default=300.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/results/id_generalisation.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = digits("train", image_size=16, normalize=True)
    test = digits("test", image_size=16, normalize=True)
    every = digits("all", image_size=16, normalize=True)
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    for part in args.parts:
        t = time.time()
        if part == "family":
            out["family"] = family(args, train, test, every)
        elif part == "shuffled":
            out["shuffled"] = shuffled(args, train)
        elif part == "star":
            out["star"] = star(args)
        out[f"{part}_seconds"] = time.time() - t
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
