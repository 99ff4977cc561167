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
