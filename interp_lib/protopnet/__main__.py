"""``python -m interp_lib.protopnet train|push|prune|explain CONFIG --out DIR``, the same
as the ``interp-lib-protopnet`` command: see ``interp_lib.protopnet.cli``."""

import sys

from .cli import main

sys.exit(main())
