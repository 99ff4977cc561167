"""Benchmark: how the cost of ``twonn`` grows with N (issue 26, item 3).

For every data kind and width D, ``twonn`` (whose cost is the exact 2-NN search) runs on
the first N rows of one saved data set over an N grid (default 5,000 to 200,000), each
point in a fresh subprocess at one thread (torch, OpenMP, MKL and OpenBLAS alike: the
workers get ``bench/twonn.py``'s one-thread environment and ``torch.set_num_threads(1)``).
Each point records the CPU time (``process_time``: user + system of the process; on a
shared machine the robust figure), the wall time and the peak memory: the peak resident
set during the estimate (``VmHWM``, reset after loading: ``ru_maxrss`` would include the
parent's peak, which a subprocess inherits) above the resident set with the data loaded.

Per series the exponent ``b`` of ``time ~ a N^b`` is fitted by least squares on log-log
axes, over all its points and over those with N >= 20,000 (small N carries fixed
overheads), and set against the brute-force limit O(N^2 D) (exponent 2); the achieved
multiply-add rate ``N^2 D / CPU s`` is given per point (a brute-force search does
``N^2 D`` multiply-adds; more than the machine's peak means the search did less work).

Before each point the time is predicted from the series' fit so far: a point predicted
to take more than ``--max-point-s`` CPU seconds, or to bring the run past ``--budget-s``,
is not run, and the summary says so with the prediction (the grid runs in order of N,
all series at each N, so the budget cuts the largest points first).

Data kinds (float32):

- ``full``: i.i.d. standard Gaussian, full rank;
- ``low``: a 16-dimensional standard Gaussian embedded by a random orthonormal map, plus
  Gaussian noise of standard deviation 1e-3 in every coordinate;
- ``real``: activations of an untrained torchvision ResNet-18 (``weights=None``, seed 0,
  eval mode) on procedural birds (``interp_lib.datasets.birds``, 224 px, offline): for
  D = 128 the spatial feature vectors of ``layer2`` (28 x 28 per image), for D = 1,024
  the 2 x 2 windows (stride 1) of ``layer3``'s 256-channel map (13 x 13 per image; no
  ResNet-18 layer has 1,024 channels). Exact duplicate rows are dropped, the rows are
  shuffled (seeded) and the first N taken.

    python bench/twonn_growth.py                              # the default grid
    python bench/twonn_growth.py --sizes 5000,10000 --dims 128 --kinds full,low
    python bench/twonn_growth.py --json bench/summaries/twonn_growth.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import load, machine, now, peak_rss_mb, reset_peak_rss, rss_mb, write_summary
from twonn import _environment

DEFAULT_SIZES = "5000,10000,20000,50000,100000,200000"
KINDS = {
    "full": "full-rank Gaussian",
    "low": "rank 16 + noise 1e-3",
    "real": "ResNet-18 activations",
}
REAL_LAYERS = {128: "layer2", 1024: "layer3 2x2 windows"}
LOW_RANK, LOW_NOISE = 16, 1e-3
TAIL_N = 20_000  # the second fit uses the points from here up
NOTE = (
    "Cost growth: every point in a fresh subprocess at one thread, on the first N rows of "
    "one data set per series (full rank: i.i.d. Gaussian; rank 16: a 16-dimensional "
    "Gaussian embedded orthonormally plus noise 1e-3; ResNet-18 activations: an untrained "
    "torchvision ResNet-18 on procedural birds at 224 px, layer2 feature vectors for D = 128 "
    "and layer3 2x2 windows for D = 1,024, duplicates dropped, shuffled). Exponent: "
    "least-squares slope of log CPU time against log N; peak: VmHWM during twonn above the "
    "resident set with the data loaded. Points predicted (from the fit so far) to exceed "
    "the per-point or total CPU budget were not run."
)


def fit_exponent(ns, ts) -> tuple[float, float]:
    """Least-squares fit of ``log t = log a + b log n``: returns ``(b, a)``.

    Raises
    ------
    ValueError
        With fewer than two distinct sizes, or a non-positive size or time.
    """
    import numpy as np

    n, t = np.asarray(ns, dtype=float), np.asarray(ts, dtype=float)
    if n.shape != t.shape or len(set(n.tolist())) < 2:
        raise ValueError(
            f"fit_exponent needs two or more distinct sizes with one time each; got sizes "
            f"{n.tolist()} and times {t.tolist()}: measure at least two sizes."
        )
    if (n <= 0).any() or (t <= 0).any():
        raise ValueError(
            f"fit_exponent needs positive sizes and times; got sizes {n.tolist()} and "
            f"times {t.tolist()}: drop the failed points."
        )
    b, log_a = np.polyfit(np.log(n), np.log(t), 1)
    return float(b), float(math.exp(log_a))


def predict(ns, ts, n: int) -> float | None:
    """The time at ``n`` from the fit of the points ``(ns, ts)``; ``None`` below two."""
    if len(set(ns)) < 2:
        return None
    b, a = fit_exponent(ns, ts)
    return a * n**b


def madds_per_s(n: int, d: int, cpu_s: float) -> float:
    """Brute-force multiply-adds per CPU second: ``N^2 D / cpu_s``."""
    return n * n * d / cpu_s


def make_data(kind: str, n: int, d: int, seed: int = 0):
    """``n`` rows of the data kind ``kind`` (see the module documentation), float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if kind == "full":
        return rng.standard_normal(size=(n, d), dtype=np.float32)
    if kind == "low":
        Q, _ = np.linalg.qr(rng.standard_normal(size=(d, LOW_RANK)))
        X = rng.standard_normal(size=(n, LOW_RANK), dtype=np.float32) @ Q.T.astype(np.float32)
        X += LOW_NOISE * rng.standard_normal(size=(n, d), dtype=np.float32)
        return X
    if kind == "real":
        return activations(n, d, seed)
    raise ValueError(f"kind must be one of {sorted(KINDS)}; got {kind!r}.")


