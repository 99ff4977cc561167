"""The application layer shared by the command lines (``interp-lib-profile``,
``interp-lib-protopnet``).

Each command is a thin shell over one library function per protocol; what the shells
share lives here, one concept per module:

- :mod:`interp_lib.cli.flags` -- the common flags (``--out``, ``--device auto``,
  ``--seed``, ``--resume``, ``--overwrite``, ``--threads``, ``--debug``);
- :mod:`interp_lib.cli.config` -- the TOML config, checked against a schema read from the
  library's signatures;
- :mod:`interp_lib.cli.files` -- atomic, fsynced JSON and CSV files;
- :mod:`interp_lib.cli.outputs` -- the run folder: outputs confined to ``--out``, the
  run's settings in ``run.json``, checked on resume;
- :mod:`interp_lib.cli.errors` -- one line and exit status 2 for a user error, a traceback
  only with ``--debug``, 130 after ``Ctrl-C``.
- :mod:`interp_lib.cli.distributed` -- a command under ``torchrun``: the process group,
  every rank stopped (one line from rank 0) when one fails, gathering.
"""

from .config import Key, check_table, keys_of, load_config, read_toml
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, run_command
from .files import write_csv, write_json
from .flags import (
    ArgumentParser,
    add_common_flags,
    apply_threads,
    non_negative_int,
    positive_int,
    resolve_device,
)
from .outputs import METADATA, RunFolder, versions

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "METADATA",
    "ArgumentParser",
    "Key",
    "RunFolder",
    "UsageError",
    "add_common_flags",
    "apply_threads",
    "check_table",
    "keys_of",
    "load_config",
    "non_negative_int",
    "positive_int",
    "read_toml",
    "resolve_device",
    "run_command",
    "versions",
    "write_csv",
    "write_json",
]
