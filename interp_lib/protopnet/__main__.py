"""``python -m interp_lib.protopnet train|push|prune|explain CONFIG --out DIR``."""

import sys

from .cli import main

sys.exit(main())
