"""Benchmark: ProtoPNet training throughput and the cost of push, on the procedural birds.

All timings come from the same process, model and data, and are printed as ratios:

- inference: one pass of ``model(x)`` (eval mode, no grad) over the data, in images/s;
- push: ``push(model, loader)`` over the same data, relative to that inference pass
  (target: at most 1.5x; push computes the latent maps and distances once, plus a few
  reductions, and no Python loop over prototypes);
- training: the joint stage of ``fit`` (forward, the four loss terms, backward, Adam step)
  in images/s, relative to inference, and relative to a bare hand-written training loop
  doing the same work (the overhead of ``fit``'s logging and checks).

    python bench/protopnet.py                       # small CNN, 64 px, 500 birds, CPU
    python bench/protopnet.py --threads 1 --size 64 --n-per-class 50
    python bench/protopnet.py --device cuda --amp bf16 --channels-last

Each figure is the median of ``--repeats`` runs (the first, warm-up run is dropped).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

# Running `python bench/protopnet.py` puts bench/ first on sys.path, where bench/profile.py
# would shadow the standard library's `profile` module (which torch imports).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    from _common import load, machine, now, write_summary

    sys.path.pop(0)
else:  # imported as bench.protopnet
    from bench._common import load, machine, now, write_summary


def _median_time(fn, repeats: int) -> float:
    import torch

    fn()  # warm-up: allocator, oneDNN primitives, CUDA kernels
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-per-class", type=int, default=50)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--prototypes-per-class", type=int, default=10)
    ap.add_argument("--prototype-dim", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default=None, choices=[None, "bf16", "fp16"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write a summary for bench/report.py here")
    args = ap.parse_args()
    load_before = load()

    import torch
    from torch.utils.data import DataLoader

    from interp_lib.datasets import birds
    from interp_lib.protopnet import ProtoPNet, Schedule, fit, protopnet_loss, push

    if args.threads:
        torch.set_num_threads(args.threads)  # benchmark only: never in library code
    device = torch.device(args.device)
    data = birds(args.n_per_class, image_size=args.size, classes=args.classes, seed=0)
    n = len(data)
    loader = DataLoader(data, batch_size=args.batch, shuffle=False)
    torch.manual_seed(0)
    model = ProtoPNet(
        "small_cnn",
        n_classes=args.classes,
        n_prototypes_per_class=args.prototypes_per_class,
        prototype_dim=args.prototype_dim,
        image_size=args.size,
    ).to(device)
    print(
        f"ProtoPNet small_cnn, {n} birds of {args.size} px, batch {args.batch}, "
        f"{model.n_prototypes} prototypes x {args.prototype_dim}, latent "
        f"{model.receptive_field.n}x{model.receptive_field.n}; device {device}, "
        f"{torch.get_num_threads()} threads, amp={args.amp}, channels_last={args.channels_last}"
    )

    @torch.no_grad()
    def inference() -> None:
        model.eval()
        for x, _y, *_ in loader:
            model(x.to(device, non_blocking=True))

    def do_push() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate-prototype warnings
            push(model, loader, device=device, progress=False)

    t_inf = _median_time(inference, args.repeats)
    t_push = _median_time(do_push, args.repeats)

    # training: the joint stage of fit, one epoch per repeat (the warm-up epoch first)
    sched = Schedule(epochs=1 + args.repeats, warmup_epochs=1, push_start=10**9,
                     final_push=False)  # fmt: skip
    train_loader = DataLoader(data, batch_size=args.batch, shuffle=True)
    h = fit(model, train_loader, schedule=sched, device=device, amp=args.amp,
            channels_last=args.channels_last, progress=False)  # fmt: skip
    t_fit = statistics.median(r.seconds for r in h if r.stage.value == "joint")
    t_warm = h[0].seconds

    # the same joint epoch as a bare loop (no checks, no logging, no autocast)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def bare_epoch() -> None:
        model.train()
        for x, y, *_ in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss, _ = protopnet_loss(model.forward_all(x), y, model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    t_bare = _median_time(bare_epoch, args.repeats)

    print(f"inference pass          {n / t_inf:9.1f} images/s  ({t_inf:.3f} s)")
    print(f"push                    {n / t_push:9.1f} images/s  ({t_push:.3f} s)")
    print(f"fit, warm-up epoch      {n / t_warm:9.1f} images/s  ({t_warm:.3f} s, first epoch)")
    print(f"fit, joint epoch        {n / t_fit:9.1f} images/s  ({t_fit:.3f} s)")
    print(f"bare loop, joint epoch  {n / t_bare:9.1f} images/s  ({t_bare:.3f} s)")
    ok = "OK" if t_push <= 1.5 * t_inf else "ABOVE TARGET"
    print(f"ratio push / inference          {t_push / t_inf:6.2f}  (target <= 1.5: {ok})")
    print(f"ratio fit joint epoch / inference {t_fit / t_inf:6.2f}")
    print(f"ratio fit / bare training loop  {t_fit / t_bare:6.2f}")
    if args.json:
        setting = (f"{n} birds at {args.size} px, {model.n_prototypes} prototypes, "
                   f"{args.device}, {torch.get_num_threads()} thread(s)")  # fmt: skip
        write_summary(args.json, {
            "script": "bench/protopnet.py", "date": now(), "machine": machine(),
            "threads": torch.get_num_threads(), "load_before": load_before,
            "load_after": load(),
            "table": [
                {"what": "ProtoPNet push vs an inference pass", "setting": setting,
                 "ours": f"push {n / t_push:.0f} images/s",
                 "peer": f"inference {n / t_inf:.0f} images/s",
                 "ratio": f"push takes {t_push / t_inf:.2f}x the inference time (target <= 1.5)"},
                {"what": "ProtoPNet training, joint epoch of fit", "setting": setting,
                 "ours": f"{n / t_fit:.0f} images/s",
                 "peer": f"bare hand-written loop {n / t_bare:.0f} images/s",
                 "ratio": f"fit takes {t_fit / t_bare:.2f}x the bare loop's time"},
            ],
            "seconds": {"inference": t_inf, "push": t_push, "fit_joint": t_fit,
                        "bare_joint": t_bare},
        })  # fmt: skip


if __name__ == "__main__":
    main()