def activations(n: int, d: int, seed: int = 0, image_size: int = 224, batch: int = 64):
    """``n`` distinct activation vectors of width ``d`` (128 or 1024) of an untrained
    ResNet-18 on procedural birds, shuffled; see the module documentation."""
    import numpy as np
    import torch
    import torchvision

    from interp_lib.datasets.birds import birds

    if d not in REAL_LAYERS:
        raise ValueError(f"real activations have D in {sorted(REAL_LAYERS)}; got D = {d}.")
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None).eval()
    per_image = 28 * 28 if d == 128 else 13 * 13
    n_images = math.ceil(1.05 * n / per_image)  # a margin for dropped duplicates
    ds = birds(math.ceil(n_images / 10), image_size=image_size, seed=seed)
    parts = []
    with torch.no_grad():
        for i in range(0, len(ds), batch):
            x = torch.stack([ds[j][0] for j in range(i, min(i + batch, len(ds)))])
            h = net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))
            if d == 1024:  # (B, 256, 14, 14) -> 2x2 windows, stride 1: (B, 1024, 169)
                h = torch.nn.functional.unfold(net.layer3(h), kernel_size=2)
            parts.append(h.flatten(2).transpose(1, 2).reshape(-1, d).numpy())
    X = np.unique(np.concatenate(parts), axis=0)
    if len(X) < n:
        raise ValueError(f"only {len(X)} distinct activation rows; asked for {n}.")
    return X[np.random.default_rng(seed).permutation(len(X))[:n]].astype(np.float32)


def read_rows(path: str | os.PathLike, n: int):
    """The first ``n`` rows of the C-ordered float32 ``.npy`` file ``path``, read straight
    into one array (no memory map, no second copy)."""
    import numpy as np

    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, fortran, dtype = read_header(f)
        if fortran or dtype != np.float32 or len(shape) != 2 or n > shape[0]:
            raise ValueError(
                f"{path}: expected a C-ordered float32 (N, D) array with N >= {n}; got "
                f"shape {shape}, dtype {dtype}, fortran order {fortran}."
            )
        X = np.empty((n, shape[1]), dtype=np.float32)
        f.readinto(memoryview(X).cast("B"))
    return X


