"""Test-wide settings: hypothesis draws the same examples on every run, so CI on a clean
clone (no example database) is as reproducible as the rest of the suite."""

from hypothesis import settings

settings.register_profile("reproducible", derandomize=True)
settings.load_profile("reproducible")
