"""Where a field sits in a protobuf text file: `field_positions(text, "test_iter")` -> the
(line, column) of each top-level occurrence, 1-based, in file order.

Protobuf's text parser keeps no positions once a message is parsed, so checks made after parsing
(a solver's test_iter count, a value out of range) find their place here to report
path:line:column like parse errors. Only top-level fields are found (nested messages such as
`net_param { ... }` or `test_state { ... }` are skipped); strings and `#` comments are skipped.
"""
from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AFTER_NAME = re.compile(r"\s*(?:#[^\n]*\n\s*)*([:{<])")


def field_positions(text: str, name: str) -> list[tuple[int, int]]:
    """(line, column) of every top-level `name:` / `name {` in protobuf text."""
    found: list[tuple[int, int]] = []
    depth = 0
    line, line_start = 1, 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line, line_start = line + 1, i + 1
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            i += 1
            while i < n and text[i] != c and text[i] != "\n":
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif c in "{<":
            depth += 1
            i += 1
        elif c in "}>":
            depth = max(0, depth - 1)
            i += 1
        else:
            match = _NAME.match(text, i) if (c.isalpha() or c == "_") else None
            if match is None:
                i += 1
                continue
            if depth == 0 and match.group(0) == name and _AFTER_NAME.match(text, match.end()):
                found.append((line, i - line_start + 1))
            i = match.end()
    return found
