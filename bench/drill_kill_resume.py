"""Kill-and-resume drill: random SIGKILLs during ``protopnet.fit``, then resume.

Trains a tiny ProtoPNet (16 px squares, 4 classes; augmentation noise from torch's global
RNG and a shuffling loader, so a resume must restore every RNG state) in a subprocess
with ``checkpoint=..., resume=True``. Each trial kills the process with SIGKILL at a
random moment (up to ``--kills`` times, anywhere: in an epoch, a push, the last-layer
solve, or while saving), restarts it until it finishes, and compares the final weights
bit for bit with an uninterrupted run. It also checks that no temporary file is left.

The drill runs at each thread count of ``--threads`` (default ``1,2``: one thread, and two,
torch's default on a 2-core machine): the thread count changes the order of floating-point
sums, so the killed-and-resumed runs are compared with an uninterrupted run at the same
count. ``--json`` writes the counts as a summary for the README's table.

    .venv/bin/python bench/drill_kill_resume.py --trials 10
    .venv/bin/python bench/drill_kill_resume.py --json bench/summaries/drill_kill_resume.json
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine, now, write_summary


def _child(out: Path, threads: int) -> None:
    import torch
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    from interp_lib.protopnet import ProtoPNet, Schedule, fit

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    n = 96
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.2 * torch.rand(n, 3, 16, 16, generator=g)
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])
    corners = torch.randint(0, 13, (n, 2), generator=g)
    for i in range(n):
        a, b = int(corners[i, 0]), int(corners[i, 1])
        x[i, :, a : a + 4, b : b + 4] = colours[y[i]].view(3, 1, 1)
    base = TensorDataset(x, y)

    class Jitter(Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            xi, yi = base[i]
            return xi + 0.05 * torch.randn(xi.shape), yi

    torch.manual_seed(123)  # another init each time: the resume must overwrite it
    model = ProtoPNet("small_cnn", n_classes=4, n_prototypes_per_class=2, prototype_dim=8,
                      image_size=16, backbone_kwargs={"widths": (8, 8), "batch_norm": False})  # fmt: skip
    schedule = Schedule(epochs=5, warmup_epochs=1, push_start=2, push_every=2, final_push=True,
                        joint_lr_features=1e-2, joint_lr_add_on=1e-2, joint_lr_prototypes=1e-2,
                        steps_per_epoch=None)  # fmt: skip
    fit(model, DataLoader(Jitter(), batch_size=16, shuffle=True),
        val_loader=DataLoader(base, batch_size=32), push_loader=DataLoader(base, batch_size=32),
        schedule=schedule, checkpoint=out / "run.pt", resume=True, restore_best=False,
        progress=False, seed=7)  # fmt: skip
    torch.save(model.state_dict(), out / "final.pt")


def _run(out: Path, kill_after: float | None, threads: int) -> bool:
    """Run the child at ``threads`` torch threads; SIGKILL it after ``kill_after`` s.
    True if it finished."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    p = subprocess.Popen([sys.executable, __file__, "--child", str(out), str(threads)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    if kill_after is not None:
        try:
            p.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            return False
    _, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"child failed ({p.returncode}): {err.decode()[-2000:]}")
    return True


def drill(args, threads: int, rng: random.Random) -> dict:
    """``args.trials`` killed-and-resumed runs at ``threads`` threads against one
    uninterrupted run; the counts."""
    import torch

    ref_dir = args.dir / f"t{threads}" / "ref"
    ref_dir.mkdir(parents=True, exist_ok=True)
    for f in ref_dir.iterdir():
        f.unlink()
    t0 = time.perf_counter()
    _run(ref_dir, None, threads)
    duration = time.perf_counter() - t0
    ref = torch.load(ref_dir / "final.pt", weights_only=True)
    print(f"{threads} thread(s): uninterrupted run {duration:.1f} s (incl. start-up)")
    kills = identical = 0
    leftovers = []
    for t in range(args.trials):
        d = args.dir / f"t{threads}" / f"trial{t}"
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            f.unlink()
        k = 0
        while True:
            kill = k < args.kills and rng.random() < 0.85
            if _run(d, rng.uniform(0.5, duration) if kill else None, threads):
                break
            k += 1
        kills += k
        got = torch.load(d / "final.pt", weights_only=True)
        same = all(torch.equal(ref[n], got[n]) for n in ref)
        identical += same
        leftovers += [f.name for f in d.iterdir() if f.name.endswith(".tmp")]
        print(f"  trial {t}: {k} kill(s), weights {'identical' if same else 'DIFFERENT'}")
    print(f"  {args.trials} trials, {kills} SIGKILLs survived; final weights bit-identical "
          f"to the uninterrupted run in {identical}/{args.trials}; temporary files left: "
          f"{len(leftovers)}")  # fmt: skip
    return {"threads": threads, "trials": args.trials, "kills": kills,
            "identical": identical, "leftovers": len(leftovers)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--kills", type=int, default=3, help="most kills per trial")
    ap.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/drill_kill_resume"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write a summary for bench/report.py")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _child(Path(args.child[0]), int(args.child[1]))
        return
    rng = random.Random(args.seed)
    load_before = load()
    results = [drill(args, int(n), rng) for n in args.threads.split(",")]
    if args.json is not None:
        rows = [{"what": "kill-and-resume drill: ProtoPNet fit, random SIGKILLs",
                 "setting": f"{r['threads']} torch thread(s), {r['trials']} trials",
                 "ours": f"{r['identical']}/{r['trials']} bit-identical, {r['kills']} kills, "
                         f"{r['leftovers']} temporary files left",
                 "peer": "uninterrupted run", "ratio": ""} for r in results]  # fmt: skip
        write_summary(args.json, {"script": "bench/drill_kill_resume.py", "date": now(),
                                  "machine": machine(), "load_before": load_before,
                                  "load_after": load(), "table": rows})  # fmt: skip


if __name__ == "__main__":
    main()
