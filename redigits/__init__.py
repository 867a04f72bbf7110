"""redigits: one command for the five packages (`redigits --help`), and the distribution's version.

The packages stay importable and runnable on their own (`python -m trainer ...`); this package
only routes `redigits <command>` to them (see redigits/cli.py)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("redigits")
except PackageNotFoundError:   # a source tree on sys.path that was never pip-installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
