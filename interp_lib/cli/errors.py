"""One error policy for every command line: a user error is one line, not a traceback.

A user error is a mistake the person at the terminal can fix from the message alone: a
missing or malformed config, a value out of range, a missing data folder, a run folder
that holds another run. The library raises those as ``ValueError``, ``TypeError``,
``FileNotFoundError``, ``NotADirectoryError``, ``FileExistsError`` or, for a missing
optional package, the ``ModuleNotFoundError`` of ``interp_lib._plumbing.require``;
the command line adds :class:`UsageError`. :func:`run_command` prints each as one line
``error: ...`` on stderr and returns exit status 2; ``--debug`` shows the traceback
instead. ``Ctrl-C`` returns 130 with a one-line note. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "USER_ERRORS", "UsageError", "run_command"]

#: Exit status of a user error (as argparse uses for a bad command line).
EXIT_USAGE = 2
#: Exit status after ``Ctrl-C`` (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """A command line or config the command cannot run with (the message says why)."""


#: The exception types printed as one line (see the module docstring).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    PermissionError,
    ModuleNotFoundError,
)


def run_command(
    body: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
    *,
    interrupted: str = "interrupted",
) -> int:
    """Run ``body(argv)`` under the error policy; return the process's exit status.

    Parameters
    ----------
    body : callable
        Parses ``argv`` and runs the command; returns the exit status (0 on success).
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``). ``--debug`` among them lets every
        exception through with its traceback.
    interrupted : str
        The note printed after ``Ctrl-C``, e.g. how to resume the run.

    Returns
    -------
    int
        ``body``'s status; :data:`EXIT_USAGE` (2) after a user error,
        :data:`EXIT_INTERRUPTED` (130) after ``Ctrl-C``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        return body(args)
    try:
        return body(args)
    except KeyboardInterrupt:
        print(f"{interrupted}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())
