"""The console scripts' entry points: OpenMP's wait policy set before torch is imported.

Between two parallel regions GNU OpenMP's worker threads spin for a while, waiting for
work. On a machine whose cores are shared with other jobs that spinning takes the cores
from the threads doing the work: under load, the profile of ResNet-18 at torch's default
thread count (``bench/layer_profile.py``) took more CPU and more wall time than at one
thread, and ``OMP_WAIT_POLICY=PASSIVE`` (workers sleep while they wait) removed that
without slowing the idle machine (the figures: ``README.md``, Benchmarks). The policy is read
once, when OpenMP starts with the first import of torch, so it cannot be set by a
library call: the command lines set it here, in a module that imports nothing heavy,
unless the user has set it. Library users set it in their environment.
"""

from __future__ import annotations

import importlib
import os

WAIT_POLICY = "PASSIVE"


def _run(target: str):
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)()


def profile():
    """``interp-lib-profile``: :func:`interp_lib.profile.cli.main`."""
    return _run("interp_lib.profile.cli:main")


def protopnet():
    """``interp-lib-protopnet``: :func:`interp_lib.protopnet.cli.main`."""
    return _run("interp_lib.protopnet.cli:main")
