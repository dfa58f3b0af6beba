"""Fixtures of the browser tests (defined in :mod:`browser_support`)."""

from browser_support import browser, served

__all__ = ["browser", "served"]
