"""Exceptions of the inference package: each names the file (model, image or list) at fault."""
from __future__ import annotations

import os


class InferenceError(Exception):
    """A model could not be loaded or run, or an input could not be classified."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class BadImageError(InferenceError):
    """An uploaded or given image is empty, not an image, truncated, or too large.

    `status` is the HTTP status the server answers with (400, 413 or 415).
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, status: int = 400):
        self.status = status
        super().__init__(message, path)
