"""interp_lib: understanding deep networks by intrinsic dimension and by prototypes.

Subpackages are imported lazily, so ``import interp_lib.id`` stays light:

- :mod:`interp_lib.id` -- intrinsic-dimension estimators (TwoNN, Gride, PC-ID).
- :mod:`interp_lib.datasets` -- manifolds with known ID and offline image sets.
- :mod:`interp_lib.profile` -- the ID of every layer of a PyTorch model.
- :mod:`interp_lib.protopnet` -- ProtoPNet ("This Looks Like That").
- :mod:`interp_lib.baselines` -- CAM, Grad-CAM, captum attributions and metrics.
- :mod:`interp_lib.models` -- small classifiers and a training loop for the experiments.
- :mod:`interp_lib.viz` -- figures and widgets used by the book.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_SUBMODULES = ("id", "datasets", "profile", "protopnet", "baselines", "models", "viz")

if TYPE_CHECKING:  # pragma: no cover
    from . import baselines, datasets, id, models, profile, protopnet, viz  # noqa: F401


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'interp_lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
