"""ProtoPNet on the procedural birds, on CPU: the library's documented recipe, end to end.

1. warm start: ``pretrain_backbone`` trains the small CNN trunk as a global-max-pool
   linear classifier (our offline stand-in for ImageNet pretraining);
2. ``ProtoPNet(net.features, ...)``, ``seed_prototypes`` with the pretrained head, then
   ``fit`` with ``Schedule.cpu_birds()`` (model selection on a validation split);
3. a final ``push`` gives each prototype's source image and patch; we count the
   prototypes whose patch centre lies on the bird (any ground-truth part mask), and those
   whose 95th-percentile activation box is mostly on the bird, against chance (a centre
   drawn uniformly in the image; the same box at a uniformly random place).

Test accuracy is printed for the report only; nothing is selected on it. Runs with
``torch.set_num_threads(1)`` by default (``--threads``), since the machine it was written
on is shared. ``--scratch`` skips the warm start (the trunk is trained from scratch inside
``fit``) and ``--no-seed`` the prototype seeding, for comparison.

    python bench/protopnet_birds.py                  # ~ 6 minutes on one (shared) core
    python bench/protopnet_birds.py --no-seed        # ablation: U[0, 1) prototypes

Measured (defaults, one thread, 2-core machine shared with other jobs): pretrain 10
epochs 142 s (val 0.885), fit 12 epochs 193 s; selected val accuracy 0.585, test accuracy
0.582 (chance 0.100); patch centre on the bird for 66 % of the 50 pushed prototypes
(chance 10.4 %: the bird's area share), 95th-percentile box mostly on the bird for 60 %
(chance 12.9 %); parts under the centres: body 17, wing 10, legs 2, tail 2, head 2,
background 17. ``--no-seed``: test 0.120, 2 % on the bird. ``--epochs 20``: test 0.592
(the step decay leaves little to learn after epoch 12). ``--prototypes-per-class 10``:
val 0.510, test 0.560, 73 % centred on the bird; ``--prototype-dim 128``: val 0.505, test
0.556, 74 % (the defaults have the best validation accuracy).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from interp_lib.datasets.birds import PARTS, birds
from interp_lib.models import accuracy
from interp_lib.protopnet import (
    ProtoPNet,
    Schedule,
    fit,
    pretrain_backbone,
    push,
    seed_prototypes,
)


def centre_hits(result, masks: torch.Tensor, rf) -> tuple[torch.Tensor, torch.Tensor]:
    """Part under the centre of each prototype's source patch.

    Returns ``(on_bird (P,) bool, part (P,) long)``, ``part`` = -1 off the bird (the
    topmost visible part otherwise, masks being disjoint visible pixels).
    """
    height, width = masks.shape[-2:]
    centre = rf.start + result.location.double() * rf.jump  # (P, 2) pixel coordinates
    yy = centre[:, 0].floor().long().clamp(0, height - 1)
    xx = centre[:, 1].floor().long().clamp(0, width - 1)
    at = masks[result.sample_index, :, yy, xx]  # (P, parts)
    on = at.any(1)
    part = torch.where(on, at.float().argmax(1), torch.full_like(yy, -1))
    return on, part


def box_hits(
    result, masks: torch.Tensor, shifts: int = 200, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """Whether most of each prototype's 95th-percentile box lies on the bird, and the
    chance rate: the same-size box at ``shifts`` uniformly random places of the same
    image."""
    bird = masks.any(1).float()  # (N, H, W)
    height, width = bird.shape[-2:]
    g = torch.Generator().manual_seed(seed)
    hits, chance = [], []
    for p in range(result.sample_index.numel()):
        b = bird[int(result.sample_index[p])]
        x0, y0, x1, y1 = (int(v) for v in result.activation_box[p])
        hits.append(float(b[y0:y1, x0:x1].mean()) > 0.5)
        h, w = y1 - y0, x1 - x0
        ys = torch.randint(0, height - h + 1, (shifts,), generator=g)
        xs = torch.randint(0, width - w + 1, (shifts,), generator=g)
        integral = torch.nn.functional.pad(b.cumsum(0).cumsum(1), (1, 0, 1, 0))
        area = (
            integral[ys + h, xs + w]
            - integral[ys, xs + w]
            - integral[ys + h, xs]
            + integral[ys, xs]
        )
        chance.append(float((area / (h * w) > 0.5).float().mean()))
    return torch.tensor(hits), sum(chance) / len(chance)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-per-class", type=int, default=150, help="training images per class")
    ap.add_argument("--val-per-class", type=int, default=20)
    ap.add_argument("--test-per-class", type=int, default=50)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--difficulty", type=float, default=0.5)
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=None, help="ProtoPNet epochs (preset's)")
    ap.add_argument("--prototypes-per-class", type=int, default=5)
    ap.add_argument("--prototype-dim", type=int, default=64)
    ap.add_argument("--scratch", action="store_true", help="no warm start")
    ap.add_argument("--no-seed", action="store_true", help="warm trunk, U[0,1) prototypes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    kw = {"size": args.size, "classes": args.classes, "difficulty": args.difficulty}
    train = birds(args.n_per_class, seed=args.seed, return_masks=True, **kw)
    val = birds(args.val_per_class, seed=args.seed + 1000, **kw)
    test = birds(args.test_per_class, seed=args.seed + 2000, **kw)
    mean = train.images.mean((0, 2, 3), keepdim=True)
    std = train.images.std((0, 2, 3), keepdim=True)

    def norm(ds):
        return TensorDataset((ds.images - mean) / std, ds.labels)

    train_n, val_n, test_n = norm(train), norm(val), norm(test)
    train_loader = DataLoader(
        train_n, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(args.seed)
    )
    push_loader = DataLoader(train_n, batch_size=128, shuffle=False)
    val_loader = DataLoader(val_n, batch_size=256)
    timings["data"] = time.perf_counter() - t0
    print(
        f"birds {args.size}px, difficulty {args.difficulty}, {train.n_classes} classes: "
        f"{len(train)} train / {len(val)} val / {len(test)} test images; "
        f"torch threads {torch.get_num_threads()}"
    )

    backbone_kwargs = {"widths": tuple(args.widths)}
    t0 = time.perf_counter()
    if args.scratch:
        torch.manual_seed(args.seed)
        trunk = "small_cnn"
    else:
        net, hist = pretrain_backbone(
            "small_cnn", train_n, n_classes=train.n_classes, epochs=args.pretrain_epochs,
            val=val_n, seed=args.seed, progress=False, return_history=True,
            backbone_kwargs=backbone_kwargs,
        )  # fmt: skip
        trunk = net.features
        print(
            f"warm start ({args.pretrain_epochs} epochs, global max pool + linear): val "
            f"accuracy per epoch {[round(a, 3) for a in hist.test_accuracy]}"
        )
    timings["pretrain"] = time.perf_counter() - t0

    torch.manual_seed(args.seed)
    model = ProtoPNet(
        trunk, n_classes=train.n_classes, n_prototypes_per_class=args.prototypes_per_class,
        prototype_dim=args.prototype_dim, image_size=args.size,
        backbone_kwargs=backbone_kwargs if args.scratch else None,
    )  # fmt: skip
    if not args.scratch and not args.no_seed:
        seed_prototypes(model, push_loader, net.head)
        print(f"seeded prototypes: val accuracy {accuracy(model, val_n):.3f} before fit")
    schedule = Schedule.cpu_birds() if args.epochs is None else Schedule.cpu_birds(args.epochs)
    t0 = time.perf_counter()
    history = fit(
        model, train_loader, val_loader=val_loader, push_loader=push_loader,
        schedule=schedule, device="cpu", progress=False, seed=args.seed,
    )  # fmt: skip
    timings["fit"] = time.perf_counter() - t0
    frame = [
        (r.epoch, r.stage.value, round(r.val["accuracy"], 3))
        for r in history.records
        if r.stage.value != "last_layer" or r.pass_index == schedule.last_layer_passes - 1
    ]
    print(f"fit ({schedule.epochs} epochs, pushes after {schedule.push_epochs()}): "
          f"val accuracy {frame}")  # fmt: skip
    print(f"selected step {history.best_step}: val accuracy {history.best_val_accuracy:.3f}")

    t0 = time.perf_counter()
    test_acc = accuracy(model, test_n)
    timings["test"] = time.perf_counter() - t0
    print(f"test accuracy {test_acc:.3f} (chance {1 / train.n_classes:.3f})")

    t0 = time.perf_counter()
    result = push(model, push_loader, progress=False)  # already pushed: provenance only
    timings["push"] = time.perf_counter() - t0
    masks = train.masks
    on, part = centre_hits(result, masks, model.prototype_receptive_field)
    area = masks.any(1).float().mean((1, 2))
    chance_centre = float(area[result.sample_index].mean())
    box_on, chance_box = box_hits(result, masks)
    n_p = model.n_prototypes
    print(f"prototypes ({n_p}) whose patch centre is on the bird: {float(on.float().mean()):.3f} "
          f"(chance = bird area share of their source images {chance_centre:.3f}; "
          f"of all training images {float(area.mean()):.3f})")  # fmt: skip
    print(f"prototypes whose 95%-box is mostly on the bird: {float(box_on.float().mean()):.3f} "
          f"(chance, same boxes at random places {chance_box:.3f}); "
          f"mean box area {float(_box_area(result).mean()):.0f} px^2")  # fmt: skip
    counts = {name: int((part == i).sum()) for i, name in enumerate(PARTS)}
    counts["background"] = int((part < 0).sum())
    print(f"part under each prototype centre: {counts}")
    print(f"distinct source patches: {n_p - sum(len(g) - 1 for g in result.duplicates())}/{n_p}")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


def _box_area(result) -> torch.Tensor:
    b = result.activation_box
    return ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).float()  # (x0, y0, x1, y1)


if __name__ == "__main__":
    main()
