"""How long each chapter notebook takes, cold and with the model cache warm, and how much
memory its kernel needs: the figures each chapter states at its top.

Each notebook of ``notebooks/`` (as a reader gets it: the committed ``.ipynb``) is
executed twice in a fresh Jupyter kernel (nbclient), from a temporary working folder
outside the repository, with ``INTERP_LIB_CACHE`` pointing at a temporary folder that
starts empty:

- **cold**: the zoo cache is empty, so every cached network is trained;
- **warm**: the same cache folder, now filled by the cold run.

With ``--quick`` the kernel gets the environment ``binder/start`` gives a Binder session
(the chapters' quick budget, ``INTERP_LIB_BOOK_QUICK=1``, and its memory settings), so
the row's peak is what a mybinder.org session (2 GB) needs.

For each run it records the wall time, the CPU time (user + system) and the peak
resident memory (RSS) of the kernel process and its child processes (data-loader
workers), polled every ``--interval`` seconds with psutil, the index of the notebook
cell during which that peak was reached (``peak_cell``, counting every cell from 0),
plus the machine, its load average and the thread settings. Rows are merged into
``--json`` (default ``bench/summaries/notebooks.json``) after each chapter, keyed by
chapter and budget: a chapter measured again at the same budget replaces that row, its
row at the other budget and the other chapters' rows are kept. A chapter whose notebook
fails is reported and skipped (the exit status is then 1).
:func:`interp_lib.book.run_time` reads that file for the sentence at the top of each
chapter: the default-budget row, plus the quick row's peak (the budget Binder runs,
where a session has 2 GB).

    python bench/notebook_times.py                       # every chapter (about an hour on 2 cores)
    python bench/notebook_times.py id_twonn              # one chapter, cold then warm
    python bench/notebook_times.py id_twonn --quick      # the environment binder/start sets
    python bench/notebook_times.py --quick --cold-only   # every chapter, cold only
    python bench/notebook_times.py protopnet_intro --cache ~/.cache/interp_lib --json x.json
                                                         # warm only, on an existing cache

The figures are the machine's: on a shared machine the wall times include the waits for
the CPU (the load average is recorded with each row); the CPU times do not. Run it on a
copy of the code that nobody edits meanwhile (e.g. ``git archive HEAD`` unpacked, with
``PYTHONPATH`` pointing at it, which the kernels inherit): a zoo entry's cache key hashes
the library code that trains it, so an edit between the cold and the warm run makes the
warm run train again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine, now, write_summary

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SUMMARY = ROOT / "bench" / "summaries" / "notebooks.json"
BINDER_START = ROOT / "binder" / "start"
VERSION = 1


class KernelMonitor(threading.Thread):
    """Polls a process and its descendants: peak summed RSS and the CPU time they used.

    CPU time: for each process seen, its last ``user + system`` (children that ended
    before a poll are counted through their parent's ``children_user/system`` when the
    parent reaped them).
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        import psutil

        self.psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.cpu: dict[int, float] = {}
        self.start_cpu = self._cpu_now()
        self._halt = threading.Event()

    def _procs(self):
        try:
            return [self.root, *self.root.children(recursive=True)]
        except self.psutil.NoSuchProcess:
            return []

    def _cpu_now(self) -> dict[int, float]:
        out = {}
        for p in self._procs():
            try:
                t = p.cpu_times()
                own = t.user + t.system
                if p.pid == self.root.pid:  # reaped children (e.g. finished loader workers)
                    own += t.children_user + t.children_system
                out[p.pid] = own
            except self.psutil.NoSuchProcess:
                pass
        return out

    def poll(self) -> None:
        rss = 0
        for p in self._procs():
            try:
                rss += p.memory_info().rss
            except self.psutil.NoSuchProcess:
                pass
        self.peak_rss = max(self.peak_rss, rss)
        for pid, t in self._cpu_now().items():
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), t)

    def run(self) -> None:
        while not self._halt.is_set():
            self.poll()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.poll()

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds used since the monitor was created."""
        return sum(t - self.start_cpu.get(pid, 0.0) for pid, t in self.cpu.items())


def binder_env() -> dict[str, str]:
    """The environment ``binder/start`` gives a Binder session's kernels (it runs
    ``env`` under that script): ``INTERP_LIB_BOOK_QUICK=1`` and its other settings."""
    run = subprocess.run(
        ["bash", str(BINDER_START), "env", "-0"], capture_output=True, check=True, timeout=60
    )
    pairs = (item.split("=", 1) for item in run.stdout.decode().split("\0") if "=" in item)
    return dict(pairs)


def execute(path: Path, cache: Path, *, quick: bool, timeout: int, interval: float) -> dict:
    """Run one notebook in a fresh kernel (see the module docstring); its measurements.
    ``quick``: in the environment of ``binder/start`` (the quick budget, as on Binder)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    env = binder_env() if quick else dict(os.environ)
    env.pop("INTERP_LIB_BOOK_BUILD", None)
    env["INTERP_LIB_CACHE"] = str(cache)
    env["MPLBACKEND"] = "Agg"
    if not quick:
        env.pop("INTERP_LIB_BOOK_QUICK", None)
    with tempfile.TemporaryDirectory(prefix="nb-run-") as work:
        client = nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": work}}
        )
        with client.setup_kernel(env=env):
            monitor = KernelMonitor(client.km.provisioner.pid, interval)
            monitor.start()
            start = time.perf_counter()
            peak_cell = 0
            for index, cell in enumerate(nb.cells):
                before = monitor.peak_rss
                client.execute_cell(cell, index)
                monitor.poll()
                if monitor.peak_rss > before:
                    peak_cell = index
            wall = time.perf_counter() - start
            monitor.stop()
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(monitor.cpu_seconds, 1),
        "peak_rss_gb": round(monitor.peak_rss / 1e9, 3),
        "peak_cell": peak_cell,
    }


