"""Bench: the hunchback on single-class sets of procedural birds, trained vs untrained.

The protocol of Ansuini et al. (2019, the released ``scripts/pretrained/hunchback.py``):
single-class image sets (there: 7 ImageNet categories x about 500 training images), the
network in eval mode, checkpoints at the input, every max-pool (every stage of a ResNet),
every linear layer (its output, before the ReLU, as the released script hooks the
``Linear`` modules) and the output; TwoNN (least squares on 90 % of the ratios) averaged
over 90 % subsamples (there 50, here ``--n-resamples``); PC-ID on z-scored units. The
same for the untrained twin (same initial weights). Added here: the Gride ID at
neighbour ranks 2 ... 128 (the ID-vs-scale curve of every layer) and several seeds.

Data: ``interp_lib.datasets.birds`` at 64 px, 5 classes, 500 training images per class
(profiled, as the paper profiles training images) and 100 test images per class.

    python bench/id_hunchback.py --out bench/results/id_hunchback.json
    python bench/id_hunchback.py --archs vgg8 --seeds 0 --epochs 2   # smoke test

Each finished network is appended to the JSON file at once (re-running skips networks
already there), so a long run can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from interp_lib.datasets import birds
from interp_lib.models import accuracy, cnn_classifier, train_classifier
from interp_lib.studies import class_profiles, residual_classifier

WIDTHS = (16, 32, 64, 128)


def make_net(arch: str, n_classes: int, image_size: int, seed: int) -> torch.nn.Module:
    """The architectures of the study, initialised with ``seed``."""
    torch.manual_seed(seed)
    if arch == "vgg8":  # 4 stages x 2 convs + BN, fc 128-64 (the lead)
        return cnn_classifier(
            n_classes,
            image_size=image_size,
            widths=WIDTHS,
            convs_per_stage=2,
            hidden=(128, 64),
            batch_norm=True,
        )
    if arch == "vgg4":  # 4 stages x 1 conv + BN: half the depth
        return cnn_classifier(
            n_classes,
            image_size=image_size,
            widths=WIDTHS,
            convs_per_stage=1,
            hidden=(128, 64),
            batch_norm=True,
        )
    if arch == "resnet":  # stem + 4 residual stages of 1 block (2 convs) each
        return residual_classifier(n_classes, image_size=image_size, widths=WIDTHS)
    raise ValueError(f"unknown arch {arch!r}; choose vgg8, vgg4 or resnet.")


def summary(prof) -> dict:
    return {
        "layers": list(prof.layers),
        "relative_depth": list(prof.relative_depth),
        "n_features": list(prof.n_features),
        "twonn": prof.twonn.tolist(),
        "pca": prof.pca.tolist(),
        "gride_ranks": list(prof.gride_ranks),
        "gride": prof.gride.tolist(),
        "gride_scale": prof.gride_scale.tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["vgg8", "vgg4", "resnet"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--difficulty", type=float, default=1.0)
    ap.add_argument("--n-classes", type=int, default=5)
    ap.add_argument("--n-per-class", type=int, default=500)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--n-resamples", type=int, default=5)
    ap.add_argument("--max-rank", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/results/id_hunchback.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    results["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    done = {(r["arch"], r["seed"], r["difficulty"]) for r in results["runs"]}
    t0 = time.time()
    train = birds(
        args.n_per_class,
        image_size=args.image_size,
        classes=args.n_classes,
        difficulty=args.difficulty,
        seed=0,
    )
    test = birds(
        100, image_size=args.image_size, classes=args.n_classes, difficulty=args.difficulty, seed=1
    )
    print(f"data: {time.time() - t0:.0f} s", flush=True)
    for arch in args.archs:
        for seed in args.seeds:
            if (arch, seed, args.difficulty) in done:
                continue
            t = time.time()
            untrained = make_net(arch, args.n_classes, args.image_size, seed).eval()
            net = make_net(arch, args.n_classes, args.image_size, seed)
            hist = train_classifier(
                net,
                (train.images, train.labels),
                test=(test.images, test.labels),
                epochs=args.epochs,
                lr=args.lr,
                seed=seed,
                progress=False,
            )
            t_train = time.time() - t
            kw = dict(n_resamples=args.n_resamples, max_rank=args.max_rank, seed=0)
            run = {
                "arch": arch,
                "seed": seed,
                "difficulty": args.difficulty,
                "test_accuracy": hist.test_accuracy,
                "train_accuracy": hist.train_accuracy,
                "final_test_accuracy": accuracy(net, (test.images, test.labels)),
                "trained": summary(class_profiles(net, train.images, train.labels, **kw)),
                "untrained": summary(class_profiles(untrained, train.images, train.labels, **kw)),
                "train_seconds": t_train,
                "seconds": time.time() - t,
            }
            results["runs"].append(run)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results))
            tw = torch.tensor(run["trained"]["twonn"]).mean(0)
            uw = torch.tensor(run["untrained"]["twonn"]).mean(0)
            print(
                f"{arch} seed {seed}: acc {run['final_test_accuracy']:.3f} "
                f"({run['seconds']:.0f} s)\n  trained   {[round(v, 1) for v in tw.tolist()]}"
                f"\n  untrained {[round(v, 1) for v in uw.tolist()]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
