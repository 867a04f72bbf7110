"""Layout: cells within a line, columns across lines, and the table they make.

Cells: a line's pieces (left to right by their left edge) start a new cell where the empty
gap before a piece is wider than CELL_GAP x H: digits of one number sit closer than that.
Columns: every cell's horizontal span in the image; spans that overlap are merged (repeated
until none overlap), so cells stacked under each other share a column even when the numbers
are of different lengths; columns are ordered left to right. A cell belongs to the column its
span overlaps most. Two cells of one line in one column are joined with a space.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .cuts import Piece

if TYPE_CHECKING:
    from .result import Cell, Reading

CELL_GAP = 0.9


def split_cells(pieces: list[Piece], height: float) -> list[list[Piece]]:
    """Pieces grouped into cells (module docstring), each still sorted by centre."""
    cells: list[list[Piece]] = []
    reach = None
    for p in sorted(pieces, key=lambda p: p.left):
        if reach is None or p.left - reach > CELL_GAP * height:
            cells.append([])
        cells[-1].append(p)
        reach = p.right if reach is None else max(reach, p.right)
    return [sorted(c, key=lambda p: (p.centre, p.top)) for c in cells]


def columns_of(cells: list["Cell"]) -> list[tuple[int, int]]:
    spans = sorted((c.box[0], c.box[2]) for c in cells)
    merged: list[list[int]] = []
    for left, right in spans:
        if merged and left < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], right)
        else:
            merged.append([left, right])
    return [(a, b) for a, b in merged]


def column_of(cell: "Cell", columns: list[tuple[int, int]]) -> int:
    overlaps = [min(b, cell.box[2]) - max(a, cell.box[0]) for a, b in columns]
    return max(range(len(columns)), key=lambda k: overlaps[k])


def table_rows(reading: "Reading") -> list[list[str]]:
    columns = reading.columns or columns_of([c for line in reading.lines for c in line.cells])
    rows = []
    for line in reading.lines:
        row = [""] * len(columns)
        for cell in line.cells:
            k = column_of(cell, columns)
            row[k] = f"{row[k]} {cell.text}" if row[k] else cell.text
        rows.append(row)
    return rows
