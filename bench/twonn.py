"""Benchmark: interp_lib's TwoNN against scikit-dimension, DADApy and a naive torch baseline.

Every (method, N, D) runs in a fresh subprocess on the same saved data, so the timings
and the peak memory (growth of the process's maximum resident set during the estimate)
are not polluted by each other. DADApy pins numpy < 2 and pulls in jax, so it runs in
its own throw-away virtual environment (``bench/.venvs/dadapy``, created on first use;
pass ``--no-dadapy`` to skip it).

    python bench/twonn.py                  # N in {5k, 20k} x D in {100, 1000}
    python bench/twonn.py --sizes 5000x100 # one size

The data: a 12-dimensional Gaussian rotated into D dimensions (float32).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DADAPY_VENV = HERE / ".venvs" / "dadapy"


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(method: str, path: str) -> None:
    import numpy as np

    X = np.load(path)
    if method == "interp_lib":
        from interp_lib.id import twonn

        run = lambda: twonn(X).dimension  # noqa: E731
    elif method == "skdim":
        import skdim

        run = lambda: skdim.id.TwoNN().fit(X).dimension_  # noqa: E731
    elif method == "dadapy":
        from dadapy import Data

        def run():
            return Data(X.astype(np.float64)).compute_id_2NN()[0]
    elif method == "naive_torch":
        import torch

        from interp_lib.id.naive import naive_twonn

        run = lambda: naive_twonn(torch.from_numpy(X))  # noqa: E731
    else:
        raise SystemExit(f"unknown method {method}")
    base = _peak_rss_mb()
    t = time.perf_counter()
    est = run()
    dt = time.perf_counter() - t
    print(json.dumps({"time": dt, "estimate": float(est), "peak_mb": _peak_rss_mb() - base}))


def _ensure_dadapy() -> Path | None:
    py = DADAPY_VENV / "bin" / "python"
    if not py.exists():
        print("creating DADApy's own venv (numpy<2, jax) under bench/.venvs ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(DADAPY_VENV)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "dadapy"], check=True)
        except subprocess.CalledProcessError as exc:
            print(f"DADApy unavailable ({exc}); skipping it.")
            return None
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="5000x100,5000x1000,20000x100,20000x1000")
    ap.add_argument("--no-dadapy", action="store_true")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "NPY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    import numpy as np

    methods = [("interp_lib", sys.executable), ("skdim", sys.executable)]
    if not args.no_dadapy and (py := _ensure_dadapy()):
        methods.append(("dadapy", str(py)))
    methods.append(("naive_torch", sys.executable))

    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    print(
        f"{'N':>6} {'D':>5} {'method':<12} {'time s':>8} {'ID':>8} {'peak MB':>8} {'time / ours':>11}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            n, d = (int(v) for v in size.split("x"))
            rng = np.random.default_rng(0)
            Q, _ = np.linalg.qr(rng.normal(size=(d, 12)))
            X = (rng.normal(size=(n, 12)) @ Q.T).astype(np.float32)
            path = os.path.join(tmp, f"X_{n}_{d}.npy")
            np.save(path, X)
            ours = None
            for name, py in methods:
                out = subprocess.run(
                    [py, __file__, "--worker", name, path], capture_output=True, text=True, env=env
                )
                if out.returncode:
                    print(f"{n:>6} {d:>5} {name:<12} failed: {out.stderr.strip()[-200:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                ours = ours or r["time"]
                print(
                    f"{n:>6} {d:>5} {name:<12} {r['time']:>8.2f} {r['estimate']:>8.3f} "
                    f"{r['peak_mb']:>8.0f} {r['time'] / ours:>10.1f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
