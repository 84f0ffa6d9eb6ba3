"""What is running: the installed package's version and the Python under it."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "booking-guard"


def package_version() -> str:
    """booking-guard's version from the installed package's metadata (pyproject.toml)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        # Run from a source tree that was never installed: say so rather than invent a number.
        return "unknown"


def python_version() -> str:
    """The interpreter's version, e.g. 3.11.9."""
    return platform.python_version()
