"""Seed meta agents shipped with the package (read as files with importlib.resources)."""
