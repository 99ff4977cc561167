"""Data with known structure, all generated or shipped offline (nothing downloads)."""
