"""Exceptions of the prototxt package: each names the file and, where known, the place in it."""
from __future__ import annotations

from pathlib import Path


class PrototxtError(Exception):
    """A Caffe file could not be read, upgraded or written.

    `path`, `line` and `column` (1-based, text files) or `offset` (bytes, binary files) say where;
    `field` names the offending field or layer when one is known.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 column: int | None = None, offset: int | None = None, field: str | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.offset = offset
        self.field = field
        super().__init__(self.__str__())

    def where(self) -> str:
        where = self.path or "<string>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.offset is not None:
            where += f" (byte {self.offset})"
        return where

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}"


class DigitsError(PrototxtError):
    """A network that DIGITS would have refused (its own messages are kept)."""
