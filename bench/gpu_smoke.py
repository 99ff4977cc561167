"""GPU smoke test: every CUDA path of interp_lib checked against the CPU and timed.

    python bench/gpu_smoke.py [--quick]

Needs one CUDA GPU (exits with status 2 and says so when there is none); about 3-4
minutes on one H100/H200-class GPU and 16 CPU cores (``--quick``: smaller sizes, for a
first look). Checks, each printed as ``PASS``/``FAIL`` with timings:

1. ``twonn`` on CUDA equals the CPU result (to 1e-6) at N = 100,000, D = 512 (float32
   data), and the neighbour indices agree.
2. ``layer_ids`` of a ResNet-18 (random weights, 112 px, 512 images) on CUDA equals the
   CPU profile (TwoNN per layer within 1e-3 relative: float32 convolutions differ in
   rounding between devices, the ID is a smooth function of the distances).
3. ProtoPNet training on the procedural birds: images/s of a joint epoch on the CPU, on
   CUDA in float32, and on CUDA with AMP (bf16) and ``channels_last``; the losses must be
   finite and decrease from the first epoch to the last.
4. The same training under ``torchrun --nproc_per_node=1`` with the nccl backend
   (``python -m interp_lib.protopnet train``), which must finish and write its outputs.

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS: list[tuple[str, bool, str]] = []
DEVICE = "cuda"  # --dry-run: "cpu", to check this script itself on a machine without a GPU


def check(name: str, ok: bool, detail: str) -> None:
    RESULTS.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def twonn_check(n: int, dim: int) -> None:
    from interp_lib.datasets import gaussian
    from interp_lib.id import nearest_neighbors, twonn

    X = gaussian(n, d=16, D=dim, seed=0).float()
    cuda = torch.device(DEVICE)
    cpu_res, t_cpu = timed(lambda: twonn(X), torch.device("cpu"))
    Xg = X.to(cuda)
    twonn(Xg[:2000])  # warm-up: CUDA context, kernels
    gpu_res, t_gpu = timed(lambda: twonn(Xg), cuda)
    diff = abs(cpu_res.dimension - gpu_res.dimension)
    check(
        f"twonn N={n} D={dim}",
        diff <= 1e-6,
        f"CPU {cpu_res.dimension:.8f} ({t_cpu:.2f} s), CUDA {gpu_res.dimension:.8f} "
        f"({t_gpu:.2f} s, {t_cpu / t_gpu:.1f}x), |diff| {diff:.1e}",
    )
    i_cpu = nearest_neighbors(X[:20000], k=2).indices
    i_gpu = nearest_neighbors(Xg[:20000], k=2).indices.cpu()
    same = float((i_cpu == i_gpu).all(1).float().mean())
    check(
        "nearest_neighbors indices CPU == CUDA (20,000 rows)", same == 1.0, f"{same:.4%} rows equal"
    )


def profile_check(n_images: int, size: int) -> None:
    from torchvision.models import resnet18

    from interp_lib.profile import layer_ids

    torch.manual_seed(0)
    net = resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(n_images, 3, size, size)
    kw = dict(n_resamples=3, progress=False, seed=0)
    cpu, t_cpu = timed(lambda: layer_ids(net, x, **kw), torch.device("cpu"))
    cuda = torch.device(DEVICE)
    net_gpu = net.to(cuda)
    gpu, t_gpu = timed(lambda: layer_ids(net_gpu, x, device=cuda, **kw), cuda)
    a = cpu.to_pandas()["dimension"].to_numpy()
    b = gpu.to_pandas()["dimension"].to_numpy()
    rel = float(abs(a - b).max() / max(abs(a).max(), 1e-12))
    check(
        f"layer_ids ResNet-18 {n_images} x {size}px",
        len(a) == len(b) and rel <= 1e-3,
        f"{len(a)} layers, max relative difference {rel:.1e}; CPU {t_cpu:.1f} s, CUDA "
        f"{t_gpu:.1f} s ({t_cpu / t_gpu:.1f}x)",
    )


def _birds_loader(n_per_class: int, size: int, batch_size: int):
    from torch.utils.data import DataLoader, TensorDataset

    from interp_lib.datasets import birds

    data = birds(n_per_class, image_size=size, seed=0)
    x = (data.images - data.images.mean((0, 2, 3), keepdim=True)) / data.images.std(
        (0, 2, 3), keepdim=True
    )
    return DataLoader(TensorDataset(x, data.labels), batch_size=batch_size, shuffle=True), data


def training_check(n_per_class: int, size: int, epochs: int) -> None:
    from interp_lib.protopnet import ProtoPNet, Schedule, fit

    loader, data = _birds_loader(n_per_class, size, batch_size=64)
    n = len(loader.dataset)
    schedule = Schedule(
        epochs=1 + epochs, warmup_epochs=1, push_start=10**6, final_push=False, steps_per_epoch=None
    )
    rates = {}
    for label, device, amp, cl in (
        ("cpu fp32", "cpu", None, False),
        ("cuda fp32", DEVICE, None, False),
        ("cuda bf16 channels_last", DEVICE, "bf16", True),
    ):
        torch.manual_seed(0)
        model = ProtoPNet("small_cnn", n_classes=data.n_classes, image_size=size)
        hist = fit(model, loader, schedule=schedule, device=device, amp=amp, channels_last=cl,
                   progress=False, seed=0)  # fmt: skip
        joint = [r for r in hist if r.stage.value == "joint"]
        rates[label] = max(n / r.seconds for r in joint)
        losses = [float(r.train["loss"]) for r in hist if r.stage.value in ("warmup", "joint")]
        finite = all(math.isfinite(v) for v in losses)
        check(
            f"ProtoPNet birds training, {label}",
            finite and losses[-1] < losses[0],
            f"{rates[label]:.0f} images/s, loss {losses[0]:.3f} -> {losses[-1]:.3f} "
            f"(finite and decreasing), last joint epoch accuracy "
            f"{joint[-1].train.get('accuracy', float('nan')):.3f}",
        )
    print(
        f"      speed-up over CPU: fp32 {rates['cuda fp32'] / rates['cpu fp32']:.1f}x, "
        f"bf16 + channels_last {rates['cuda bf16 channels_last'] / rates['cpu fp32']:.1f}x"
    )


def torchrun_check(n_per_class: int, size: int) -> None:
    """The CLI under torchrun with nccl, on a small procedural ImageFolder."""
    from torchvision.utils import save_image

    from interp_lib.datasets import birds

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "birds"
        for split, seed in (("train", 0), ("test", 1)):
            data = birds(n_per_class, image_size=size, seed=seed)
            for i, (img, y) in enumerate(zip(data.images, data.labels.tolist(), strict=True)):
                folder = root / split / f"class_{y:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                save_image(img, folder / f"{i:05d}.png")
        config = Path(tmp) / "run.toml"
        config.write_text(
            f'[data]\nkind = "folder"\nroot = {json.dumps(str(root))}\nimage_size = {size}\n'
            "batch_size = 64\neval_batch_size = 128\naugment = false\n"
            '[model]\nbackbone = "small_cnn"\n'
            "[schedule]\nepochs = 4\nwarmup_epochs = 1\npush_start = 2\npush_every = 2\n"
            f"steps_per_epoch = {max(1, -(-len(list((root / 'train').rglob('*.png'))) // 64))}\n"
            '[fit]\namp = "bf16"\nchannels_last = true\nprogress = false\n'
        )
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
               "-m", "interp_lib.protopnet", "train", str(config), "--out", str(out),
               "--device", DEVICE]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t = time.perf_counter()
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - t
        ok = run.returncode == 0 and (out / "metrics.json").is_file()
        detail = (
            f"{seconds:.0f} s, test accuracy {json.loads((out / 'metrics.json').read_text())['test_accuracy']:.3f}"
            if ok
            else run.stderr[-2000:]
        )
        check("torchrun --nproc_per_node=1 (nccl) python -m interp_lib.protopnet train", ok, detail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    ap.add_argument("--only-torchrun", action="store_true", help="only check 4 (the CLI)")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="run every check on the CPU instead "
        "(tests this script where there is no GPU; the comparisons are then trivial)",
    )
    args = ap.parse_args()
    global DEVICE
    if args.dry_run:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check (run this on a machine with one)")
        return 2
    name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU (dry run)"
    print(f"{name}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}")  # fmt: skip
    q = args.quick
    if args.only_torchrun:
        torchrun_check(30, 64)
        return report()
    twonn_check(20_000 if q else 100_000, 512)
    profile_check(128 if q else 512, 64 if q else 112)
    training_check(20 if q else 100, 64, 1 if q else 2)
    torchrun_check(10 if q else 30, 64)
    return report()


def report() -> int:
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
