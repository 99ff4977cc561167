"""Benchmark: the ID profile of ResNet-18 with interp_lib.profile against a naive script.

Untrained torchvision ResNet-18 (``weights=None``), 224 px, ``--n`` procedural images
(default 1000: seeded low-frequency colour noise, generated image by image), its default
checkpoints (input, maxpool, layer1-4, avgpool, fc). Every approach runs in a fresh
subprocess, so its peak resident memory (``VmHWM``, reset at the start) is its own; each reports the
time of the whole profile (forward passes + ID estimates) and its peak memory above the
set-up (imports, model, loader):

- ``forward``: the bare forward pass over the data, nothing kept (the floor);
- ``naive``: forward hooks on the same checkpoints appending float32 outputs to lists,
  ``torch.cat``, then TwoNN (least squares, 90 %) with scikit-learn ``NearestNeighbors``,
  the pattern of a typical research script;
- ``interp_lib``: ``layer_ids(model, loader, n_resamples=0)`` (float32, one pass);
- ``interp_lib f16 budget``: the same with ``dtype=float16`` and ``max_bytes=512 MB``:
  layers are processed in groups, re-running the (early-stopped) forward pass.

Both ID paths are exact, so their estimates must agree; the largest difference is
printed.

Settings (issue 26): every approach runs under each ``--threads`` setting (default
``1,default``: one thread for torch, OpenMP, MKL and OpenBLAS alike, and nothing set,
each library's default, the ``*_NUM_THREADS`` variables removed) and each ``--loads``
setting (default ``idle,loaded``: no added load, and ``bench/_load.py``'s 2 busy
processes per core started before and ended after each run). Rounds interleave the
settings and the approaches; every ratio is between runs of the same round and setting,
and "ours at 1 thread" compares ours at one thread with ours at the default under the
same load. Each table and README row carries its thread count and the range of the
1-minute load average read before its runs.

    python bench/layer_profile.py                         # 1000 images, 224 px
    python bench/layer_profile.py --n 300 --rounds 3      # quicker; 3 interleaved rounds
    python bench/layer_profile.py --approaches naive interp_lib --image-size 112
    python bench/layer_profile.py --n 200 --image-size 112 --threads default --loads idle
    python bench/layer_profile.py --omp-wait-policy PASSIVE   # OpenMP's idle threads sleep

``--omp-wait-policy`` sets ``OMP_WAIT_POLICY`` in every run (default: removed). GNU
OpenMP's idle threads spin for a while after each parallel region (``ACTIVE``) or sleep
(``PASSIVE``); between the many parallel regions of a forward pass, spinning threads take
a busy machine's cores from the threads that have work.

The measured rows (time, peak memory and the ratios, each with its thread count and load)
are in ``bench/summaries/layer_profile.json`` and the README's benchmark table, not here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import load, machine, now, peak_rss_mb, reset_peak_rss, rss_mb, write_summary
from _load import LOADS, background_load, describe

HERE = Path(__file__).resolve().parent
# this file is named like the standard library's `profile`, which torch imports (via
# cProfile): keep the script's own folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
APPROACHES = ("forward", "naive", "interp_lib", "interp_lib f16 budget")
BATCH = 50


def _loader(n: int, image_size: int = 224):
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Noise(Dataset):
        """Image i: seeded 8x8 colour noise, bicubically upsampled to image_size px."""

        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int):
            g = torch.Generator().manual_seed(i)
            small = torch.randn(1, 3, 8, 8, generator=g)
            img = torch.nn.functional.interpolate(
                small, size=(image_size, image_size), mode="bicubic", align_corners=False
            )
            return img[0], 0

    return DataLoader(Noise(), batch_size=BATCH, shuffle=False)


def _naive(model, loader, layers: list[str]) -> dict[str, float]:
    import numpy as np
    import torch
    from sklearn.neighbors import NearestNeighbors

    acts: dict[str, list] = {name: [] for name in layers}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: acts[name].append(o.detach())
        )
        for name in layers
        if name != "input"
    ]
    model.eval()
    with torch.no_grad():
        for x, _ in loader:
            if "input" in acts:
                acts["input"].append(x)
            model(x)
    for h in handles:
        h.remove()
    ids = {}
    for name in layers:
        X = torch.cat(acts.pop(name)).flatten(1).numpy()
        dist, _ = NearestNeighbors(n_neighbors=3).fit(X).kneighbors(X)
        mu = np.sort(dist[:, 2] / dist[:, 1])
        n = len(mu)
        m = int(0.9 * n)
        x = np.log(mu[:m])
        y = -np.log1p(-np.arange(1, m + 1) / n)
        ids[name] = float((x * y).sum() / (x * x).sum())
        del X
    return ids


def worker(approach: str, n: int, threads: str, image_size: int = 224) -> None:
    # everything either approach imports is imported here, before the clock starts
    import sklearn.neighbors  # noqa: F401
    import torch
    import torchvision

    import interp_lib.id  # noqa: F401
    from interp_lib.profile import default_checkpoints, layer_ids

    if threads != "default":
        torch.set_num_threads(int(threads))
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    loader = _loader(n, image_size)
    layers = default_checkpoints(model, next(iter(loader))[0][:1])
    reset_peak_rss()  # this worker's own peak, not the parent's (ru_maxrss inherits it)
    base = rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    ids: dict[str, float] = {}
    if approach == "forward":
        with torch.no_grad():
            for x, _ in loader:
                model(x)
    elif approach == "naive":
        ids = _naive(model, loader, layers)
    else:
        kwargs = {"dtype": torch.float16, "max_bytes": 512 * 2**20} if "f16" in approach else {}
        prof = layer_ids(
            model, loader, layers, n_samples=n, n_resamples=0, progress=False, **kwargs
        )
        ids = dict(zip(prof.layers, prof.dimensions, strict=True))
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    # "time" is CPU seconds (all threads): a shared machine's waits do not count
    peak = peak_rss_mb() - base
    out = {"time": cpu, "wall": dt, "peak_mb": peak, "ids": ids}
    print(json.dumps(out | {"threads": torch.get_num_threads()}))


def _environment(threads: str, wait_policy: str = "unset") -> dict:
    """Every library in the worker (torch, scikit-learn's OpenMP, BLAS) gets ``threads``
    threads, or its own default (``"default"``: the variables removed); OpenMP's
    ``OMP_WAIT_POLICY`` is ``wait_policy``, or removed (``"unset"``)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if threads == "default":
            env.pop(var, None)
        else:
            env[var] = threads
    if wait_policy == "unset":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = wait_policy
    return env


def _run(approach: str, args: argparse.Namespace, threads: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", approach]
    cmd += ["--n", str(args.n), "--threads", threads]
    cmd += ["--image-size", str(args.image_size)]
    env = _environment(threads, args.omp_wait_policy)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        sys.exit(f"{approach} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of images")
    parser.add_argument("--image-size", type=int, default=224, help="image side in pixels")
    parser.add_argument(
        "--threads",
        default="1,default",
        help="thread settings: comma-separated counts or 'default'",
    )
    parser.add_argument("--loads", default="idle,loaded", help="load settings (bench/_load.py)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds (medians are reported)"
    )
    parser.add_argument(
        "--approaches", nargs="+", default=list(APPROACHES), choices=APPROACHES, metavar="A"
    )
    parser.add_argument(
        "--omp-wait-policy",
        default="unset",
        choices=("unset", "PASSIVE", "ACTIVE"),
        help="OMP_WAIT_POLICY of every run (unset: removed, OpenMP's own default)",
    )
    parser.add_argument("--json", help="write a summary for bench/report.py here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.n, args.threads, args.image_size)
        return
    if "naive" not in args.approaches:
        args.approaches.insert(0, "naive")
    load_before = load()
    settings = [(t, ld) for ld in args.loads.split(",") for t in args.threads.split(",")]
    runs: dict = {(a, s): [] for a in args.approaches for s in settings}
    loadavg: dict = {s: [] for s in settings}
    for r in range(args.rounds):  # interleaved: a loaded machine slows every approach alike
        for s in settings[r % len(settings) :] + settings[: r % len(settings)]:
            for approach in args.approaches:
                loadavg[s].append(os.getloadavg()[0])
                with background_load(LOADS[s[1]]):
                    runs[approach, s].append(_run(approach, args, s[0]))
                t = runs[approach, s][-1]["time"]
                print(
                    f"round {r + 1}, {s[0]} thread(s), {s[1]}: {approach} {t:.1f} s",
                    file=sys.stderr,
                )
    med = statistics.median
    results, ratios = {}, {}
    for s in settings:
        res = {
            a: {
                "time": med(x["time"] for x in runs[a, s]),
                "wall": med(x["wall"] for x in runs[a, s]),
                "peak_mb": med(x["peak_mb"] for x in runs[a, s]),
                "threads": runs[a, s][0]["threads"],
                "ids": runs[a, s][0]["ids"],
            }
            for a in args.approaches
        }
        # ratio to the naive run of the same round and setting, then the median over rounds
        ratio = {
            a: med(
                x["time"] / nv["time"] for x, nv in zip(runs[a, s], runs["naive", s], strict=True)
            )
            for a in args.approaches
        }
        key = f"{s[0]} thread(s), {s[1]}"
        results[key], ratios[key] = res, ratio
        _print_table(args, s, res, ratio, loadavg[s])
    one = {}  # ours at one thread / ours at another setting, same load (CPU and wall)
    for t, ld in settings:
        a = "interp_lib"
        if t != "1" and ("1", ld) in loadavg and a in args.approaches:
            x, y = results[f"1 thread(s), {ld}"][a], results[f"{t} thread(s), {ld}"][a]
            one[f"{t} thread(s), {ld}"] = (x["time"] / y["time"], x["wall"] / y["wall"])
            verdict = "met" if x["wall"] >= y["wall"] else "NOT met"
            print(
                f"# ours at 1 thread / ours at {t}, {ld}: {x['time'] / y['time']:.2f}x CPU, "
                f"{x['wall'] / y['wall']:.2f}x wall (never slower, wall >= 1x: {verdict})"
            )
    if args.json:
        summarise(args, results, ratios, one, loadavg, load_before)


def _print_table(args, setting, results: dict, ratio: dict, loadavg: list[float]) -> None:
    fwd = results.get("forward")
    naive = results["naive"]
    threads = results["naive"]["threads"]
    print(
        f"\nResNet-18 (untrained), {args.image_size} px, {args.n} images, default checkpoints, "
        f"{setting[0]} thread(s) ({threads}), {describe(setting[1])}, 1-min load average "
        f"{min(loadavg):.1f}-{max(loadavg):.1f}, {args.rounds} interleaved round(s), medians\n"
    )
    header = (
        f"| {'approach':<22} | {'CPU s':>8} | {'wall s':>8} | {'x forward':>9} | {'x naive':>7} | "
        f"{'peak MB':>8} | {'mem x naive':>11} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")

    def x_forward(r: dict) -> str:
        return f"{r['time'] / fwd['time']:.2f}" if fwd else "-"

    for approach, r in results.items():
        print(
            f"| {approach:<22} | {r['time']:8.1f} | {r['wall']:8.1f} | {x_forward(r):>9} | "
            f"{ratio[approach]:7.2f} | {r['peak_mb']:8.0f} | "
            f"{r['peak_mb'] / naive['peak_mb']:11.2f} |"
        )
    ref = naive["ids"]
    for approach in ("interp_lib", "interp_lib f16 budget"):
        if approach in results:
            got = results[approach]["ids"]
            diff = max(abs(got[k] - ref[k]) for k in ref)
            print(f"\nmax |ID {approach} - ID naive| over {len(ref)} layers: {diff:.3g}")
    print("IDs (naive): " + ", ".join(f"{k} {v:.1f}" for k, v in ref.items()))


def summarise(
    args, results: dict, ratios: dict, one: dict, loadavg: dict, load_before: str
) -> None:
    """The summary read by ``bench/report.py``: one README table row per approach and
    setting (threads, load)."""
    table = []
    for key, res in results.items():
        t, ld = key.split(" thread(s), ")
        avg = loadavg[t, ld]
        naive = res["naive"]
        threads = f"default ({naive['threads']})" if t == "default" else t
        policy = (
            "" if args.omp_wait_policy == "unset" else f"OMP_WAIT_POLICY={args.omp_wait_policy}, "
        )
        setting = (
            f"{args.n} images at {args.image_size} px, {args.rounds} round(s), {threads} "
            f"thread(s), {policy}{describe(ld)}, load average {min(avg):.1f}-{max(avg):.1f}"
        )
        for approach, r in res.items():
            if approach == "naive":
                continue
            extra = ""
            if approach == "interp_lib" and key in one:
                extra = f"; ours at 1 thread {one[key][0]:.2f}x ({one[key][1]:.2f}x wall)"
            table.append(
                {
                    "what": f"layer profile of ResNet-18: {approach}",
                    "setting": setting,
                    "ours": f"{r['time']:.1f} CPU s ({r['wall']:.1f} s wall), "
                    f"peak {r['peak_mb']:.0f} MB",
                    "peer": f"naive hooks + scikit-learn {naive['time']:.1f} CPU s "
                    f"({naive['wall']:.1f} s wall), peak {naive['peak_mb']:.0f} MB",
                    "ratio": f"{1 / ratios[key][approach]:.2f}x time "
                    f"({naive['wall'] / r['wall']:.2f}x wall); "
                    f"{naive['peak_mb'] / max(r['peak_mb'], 1e-9):.2f}x memory" + extra,
                }
            )
    n_default = next(
        (r["naive"]["threads"] for key, r in results.items() if key.startswith("default")), "?"
    )
    summary = {
        "script": "bench/layer_profile.py",
        "date": now(),
        "machine": machine(),
        "threads": " and ".join(
            f"default ({n_default})" if t == "default" else t for t in args.threads.split(",")
        ),
        "load_before": load_before,
        "load_after": load(),
        "table": table,
        "results": results,
        "ratio_to_naive": ratios,
        "one_thread_over_setting": one,
        "omp_wait_policy": args.omp_wait_policy,
    }
    write_summary(args.json, summary)


if __name__ == "__main__":
    main()
