"""The flags every command line shares, and what they do before a command runs.

=================  ===================================================================
``--out DIR``      the run folder: every output goes there (:mod:`interp_lib.cli.outputs`)
``--device``       ``auto`` (default: CUDA if there is one, else the CPU), ``cpu``,
                   ``cuda``, ``cuda:1``...; under ``torchrun`` a ``cuda`` without an
                   index is this process's GPU (``LOCAL_RANK``)
``--seed N``       seeds everything random in the run (default 0)
``--resume``       continue the run in ``--out``
``--overwrite``    replace the run in ``--out`` with a fresh one
``--threads N``    ``torch.set_num_threads(N)`` (default: torch's choice)
``--debug``        show tracebacks (:mod:`interp_lib.cli.errors`)
=================  ===================================================================
"""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

import torch

from .errors import UsageError

__all__ = ["ArgumentParser", "HelpFormatter", "add_common_flags", "apply_threads",
           "non_negative_int", "positive_int", "resolve_device"]  # fmt: skip


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each flag's default, said once.

    Adds ``(default: ...)`` to a flag's help unless the help already says its default
    (it contains ``default``) or there is nothing to say (a default of ``None`` or
    ``False``: an unset option, an off switch). The description and epilog keep their
    line breaks (tables, examples)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose errors raise :class:`~interp_lib.cli.errors.UsageError` (printed as
    one line by :func:`~interp_lib.cli.errors.run_command`) instead of exiting. Its help
    uses :class:`HelpFormatter`, also where ``formatter_class`` names one that
    :class:`HelpFormatter` refines (``argparse.ArgumentDefaultsHelpFormatter``,
    ``argparse.RawDescriptionHelpFormatter``); another formatter is kept."""

    def __init__(self, *args, **kwargs) -> None:
        given = kwargs.get("formatter_class", HelpFormatter)
        if issubclass(HelpFormatter, given):
            kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


#: ``type=`` of an argument that must be an integer >= 1.
positive_int = _int_at_least(1)
#: ``type=`` of an argument that must be an integer >= 0.
non_negative_int = _int_at_least(0)


def add_common_flags(parser: argparse.ArgumentParser, *, resume_help: str) -> None:
    """Add ``--out``, ``--device``, ``--seed``, ``--resume``, ``--overwrite``,
    ``--threads`` and ``--debug`` (see the module docstring) to ``parser``."""
    parser.add_argument("--out", required=True, help="run folder (created); every output goes here")
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA if available, else cpu), cpu, cuda, cuda:1..."
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the run")
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out with a fresh one"
    )
    parser.add_argument(
        "--threads", type=positive_int, help="torch.set_num_threads(N) (default: torch's choice)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def apply_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` unless ``threads`` is ``None``."""
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_device(spec: str = "auto") -> torch.device:
    """The device named by ``--device``.

    ``"auto"``: CUDA if available, else the CPU. Under ``torchrun`` (``LOCAL_RANK`` set) a
    CUDA device without an index is this process's GPU.

    Raises
    ------
    UsageError
        For a name torch does not know, or a CUDA device on a machine without one (or
        with fewer GPUs than the index).
    """
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(
            f"--device {spec!r} is not a device name; give auto, cpu, cuda or cuda:N."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {spec} but CUDA is not available here; use --device cpu (or auto)."
            )
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {device} but there are {torch.cuda.device_count()} CUDA devices."
            )
    elif device.type not in ("cpu", "mps", "xpu"):
        raise UsageError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N.")
    return device