def worker(path: str, n: int) -> None:
    import torch

    from interp_lib.id import twonn

    torch.set_num_threads(1)
    X = read_rows(path, n)
    reset_peak_rss()  # the peak from here on, not the parent's (inherited by ru_maxrss)
    base = rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    est = twonn(X).dimension
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = peak_rss_mb() - base
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "estimate": float(est), "peak_mb": peak}))


def series_fits(points: list[dict]) -> dict:
    """Exponents of CPU and wall time against N (all points, and N >= ``TAIL_N``)."""
    out = {}
    for key in ("cpu_s", "wall_s"):
        ns, ts = [p["N"] for p in points], [p[key] for p in points]
        if len(set(ns)) >= 2:
            out[f"exponent_{key}"] = fit_exponent(ns, ts)[0]
        tail = [(a, b) for a, b in zip(ns, ts, strict=True) if a >= TAIL_N]
        if len({a for a, _ in tail}) >= 2:
            out[f"exponent_{key}_tail"] = fit_exponent(*zip(*tail, strict=True))[0]
    return out


def table_rows(rows: list[dict], fits: dict, stopped: dict) -> list[dict]:
    """One README entry per series (kind, D): the exponent, the largest point, and the
    brute-force limit it is set against."""
    out = []
    for key, fit in fits.items():
        kind, d = key.split("/")
        pts = [r for r in rows if (r["kind"], str(r["D"])) == (kind, d)]
        if not pts:
            continue
        big = max(pts, key=lambda r: r["N"])
        avg = [a for r in pts for a in r["load_avg"]]
        stop = stopped.get(key)
        if stop and stop["predicted_cpu_s"] is not None:
            stop = f"; N = {stop['N']:,} not run (predicted {stop['predicted_cpu_s']:.0f} CPU s)"
        elif stop:
            stop = f"; N = {stop['N']:,} not run ({stop['why']})"
        else:
            stop = ""
        tail = fit.get("exponent_cpu_s_tail")
        tail = f" ({tail:.2f} for N >= {TAIL_N:,})" if tail is not None else ""
        out.append(
            {
                "what": f"TwoNN cost growth, D = {int(d):,}, {KINDS[kind]}",
                "setting": f"CPU, 1 thread, N = {min(r['N'] for r in pts):,}-{big['N']:,}"
                f"{stop}, load average {min(avg):.1f}-{max(avg):.1f}",
                "ours": f"CPU time ~ N^{fit['exponent_cpu_s']:.2f}{tail}; at N = {big['N']:,}: "
                f"{big['cpu_s']:.1f} CPU s ({big['wall_s']:.1f} s wall), "
                f"peak {big['peak_mb']:.0f} MB above the data",
                "peer": "brute force O(N^2 D): exponent 2",
                "ratio": f"N^2 D / CPU s = {big['madds_per_s'] / 1e9:.1f} G multiply-adds/s "
                f"at N = {big['N']:,}",
            }
        )
    return out


def summarise(rows: list[dict], stopped: dict, settings: dict) -> dict:
    """The ``--json`` summary: the points, the fits per series, what was not run, and the
    README table."""
    keys = dict.fromkeys(f"{r['kind']}/{r['D']}" for r in rows)
    fits = {
        k: series_fits([r for r in rows if f"{r['kind']}/{r['D']}" == k])
        for k in keys
        if len({r["N"] for r in rows if f"{r['kind']}/{r['D']}" == k}) >= 2
    }
    return settings | {
        "rows": rows,
        "fits": fits,
        "stopped": stopped,
        "table": table_rows(rows, fits, stopped),
    }


