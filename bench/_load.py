"""A documented background load for the benchmarks: ``2 x cores`` busy processes.

A user's machine is rarely idle, and a multi-threaded code path that is fast on idle
cores can be slow when they are shared: a worker thread waiting at a barrier for a
descheduled sibling, or spinning while it waits for work, burns the CPU time the other
jobs need. The benchmarks therefore measure every method twice: with no added load
("idle": whatever else runs on the machine, reported by its load average), and
"loaded", inside :func:`background_load`, which starts ``n`` processes (default
``2 * os.cpu_count()``) that each spin a pure-Python loop (``while True: pass``: one core
each, no memory, no I/O, the default nice level), waits until they run, and ends them
(by their process ids) when the measurement is over, also on errors, interrupts and
SIGTERM.

    from _load import background_load, LOADS
    with background_load(LOADS["loaded"]):
        ...  # the measurement

    python bench/_load.py 10      # 10 seconds of the load, with the load average
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

BUSY = "while True: pass"
#: Busy processes per setting: none added, or two per core.
LOADS = {"idle": 0, "loaded": 2 * (os.cpu_count() or 1)}
WARM_UP_S = 0.5  # the busy processes are scheduled (and the load average starts rising)


def describe(load: str) -> str:
    """``"idle"`` or ``"loaded (+4 busy processes)"``."""
    n = LOADS[load]
    return f"{load} (+{n} busy processes)" if n else "idle (no added load)"


@contextlib.contextmanager
def background_load(n: int) -> Iterator[list[subprocess.Popen]]:
    """Run the block while ``n`` busy processes compete for the cores (``n = 0``: none).

    Yields the processes; they are killed and reaped on exit, whatever happens.
    """
    procs: list[subprocess.Popen] = []
    # a SIGTERM (e.g. from `timeout`) would end Python without running `finally`, leaving
    # the busy processes behind: raise SystemExit instead while they run
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if n else None
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", BUSY],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        if procs:
            time.sleep(WARM_UP_S)
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    print(f"load average before: {os.getloadavg()}; {LOADS['loaded']} busy processes")
    with background_load(LOADS["loaded"]):
        time.sleep(seconds)
        print(f"load average after {seconds:g} s: {os.getloadavg()}")


if __name__ == "__main__":
    main()
