"""Benchmark: interp_lib's TwoNN against DADApy, scikit-dimension, scikit-learn, FAISS,
torchid and torch, at one thread and at the default thread count, idle and loaded.

Every (method, N, D) runs in a fresh subprocess on the same saved data, so the timings
and the peak memory (the peak resident set during the estimate above the resident set
before it) are not polluted by each other. The methods of one size run interleaved,
``--repeats`` times in a rotating order, so that a load on a shared machine hits them
alike; the table gives the median CPU time (``process_time``: all threads, not inflated
by waiting for a busy core) and the ratio of medians, ``peer / ours`` (> 1: ours is
faster), with the spread of the per-round ratios, the median wall time and the ratio of
median wall times. The date, the machine and the load average before and after are
printed with it, and every row carries its thread setting, its load setting and the
range of the 1-minute load average read just before its runs.

Methods: ``interp_lib`` (``twonn``), ``previous`` (``twonn`` on the neighbour search of
an earlier commit, ``--previous``, loaded from git: the "before" column), ``dadapy``
(``Data.compute_id_2NN``), ``skdim`` (``skdim.id.TwoNN``), ``sklearn_3nn``
(brute-force ``NearestNeighbors(n_neighbors=3)``, neighbours only), ``faiss`` (FAISS
exact search, ``IndexFlatL2``, 3 neighbours of every row, neighbours only), ``torchid``
(``torchid.estimators.TwoNN``, FAISS underneath on the CPU; it needs Python >= 3.13 and
is skipped where it is not installed) and ``naive_torch`` (full distance matrix). DADApy
pins numpy < 2 and pulls in jax, so it runs in its own throw-away virtual environment
(``bench/.venvs/dadapy``, created on first use; pass ``--no-dadapy`` to skip it).

Near-duplicates: ours measures every reported distance by float64 differences and proves
the order with a rounding bound; scikit-learn's brute force (and DADApy and
scikit-dimension, which call scikit-learn's ``NearestNeighbors``: brute force at these
widths, a tree with direct differences on narrow data) uses the expansion
``|x|^2 + |y|^2 - 2 x.y`` in float64 (float32 input upcast in chunks), clamped at 0, so
points closer than about ``1e-8 |x|`` get distance 0 or an inexact one; FAISS uses direct float32 differences below
``faiss.cvar.distance_compute_blas_threshold`` query rows (20 in older releases, 128,000
in recent ones) and the float32 expansion above it, where points closer than about
``sqrt(eps) |x|`` all get distance 0 and the point itself need not come first
(``tests/test_id_neighbors_faiss.py`` shows a case); torchid inherits FAISS's behaviour
and then excludes the point by index.

    python bench/twonn.py                        # the default sizes and settings, 3 rounds
    python bench/twonn.py --sizes 5000x100 --repeats 1 --threads default --loads idle
    python bench/twonn.py --spectrum             # pruning gain against the spectrum
    python bench/twonn.py --json bench/summaries/twonn.json   # also a summary for the README

OpenBLAS: every worker runs with ``OPENBLAS_CORETYPE`` set to the core type numpy's
OpenBLAS detects (unless already set). FAISS's wheel bundles its own OpenBLAS build, which does
not know this project's Intel Xeon VM and falls back to its generic SSE3 kernels,
several times slower; the peer should run its best kernels.

Settings (issue 26): ``--threads 1,default`` runs every method with one thread (torch,
OpenMP, MKL, OpenBLAS and FAISS alike) and with nothing set (each library's default: what
a user gets; the ``*_NUM_THREADS`` variables are removed from the workers' environment);
``--loads idle,loaded`` runs each measurement with no added load and inside
``bench/_load.py``'s background load (2 busy processes per core, started before and
ended after each measurement). The rounds interleave the settings and the methods. All
ratios are between runs of the same setting in this run; "ours at 1 thread / ours at
the default" compares the two thread settings under the same load. The last lines give
the targets: DADApy / ours at N = 20,000, D = 1,000 (3x) and scikit-learn brute 3-NN /
ours at N = 10,000, D = 512 (2x) in every setting, and ours at the default thread count
never slower than ours at one thread.

The data: a 12-dimensional Gaussian rotated into D dimensions (float32).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import load, machine, now, peak_rss_mb, reset_peak_rss, rss_mb, write_summary
from _load import LOADS, background_load, describe

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DADAPY_VENV = HERE / ".venvs" / "dadapy"
PREVIOUS = "07630bb"  # the neighbour search before the single-threaded scope (issue 26)
# sizes and the methods run at each (the largest only for ours: time and peak memory)
DEFAULT_SIZES = "20000x1000,10000x512,100000x128"
ALL = ("interp_lib", "previous", "dadapy", "skdim", "sklearn_3nn", "faiss", "torchid")
ALL += ("naive_torch",)
ONLY_OURS = ("interp_lib", "previous")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
THREAD_VARS += ("NUMEXPR_NUM_THREADS",)


def _previous_knn(commit: str):
    """The ``knn`` of ``interp_lib/id/neighbors.py`` at ``commit``, loaded from git."""
    import importlib.util

    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:interp_lib/id/neighbors.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "neighbors_previous.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("interp_lib.id._neighbors_previous", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod.knn


def worker(method: str, path: str, previous: str, threads: str = "1") -> None:
    import numpy as np

    if method in ("interp_lib", "previous", "naive_torch", "torchid") and threads != "default":
        import torch

        torch.set_num_threads(int(threads))
    if method in ("faiss", "torchid") and threads != "default":
        import faiss

        faiss.omp_set_num_threads(int(threads))

    X = np.load(path)
    if method in ("interp_lib", "previous"):
        from interp_lib.id import twonn

        if method == "previous":
            import contextlib
            import importlib

            twonn_module = importlib.import_module("interp_lib.id.twonn")
            twonn_module.knn = _previous_knn(previous)
            # the previous twonn had no thread scope of its own (before issue 26)
            twonn_module._single_threaded = lambda device: contextlib.nullcontext()
        run = lambda: twonn(X).dimension  # noqa: E731
    elif method == "skdim":
        import skdim

        run = lambda: skdim.id.TwoNN().fit(X).dimension_  # noqa: E731
    elif method == "dadapy":
        from dadapy import Data

        def run():
            return Data(X.astype(np.float64)).compute_id_2NN()[0]
    elif method == "sklearn_3nn":
        from sklearn.neighbors import NearestNeighbors

        def run():
            d, _ = NearestNeighbors(n_neighbors=3, algorithm="brute").fit(X).kneighbors(X)
            return float(np.median(d[:, 2] / np.maximum(d[:, 1], 1e-300)))  # not an ID
    elif method == "faiss":
        import faiss

        def run():
            index = faiss.IndexFlatL2(X.shape[1])
            index.add(X)
            d2, _ = index.search(X, 3)
            d = np.sqrt(np.maximum(d2, 0))
            return float(np.median(d[:, 2] / np.maximum(d[:, 1], 1e-300)))  # not an ID
    elif method == "torchid":
        import torch
        from torchid.estimators import TwoNN

        run = lambda: TwoNN().fit(torch.from_numpy(X)).dimension_  # noqa: E731
    elif method == "naive_torch":
        import torch

        from interp_lib.id.naive import naive_twonn

        run = lambda: naive_twonn(torch.from_numpy(X))  # noqa: E731
    else:
        raise SystemExit(f"unknown method {method}")
    reset_peak_rss()  # this worker's own peak, not the parent's (ru_maxrss inherits it)
    base = rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    est = run()
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = peak_rss_mb() - base
    print(json.dumps({"time": cpu, "wall": dt, "estimate": float(est), "peak_mb": peak}))


def _ensure_dadapy() -> Path | None:
    py = DADAPY_VENV / "bin" / "python"
    ok = py.exists() and not subprocess.run([str(py), "-c", "import dadapy"]).returncode
    if not ok:
        print("creating DADApy's own venv (numpy<2, jax) under bench/.venvs ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(DADAPY_VENV)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "dadapy"], check=True)
        except subprocess.CalledProcessError as exc:
            print(f"DADApy unavailable ({exc}); skipping it.")
            return None
    return py


def bench_data(n: int, d: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, 12)))
    return (rng.normal(size=(n, 12)) @ Q.T).astype(np.float32)


def default_threads(env: dict) -> int:
    """torch's default thread count in a fresh process with ``env``."""
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return int(out.stdout.strip())


