"""``python -m interp_lib.profile MODEL DATA --out DIR``, the same as the
``interp-lib-profile`` command: see ``interp_lib.profile.cli``."""

import sys

from .cli import main

sys.exit(main())
