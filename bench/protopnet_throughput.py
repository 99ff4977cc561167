"""Joint-epoch training throughput of ``protopnet.fit`` on CPU (images/s).

A small ProtoPNet (the book's ``small_cnn`` trunk, 32 px, 10 classes) trained on random
images for one warm-up and ``--epochs`` joint epochs, no push, no validation; prints the
images/s of each joint epoch and their median. Compare two versions of the library by
pointing ``PYTHONPATH`` at each and interleaving the runs (the machine may be loaded)::

    PYTHONPATH=/tmp/before .venv/bin/python bench/protopnet_throughput.py
    .venv/bin/python bench/protopnet_throughput.py

Result (2026-11-29; median joint images/s of 3 epochs, two interleaved runs each; before =
the library before the per-batch host syncs were removed, after = the same library with
only the new training loop): H200, ``--device cuda --n 8192 --batch-size 64 --threads 4``:
before 10920 / 11767, after 8990 / 12899; the device machine's CPU, 1 thread, ``--n
1024``: before 1596 / 1652, after 1668 / 1580. No difference beyond run-to-run noise: this
tiny model is launch-bound, and the on-device NaN guard adds a few small kernels per batch
where the old loop had one host sync.
"""

from __future__ import annotations

import argparse
import inspect
import statistics

import torch
from torch.utils.data import DataLoader, TensorDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="training images")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4, help="joint epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import interp_lib.protopnet as pp

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = inspect.signature(pp.ProtoPNet).parameters
    k = "n_classes" if "n_classes" in params else "num_classes"
    size = "image_size" if "image_size" in params else "img_size"
    per_new = "n_prototypes_per_class" in params
    per = "n_prototypes_per_class" if per_new else "prototypes_per_class"
    model = pp.ProtoPNet("small_cnn", **{k: 10, size: args.image_size, per: 4},
                         prototype_dim=32, backbone_kwargs={"widths": (16, 32)})  # fmt: skip
    x = torch.rand(args.n, 3, args.image_size, args.image_size)
    y = torch.randint(0, 10, (args.n,))
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True)
    schedule = pp.Schedule(epochs=1 + args.epochs, warmup_epochs=1, push_start=10**6,
                           final_push=False)  # fmt: skip
    h = pp.fit(model, loader, schedule=schedule, progress=False, seed=0, device=args.device)
    rates = [args.n / r.seconds for r in h if r.stage.value == "joint"]
    print(f"{pp.__file__} on {args.device}")
    print("joint images/s: " + " ".join(f"{r:.0f}" for r in rates)
          + f"  median {statistics.median(rates):.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