@functools.cache
def openblas_coretype() -> str | None:
    """The core type that numpy's OpenBLAS detects on this CPU.

    FAISS's wheel bundles its own OpenBLAS build, which falls back to its generic ``Prescott``
    (SSE3) kernels on a CPU it does not know (this project's Intel Xeon VM, where
    numpy's detects ``SkylakeX``): products several times slower, not FAISS's best.
    """
    try:
        import numpy  # noqa: F401  (loads its OpenBLAS)
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return next(
        (i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"),
        None,
    )


def _environment(threads: str) -> dict:
    """The workers' environment: every ``*_NUM_THREADS`` set to ``threads``, or removed
    (``"default"``); ``OPENBLAS_CORETYPE`` (unless set) the core type numpy's OpenBLAS
    detects, so that every OpenBLAS in a worker (FAISS's own included) runs its kernels
    for this CPU (:func:`openblas_coretype`)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if "OPENBLAS_CORETYPE" not in env and (core := openblas_coretype()):
        env["OPENBLAS_CORETYPE"] = core
    for var in THREAD_VARS:
        if threads == "default":
            env.pop(var, None)
        else:
            env[var] = threads
    return env


def compare(args) -> None:
    import numpy as np
    import torch

    thread_settings = args.threads.split(",")
    loads = args.loads.split(",")
    n_default = default_threads(_environment("default"))
    label = {t: f"default ({n_default})" if t == "default" else t for t in thread_settings}
    print(f"# bench/twonn.py  {now()}")
    print(f"# machine: {machine()}; torch {torch.__version__}")
    print(
        f"# threads per run: {', '.join(label.values())}; loads: {', '.join(map(describe, loads))}"
    )
    print(f"# load average before: {load()}")
    pythons = {m: sys.executable for m in ALL}
    wanted = [m for m in ALL if m not in args.skip]
    if "dadapy" in wanted:
        if args.no_dadapy or not (py := _ensure_dadapy()):
            wanted.remove("dadapy")
        else:
            pythons["dadapy"] = str(py)
    for m, module in (("faiss", "faiss"), ("torchid", "torchid")):
        if m in wanted and importlib.util.find_spec(module) is None:
            print(f"# {m}: {module} is not installed here; skipped")
            wanted.remove(m)
    envs = {t: _environment(t) for t in thread_settings}
    summary = {
        "script": "bench/twonn.py",
        "date": now(),
        "machine": machine(),
        "threads": " and ".join(label.values()),
        "load_before": load(),
        "repeats": args.repeats,
        "rows": [],
    }
    settings = [(t, ld) for ld in loads for t in thread_settings]
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            n, d = (int(v) for v in size.split("x"))
            path = os.path.join(tmp, f"X_{n}_{d}.npy")
            np.save(path, bench_data(n, d))
            methods = [m for m in wanted if n < 50_000 or m in ONLY_OURS]
            runs: dict = {(m, s): [] for m in methods for s in settings}
            loadavg: dict = {s: [] for s in settings}
            for r in range(args.repeats):  # rounds: settings and methods rotate
                for s in settings[r % len(settings) :] + settings[: r % len(settings)]:
                    t, ld = s
                    worker_args = ["--previous", args.previous, "--threads", t]
                    for m in methods[r % len(methods) :] + methods[: r % len(methods)]:
                        loadavg[s].append(os.getloadavg()[0])
                        with background_load(LOADS[ld]):
                            out = subprocess.run(
                                [pythons[m], __file__, "--worker", m, path, *worker_args],
                                capture_output=True,
                                text=True,
                                env=envs[t],
                            )
                        if out.returncode:
                            err = out.stderr.strip()[-300:]
                            print(f"{n:>6} {d:>5} {m:<12} {t} {ld} failed: {err}")
                            continue
                        runs[m, s].append(json.loads(out.stdout.strip().splitlines()[-1]))
                        got = runs[m, s][-1]
                        print(
                            f"# round {r + 1}, {n}x{d}, {t} thread(s), {ld}: {m} "
                            f"{got['time']:.2f} CPU s, {got['wall']:.2f} s wall",
                            file=sys.stderr,
                            flush=True,
                        )
            for s in settings:
                t, ld = s
                print(
                    f"\n## N = {n}, D = {d}: {label[t]} thread(s), {describe(ld)}, "
                    f"1-min load average {min(loadavg[s]):.1f}-{max(loadavg[s]):.1f}"
                )
                print(
                    f"{'N':>6} {'D':>5} {'method':<12} {'CPU s':>9} {'ID':>8} {'peak MB':>8} "
                    f"{'peer/ours':>9} {'per-round ratios':>18} {'wall s':>8} {'wall ratio':>10}"
                )
                ours = runs.get(("interp_lib", s), [])
                for m in methods:
                    rs = runs[m, s]
                    if not rs:
                        continue
                    row = _row(n, d, m, rs, ours)
                    row |= {"threads": label[t], "load": ld, "load_avg": loadavg[s]}
                    if m == "interp_lib" and t != "1" and runs.get(("interp_lib", ("1", ld))):
                        one = _row(n, d, m, runs["interp_lib", ("1", ld)], rs)
                        row["one_thread_over_this"] = one["ratio"]
                        row["one_thread_over_this_wall"] = one["wall_ratio"]
                    print(
                        f"{n:>6} {d:>5} {m:<12} {row['median_s']:>9.2f} {row['estimate']:>8.3f} "
                        f"{row['peak_mb']:>8.0f} {row['ratio']:>8.2f}x {row['spread']:>18} "
                        f"{row['wall_s']:>8.2f} {row['wall_ratio']:>9.2f}x",
                        flush=True,
                    )
                    summary["rows"].append(row)
    summary["load_after"] = load()
    summary["table"] = table_rows(summary["rows"])
    print(f"\n# load average after: {load()}")
    print("# sklearn_3nn's and faiss's ID column is the median r2/r1, not an estimate.")
    for line in targets(summary["rows"]):
        print(line)
    if args.json:
        if args.append and Path(args.json).exists():  # sizes measured by separate runs
            before = json.loads(Path(args.json).read_text())
            sizes = {(r["N"], r["D"]) for r in summary["rows"]}
            kept = [r for r in before["rows"] if (r["N"], r["D"]) not in sizes]
            summary["rows"] = kept + summary["rows"]
            summary["table"] = table_rows(summary["rows"])
            summary["load_before"] = (
                f"{before['load_before']} ({before['date']}), {summary['load_before']}"
            )
            if summary["threads"] not in before["threads"]:
                summary["threads"] = f"{before['threads']} and {summary['threads']}"
            else:
                summary["threads"] = before["threads"]
        write_summary(args.json, summary)


def _row(n: int, d: int, method: str, rs: list[dict], ours: list[dict]) -> dict:
    """Medians of one method's runs in one setting, and its ratios to ``ours``."""
    t = statistics.median(r["time"] for r in rs)
    wall = statistics.median(r["wall"] for r in rs)
    nan = float("nan")
    ratio = t / statistics.median(r["time"] for r in ours) if ours else nan
    wall_ratio = wall / statistics.median(r["wall"] for r in ours) if ours else nan
    rounds = [a["time"] / b["time"] for a, b in zip(rs, ours, strict=False)]
    return {
        "N": n,
        "D": d,
        "method": method,
        "median_s": t,
        "wall_s": wall,
        "estimate": rs[0]["estimate"],
        "peak_mb": max(r["peak_mb"] for r in rs),
        "ratio": ratio,
        "wall_ratio": wall_ratio,
        "rounds": rounds,
        "spread": f"{min(rounds):.2f}-{max(rounds):.2f}" if rounds else "",
    }


TARGETS = (  # (N, D, peer, the ratio issues 14 and 26 ask for), in every setting
    (20000, 1000, "dadapy", 3.0),
    (10000, 512, "sklearn_3nn", 2.0),
    (20000, 1000, "previous", 1.0),
    (10000, 512, "previous", 1.0),
)


NAMES = {
    "previous": "previous version",
    "dadapy": "DADApy",
    "skdim": "scikit-dimension",
    "sklearn_3nn": "scikit-learn brute 3-NN",
    "faiss": "FAISS IndexFlatL2 3-NN",
    "torchid": "torchid",
    "naive_torch": "naive torch",
}


def table_rows(rows: list[dict]) -> list[dict]:
    """One README table entry per size and setting: ours, and every peer with its ratio
    (CPU time; wall time in brackets)."""
    out = []
    keys = dict.fromkeys((r["N"], r["D"], r["threads"], r["load"]) for r in rows)
    for n, d, threads, ld in keys:
        same = [r for r in rows if (r["N"], r["D"], r["threads"], r["load"]) == (n, d, threads, ld)]
        mine = [r for r in same if r["method"] == "interp_lib"]
        if not mine:
            continue
        ours = mine[0]
        peers = [r for r in same if r["method"] in NAMES]
        extra = ""
        if "one_thread_over_this" in ours:
            extra = (
                f"; ours at 1 thread {ours['one_thread_over_this']:.2f}x "
                f"({ours['one_thread_over_this_wall']:.2f}x wall)"
            )
        avg = ours["load_avg"]
        out.append(
            {
                "what": f"TwoNN, N = {n:,}, D = {d:,} (rank 12)",
                "setting": f"CPU, {threads} thread(s), {describe(ld)}, "
                f"load average {min(avg):.1f}-{max(avg):.1f}",
                "ours": f"{ours['median_s']:.2f} CPU s ({ours['wall_s']:.2f} s wall), "
                f"peak {ours['peak_mb']:.0f} MB",
                "peer": "; ".join(f"{NAMES[r['method']]} {r['median_s']:.2f} s" for r in peers),
                "ratio": "; ".join(f"{r['ratio']:.2f}x ({r['wall_ratio']:.2f}x)" for r in peers)
                + extra,
            }
        )
    return out


def targets(rows: list[dict]) -> list[str]:
    """One line per ratio of :data:`TARGETS` measured in this run (peer time / ours, in
    each setting), and ours at the default thread count against ours at one thread."""
    out = []
    for n, d, peer, goal in TARGETS:
        for r in rows:
            if (r["N"], r["D"], r["method"]) != (n, d, peer):
                continue
            ok = "met" if r["ratio"] >= goal else "NOT met"
            out.append(
                f"# {peer} / ours at {n}x{d}, {r['threads']} thread(s), {r['load']}: "
                f"{r['ratio']:.2f}x CPU, {r['wall_ratio']:.2f}x wall (target {goal:g}x: {ok})"
            )
    for r in rows:
        if r["method"] == "interp_lib" and "one_thread_over_this" in r:
            ok = "met" if r["one_thread_over_this_wall"] >= 1 else "NOT met"
            out.append(
                f"# ours at 1 thread / ours at {r['threads']} at {r['N']}x{r['D']}, {r['load']}: "
                f"{r['one_thread_over_this']:.2f}x CPU, {r['one_thread_over_this_wall']:.2f}x wall "
                f"(never slower, wall >= 1x: {ok})"
            )
    return out


def spectrum(args) -> None:
    """How the projected search's gain depends on the data's spectrum."""
    import numpy as np
    import torch

    from interp_lib.id import neighbors
    from interp_lib.id.neighbors import knn

    if args.threads.split(",")[0] != "default":
        torch.set_num_threads(int(args.threads.split(",")[0]))

    def timed(X, projected: bool) -> tuple[float, int]:
        saved = neighbors._PROJECTION_RANKS
        if not projected:
            neighbors._PROJECTION_RANKS = ()
        try:
            Y = X - X.mean(0)
            rank = neighbors._search_space(Y, 2, 4, 4096).rank
            t = time.perf_counter()
            knn(X, 2)
            return time.perf_counter() - t, rank
        finally:
            neighbors._PROJECTION_RANKS = saved

    print(f"# spectrum study  {now()}")
    print(f"# machine: {machine()}; load average {load()}")
    print(f"{'data':<34} {'N':>6} {'D':>5} {'rank':>5} {'full s':>8} {'auto s':>8} {'gain':>6}")
    n, d = args.spectrum_size
    rng = np.random.default_rng(0)
    cases = [("rank 12 (bench data)", torch.from_numpy(bench_data(n, d)))]
    R, _ = np.linalg.qr(rng.normal(size=(d, d)))
    for alpha in (2.0, 1.0, 0.5, 0.0):
        scales = np.arange(1, d + 1, dtype=np.float64) ** (-alpha / 2)
        X = ((rng.normal(size=(n, d)) * scales) @ R.T).astype(np.float32)
        cases.append((f"power law lambda_i ~ i^-{alpha:g}", torch.from_numpy(X)))
    cases += _activations()
    for name, X in cases:
        t_full, _ = timed(X, projected=False)
        t_auto, rank = timed(X, projected=True)
        print(
            f"{name:<34} {X.shape[0]:>6} {X.shape[1]:>5} {rank:>5} {t_full:>8.2f} "
            f"{t_auto:>8.2f} {t_full / t_auto:>5.2f}x",
            flush=True,
        )


def _activations():
    """Conv-layer activations of a small CNN (trained 2 epochs) on the digits."""
    import torch

    from interp_lib.datasets.digits import digits_tensors
    from interp_lib.models import train_classifier
    from interp_lib.networks import cnn_classifier

    torch.manual_seed(0)
    x, y = digits_tensors(image_size=32)
    net = cnn_classifier(10, in_channels=1, image_size=32)
    train_classifier(net, (x, y), epochs=2, progress=False, seed=0)
    out = []
    with torch.no_grad():
        h = x
        for i, layer in enumerate(net.features):
            h = layer(h)
            if isinstance(layer, torch.nn.ReLU):
                out.append((f"digits CNN features.{i} (ReLU)", h.flatten(1).contiguous()))
    # the digits are only 1797 points: repeat with small jitter to reach 8k rows
    g = torch.Generator().manual_seed(0)
    big = []
    for name, a in out[:2]:
        rep = a.repeat(5, 1)
        rep = rep + 1e-2 * a.std() * torch.randn(rep.shape, generator=g)
        big.append((name + " x5 jittered", rep))
    return big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-dadapy", action="store_true")
    ap.add_argument(
        "--threads",
        default="1,default",
        help="thread settings: comma-separated counts or 'default'",
    )
    ap.add_argument("--loads", default="idle,loaded", help="load settings (bench/_load.py)")
    ap.add_argument("--json", help="write a summary for bench/report.py here")
    ap.add_argument(
        "--append",
        action="store_true",
        help="keep the --json file's rows of other sizes (sizes run separately)",
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=ALL, help="methods to leave out")
    ap.add_argument("--previous", default=PREVIOUS, help="commit of the 'previous' search")
    ap.add_argument("--spectrum", action="store_true", help="the spectrum study instead")
    ap.add_argument(
        "--spectrum-size", type=lambda s: tuple(map(int, s.split("x"))), default=(20000, 512)
    )
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "NPY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.previous, args.threads)
    elif args.spectrum:
        spectrum(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
