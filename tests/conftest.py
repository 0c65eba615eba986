"""pytest configuration. Shared helpers are the package tests/helpers (``from helpers import sweep``):
pytest puts tests/ on sys.path for the test modules (rootdir-relative import, no sys.path insert here)."""
