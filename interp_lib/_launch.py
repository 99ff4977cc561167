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

``python -m interp_lib.profile`` (or ``.protopnet``) imports the packages above the
command's ``__main__`` first, and they import torch; so the top package calls
:func:`set_for_module_run` before anything else, which sets the policy when the
interpreter was started to run one of the commands.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

WAIT_POLICY = "PASSIVE"
#: The modules that ``python -m`` runs as the command lines.
COMMANDS = ("interp_lib.profile", "interp_lib.protopnet")


def _set_wait_policy() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def set_for_module_run(
    argv: Sequence[str] | None = None, orig_argv: Sequence[str] | None = None
) -> None:
    """Set the wait policy when this process is ``python -m`` one of :data:`COMMANDS`.

    While ``python -m`` locates its module (importing the packages above it),
    ``sys.argv[0]`` is ``"-m"``, and ``sys.orig_argv`` holds the interpreter's own
    command line (``[python, *options, "-m", module, *args]``): both say which module
    is about to run. Any other use of the package changes nothing.
    """
    argv = sys.argv if argv is None else argv
    orig = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if argv[:1] != ["-m"] or "-m" not in orig:
        return
    at = list(orig).index("-m") + 1
    if at < len(orig) and orig[at] in COMMANDS:
        _set_wait_policy()


def _run(target: str):
    _set_wait_policy()
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)()


def profile():
    """``interp-lib-profile``: :func:`interp_lib.profile.cli.main`."""
    return _run("interp_lib.profile.cli:main")


def protopnet():
    """``interp-lib-protopnet``: :func:`interp_lib.protopnet.cli.main`."""
    return _run("interp_lib.protopnet.cli:main")