def measure(
    chapter: str,
    *,
    quick: bool,
    timeout: int,
    interval: float,
    cache: Path | None = None,
    cold_only: bool = False,
) -> dict:
    """Cold then warm run of one chapter (one temporary cache folder); with ``cache``, a
    warm run only, on that cache folder (left as it is); with ``cold_only``, the cold run
    only."""
    path = NOTEBOOKS / f"{chapter}.ipynb"
    if not path.is_file():
        raise SystemExit(f"no notebook {path}")
    if cache is not None and cold_only:
        raise ValueError("cache= (a warm run on an existing cache) and cold_only=True exclude "
                         "each other: pass one of them")  # fmt: skip
    modes = ("warm",) if cache is not None else ("cold",) if cold_only else ("cold", "warm")
    row: dict = {"chapter": chapter}
    with tempfile.TemporaryDirectory(prefix="nb-cache-") as empty:
        for mode in modes:
            print(f"# {chapter}: {mode} run...", flush=True)
            folder = cache if cache is not None else Path(empty)
            result = execute(path, folder, quick=quick, timeout=timeout, interval=interval)
            print(f"# {chapter} {mode}: {result}", flush=True)
            row[mode] = result
    row.update(
        date=now(),
        load=load(),
        quick=quick,
        **({"env": "binder/start"} if quick else {}),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )
    return row


def _key(row: dict) -> tuple[str, bool]:
    return row["chapter"], bool(row.get("quick"))


def merge(path: Path, rows: list[dict]) -> dict:
    """``rows`` merged into the summary at ``path``: rows are keyed by chapter and budget
    (``quick``), so a chapter's new row replaces its old row at the same budget only."""
    summary = json.loads(path.read_text()) if path.is_file() else {}
    table = {_key(r): r for r in summary.get("table", [])}
    table.update({_key(r): r for r in rows})
    order = [p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
    ranked = sorted(
        table.values(),
        key=lambda r: (
            order.index(r["chapter"]) if r["chapter"] in order else len(order),
            bool(r.get("quick")),
        ),
    )
    return {
        "script": "bench/notebook_times.py",
        "version": VERSION,
        "machine": machine(),
        "cpu_count": os.cpu_count(),
        "table": ranked,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("chapters", nargs="*", help="notebook names (default: every notebook)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="in the environment binder/start sets (INTERP_LIB_BOOK_QUICK=1: Binder's budget)",
    )
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    p.add_argument("--interval", type=float, default=0.2, help="memory polling period (s)")
    p.add_argument("--json", type=Path, default=SUMMARY, help="summary to merge the rows into")
    p.add_argument(
        "--cold-only",
        action="store_true",
        help="the cold run only (what a fresh session with no model cache gets)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        help="an existing INTERP_LIB_CACHE folder: warm run only "
        "(the row has no cold time, and the chapters quote only full rows)",
    )
    args = p.parse_args(argv)
    if args.cache is not None and args.cold_only:
        p.error("--cache (a warm run on an existing cache) and --cold-only exclude each other")
    chapters = args.chapters or [p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
    failed = []
    for chapter in chapters:
        try:
            row = measure(chapter, quick=args.quick, timeout=args.timeout,
                          interval=args.interval, cache=args.cache,
                          cold_only=args.cold_only)  # fmt: skip
        except Exception as error:  # a failing notebook must not lose the other chapters
            print(f"# {chapter} FAILED: {type(error).__name__}: {error}", flush=True)
            failed.append(chapter)
            continue
        write_summary(args.json, merge(args.json, [row]))
    if failed:
        print(f"# failed: {' '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