def run(args) -> None:
    import numpy as np

    sizes = sorted(int(v) for v in args.sizes.split(","))
    dims = [int(v) for v in args.dims.split(",")]
    kinds = args.kinds.split(",")
    series = [(k, d) for d in dims for k in kinds]
    env = _environment("1")
    settings = {
        "script": "bench/twonn_growth.py",
        "date": now(),
        "machine": machine(),
        "threads": 1,
        "load_before": load(),
        "budget_s": args.budget_s,
        "max_point_s": args.max_point_s,
        "note": NOTE,
    }
    print(f"# bench/twonn_growth.py  {settings['date']}")
    print(f"# machine: {settings['machine']}; 1 thread per run")
    print(f"# load average before: {settings['load_before']}")
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, d in series:
        path = data_dir / f"{kind}_{d}_{sizes[-1]}.npy"
        if not path.exists():
            t = time.process_time()
            np.save(path, make_data(kind, sizes[-1] if kind != "real" else args.real_n[d], d))
            print(f"# data {kind} D = {d}: {time.process_time() - t:.1f} CPU s", flush=True)
        paths[kind, d] = path
    rows: list[dict] = []
    stopped: dict = {}
    spent = 0.0
    print(f"{'N':>7} {'D':>5} {'kind':<5} {'CPU s':>8} {'wall s':>8} {'peak MB':>8} {'ID':>7}")
    for n in sizes:
        for kind, d in series:
            key = f"{kind}/{d}"
            if key in stopped:
                continue
            if kind == "real" and n > args.real_n[d]:
                why = f"--real-n: {args.real_n[d]:,} rows of activations"
                stopped[key] = {"N": n, "predicted_cpu_s": None, "why": why}
                continue
            done = [r for r in rows if (r["kind"], r["D"]) == (kind, d)]
            guess = predict([r["N"] for r in done], [r["cpu_s"] for r in done], n)
            if guess is not None and (guess > args.max_point_s or spent + guess > args.budget_s):
                why = "--max-point-s" if guess > args.max_point_s else "--budget-s"
                stopped[key] = {"N": n, "predicted_cpu_s": guess, "why": why}
                print(f"{n:>7} {d:>5} {kind:<5} not run: predicted {guess:.0f} CPU s ({why})")
                continue
            avg = os.getloadavg()[0]
            out = subprocess.run(
                [sys.executable, __file__, "--worker", str(paths[kind, d]), str(n)],
                capture_output=True,
                text=True,
                env=env,
            )
            if out.returncode:
                print(f"{n:>7} {d:>5} {kind:<5} failed: {out.stderr.strip()[-300:]}")
                stopped[key] = {"N": n, "predicted_cpu_s": guess, "why": "failed"}
                continue
            got = json.loads(out.stdout.strip().splitlines()[-1])
            spent += got["cpu_s"]
            row = {"N": n, "D": d, "kind": kind, **got}
            row |= {
                "predicted_cpu_s": guess,
                "madds_per_s": madds_per_s(n, d, got["cpu_s"]),
                "data_mb": n * d * 4 / 2**20,
                "load_avg": [avg, os.getloadavg()[0]],
            }
            rows.append(row)
            print(
                f"{n:>7} {d:>5} {kind:<5} {got['cpu_s']:>8.2f} {got['wall_s']:>8.2f} "
                f"{got['peak_mb']:>8.0f} {got['estimate']:>7.2f}"
                + (f"  (predicted {guess:.1f})" if guess else ""),
                flush=True,
            )
    settings["load_after"] = load()
    summary = summarise(rows, stopped, settings)
    print(f"\n# load average after: {settings['load_after']}; {spent:.0f} CPU s in the points")
    for key, fit in summary["fits"].items():
        print(f"# {key}: " + ", ".join(f"{k} {v:.2f}" for k, v in fit.items()))
    if args.json:
        write_summary(args.json, summary)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="the N grid, comma-separated")
    ap.add_argument("--dims", default="128,1024", help="widths D, comma-separated")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"data kinds from {list(KINDS)}")
    ap.add_argument("--max-point-s", type=float, default=360.0, help="CPU s cap per point")
    ap.add_argument("--budget-s", type=float, default=2400.0, help="CPU s cap of all points")
    ap.add_argument(
        "--real-n",
        type=lambda s: dict(zip((128, 1024), map(int, s.split(",")), strict=True)),
        default={128: 200_000, 1024: 100_000},
        help="rows of real activations for D = 128 and 1024 (their forward passes cost)",
    )
    ap.add_argument("--data-dir", default="/tmp/twonn_growth_data", help="the saved data")
    ap.add_argument("--json", help="write a summary for bench/report.py here")
    ap.add_argument("--worker", nargs=2, metavar=("NPY", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
    else:
        run(args)


if __name__ == "__main__":
    main()
