"""The browser walks' fixture; the helpers live in labkit.py (a module of its own, so its name does not
clash with tests/conftest.py)."""

from labkit import browser  # noqa: F401 (a fixture, found by pytest here)
