"""Exceptions of the lmdb_builder package: each says what went wrong, where, and what to do."""
from __future__ import annotations

from pathlib import Path


class BuilderError(Exception):
    """A dataset could not be read, built or written; `path` names the file or folder at fault."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class LoadImageError(BuilderError):
    """One image could not be loaded (DIGITS' LoadImageError): corrupt, truncated, too large,
    or of a PIL mode DIGITS refuses. The builder skips it with a warning, or stops with --strict."""


class NotEnoughImagesError(BuilderError):
    """No class (or no training image) is left after DIGITS' "Not enough images" rule."""
