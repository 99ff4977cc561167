"""bench/_load.py: the documented background load starts its busy processes and always
ends them (no timing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _helpers import bench_module

ROOT = Path(__file__).resolve().parents[1]


def test_two_busy_processes_per_core_by_default():
    mod = bench_module("_load")
    assert mod.LOADS == {"idle": 0, "loaded": 2 * (os.cpu_count() or 1)}
    assert mod.describe("idle") == "idle (no added load)"
    assert mod.describe("loaded") == f"loaded (+{2 * (os.cpu_count() or 1)} busy processes)"


def test_processes_run_inside_and_are_ended_after_even_on_errors(monkeypatch):
    mod = bench_module("_load")
    monkeypatch.setattr(mod, "WARM_UP_S", 0.0)
    with mod.background_load(0) as none:
        assert none == []
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        with mod.background_load(2) as procs:
            seen = list(procs)
            assert len(procs) == 2 and all(p.poll() is None for p in procs)  # running
            raise RuntimeError("boom")
    assert seen and all(p.returncode is not None for p in seen)  # killed and reaped


def test_sigterm_ends_the_busy_processes_too():
    import signal
    import subprocess
    import sys
    import time

    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
        "import _load, time\n"
        "_load.WARM_UP_S = 0.0\n"
        "with _load.background_load(2) as procs:\n"
        "    print(' '.join(str(p.pid) for p in procs), flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) != 0
    time.sleep(0.2)
    for pid in pids:  # reaped by the parent: no such process any more
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
