"""Data with known structure, all generated or shipped offline (nothing downloads)."""

from .manifolds import (  # noqa: E402
    MANIFOLDS,
    curved_manifold,
    gaussian,
    hypercube,
    make_manifold,
    periodic_distances,
    sphere,
    swiss_roll,
)
