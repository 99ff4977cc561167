"""``python -m interp_lib.profile MODEL DATA --out DIR``: see :mod:`interp_lib.profile.cli`."""

import sys

from .cli import main

sys.exit(main())
