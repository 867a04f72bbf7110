"""Exceptions of the prototxt package: each names the file and, where known, the place in it."""
from __future__ import annotations

import re
from pathlib import Path

#: Messages quote the offending text; a 200 KB token or line is cut to this many characters
#: (enough for any real file path, which messages quote whole).
MAX_WORD = 400
MAX_MESSAGE = 2000
_LONG_WORD = re.compile(r"\S{%d,}" % (MAX_WORD + 1))


def shorten(text: str) -> str:
    """`text` with every run of more than MAX_WORD non-blank characters cut (its length said)
    and the whole kept under about MAX_MESSAGE characters (head and tail)."""
    text = _LONG_WORD.sub(lambda m: f"{m.group(0)[:MAX_WORD]}...({len(m.group(0))} characters)",
                          text)
    if len(text) > MAX_MESSAGE:
        half = MAX_MESSAGE // 2
        text = f"{text[:half]} ...({len(text) - 2 * half} characters cut)... {text[-half:]}"
    return text


class PrototxtError(Exception):
    """A Caffe file could not be read, upgraded or written.

    `path`, `line` and `column` (1-based, text files) or `offset` (bytes, binary files) say where;
    `field` names the offending field or layer when one is known.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 column: int | None = None, offset: int | None = None, field: str | None = None):
        self.message = shorten(message)
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.offset = offset
        self.field = shorten(field) if field is not None else None
        super().__init__(self.__str__())

    def __reduce__(self):
        # whole across processes (worker pools), whatever a subclass's __init__ takes
        return _rebuild, (type(self), self.args, self.__dict__)

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


def _rebuild(cls: type, args: tuple, state: dict) -> PrototxtError:
    error = Exception.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class DigitsError(PrototxtError):
    """A network that DIGITS would have refused (its own messages are kept)."""
