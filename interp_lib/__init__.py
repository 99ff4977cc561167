"""interp_lib: understanding deep networks by intrinsic dimension and by prototypes.

Subpackages are imported lazily, so ``import interp_lib.id`` stays light:

- :mod:`interp_lib.id` -- intrinsic-dimension estimators (TwoNN, Gride, PC-ID).
- :mod:`interp_lib.datasets` -- manifolds with known ID and offline image sets.
- :mod:`interp_lib.profile` -- the ID of every layer of a PyTorch model.
- :mod:`interp_lib.protopnet` -- ProtoPNet ("This Looks Like That").
- :mod:`interp_lib.baselines` -- CAM, Grad-CAM, captum attributions and metrics.
- :mod:`interp_lib.networks` -- the architectures, one model builder, one weight loader.
- :mod:`interp_lib.models` -- a training loop and the accuracy of a classifier.
- :mod:`interp_lib.studies` -- the papers' ID experiments as tested building blocks.
- :mod:`interp_lib.zoo` -- trained networks of the book, cached on disk.
- :mod:`interp_lib.viz` -- figures and widgets used by the book.
- :mod:`interp_lib.claims`, :mod:`interp_lib.book` -- the book's verdicts and numbers.
- :mod:`interp_lib.cli` -- what the command lines share.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if getattr(sys, "argv", [])[:1] == ["-m"]:  # `python -m` is locating its module
    # `python -m interp_lib.profile|protopnet`: their OpenMP wait policy, before torch starts
    from ._launch import set_for_module_run

    set_for_module_run()

__version__ = "0.1.0"

_SUBMODULES = (
    "id",
    "datasets",
    "profile",
    "protopnet",
    "baselines",
    "networks",
    "models",
    "studies",
    "zoo",
    "viz",
    "claims",
    "book",
    "cli",
)

if TYPE_CHECKING:  # pragma: no cover
    from . import (  # noqa: F401
        baselines,
        book,
        claims,
        cli,
        datasets,
        id,
        models,
        networks,
        profile,
        protopnet,
        studies,
        viz,
        zoo,
    )


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'interp_lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
