"""What every benchmark script's ``--json`` summary shares (read by ``bench/report.py``):
the machine, the load average, the UTC date, and writing the file."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path


def machine() -> str:
    """``"host (CPU model, N cores, OS)"``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()} ({cpu}, {os.cpu_count()} cores, {platform.system()})"


def load() -> str:
    """The 1, 5 and 15 minute load averages, or ``"n/a"``."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def now() -> str:
    """The current UTC time as ``"YYYY-MM-DD HH:MM UTC"``."""
    return f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"


def write_summary(path: str | os.PathLike, summary: dict) -> None:
    """Write ``summary`` (with ``script``, ``date``, ``machine``, ``table``) as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"# summary written to {path}")


def rss_mb() -> float:
    """This process's resident memory now, in MiB (a run's peak is measured above it)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set (``VmHWM``) to its current one (Linux >=
    4.0: ``/proc/self/clear_refs``); ``False`` where that is not possible.

    ``ru_maxrss`` cannot be reset, and a worker started by ``subprocess`` inherits its
    parent's in it (Linux keeps the maximum across ``fork`` and ``execve``): a peak read
    from it is at least the parent's. ``VmHWM`` is this process's own.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's own peak resident set in MiB (``VmHWM``; ``ru_maxrss`` where
    ``/proc`` is missing, see :func:`reset_peak_rss`)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
