"""Typed results of reading digits: a Reading holds Lines, a Line holds Cells, a Cell holds Digits.

Boxes are (left, top, right, bottom) in the pixels of the image as given (right and bottom
exclusive). A confidence is the product of the chosen digits' top probabilities: the
probability, under the model, that every digit of the line (or the page) is read right if
the cuts are right. It is a model's softmax, so it is optimistic; use it to rank and flag.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from ..classifier import Prediction

Box = tuple[int, int, int, int]


def union_box(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


@dataclass(frozen=True)
class Digit:
    label: str
    probability: float            # of the top class
    top: list[Prediction]         # the top 3
    box: Box

    def as_dict(self) -> dict:
        return {"label": self.label, "probability": self.probability, "box": list(self.box),
                "top": [{"label": p.label, "probability": p.probability} for p in self.top]}


@dataclass(frozen=True)
class Cell:
    """Digits written together (no gap wider than about a digit's height): a number."""
    digits: list[Digit]
    box: Box

    @property
    def text(self) -> str:
        return "".join(d.label for d in self.digits)

    @property
    def confidence(self) -> float:
        return math.prod(d.probability for d in self.digits)

    def as_dict(self) -> dict:
        return {"text": self.text, "confidence": self.confidence, "box": list(self.box),
                "digits": [d.as_dict() for d in self.digits]}


@dataclass(frozen=True)
class Line:
    """One row of writing, left to right; cells apart by wide gaps."""
    cells: list[Cell]
    box: Box
    slant: float = 0.0            # the shear taken out before cutting: x shift per row (dx/dy)

    @property
    def text(self) -> str:
        """The cells' numbers separated by single spaces."""
        return " ".join(c.text for c in self.cells)

    @property
    def digits(self) -> list[Digit]:
        return [d for c in self.cells for d in c.digits]

    @property
    def confidence(self) -> float:
        return math.prod(c.confidence for c in self.cells)

    def as_dict(self) -> dict:
        return {"text": self.text, "confidence": self.confidence, "box": list(self.box),
                "slant": round(self.slant, 4), "cells": [c.as_dict() for c in self.cells]}


@dataclass(frozen=True)
class Reading:
    lines: list[Line]
    size: tuple[int, int]                     # (width, height) of the image as given
    columns: list[tuple[int, int]] = field(default_factory=list)   # table columns: x spans
    notes: list[str] = field(default_factory=list)                 # e.g. "no ink found"

    @property
    def text(self) -> str:
        """One line of text per line of writing."""
        return "\n".join(line.text for line in self.lines)

    @property
    def digits(self) -> list[Digit]:
        return [d for line in self.lines for d in line.digits]

    @property
    def confidence(self) -> float:
        return math.prod(line.confidence for line in self.lines)

    def table(self) -> list[list[str]]:
        """Rows x columns of cell texts ("" where a row has nothing in a column)."""
        from .layout import table_rows
        return table_rows(self)

    def csv(self) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(self.table())
        return buffer.getvalue()

    def as_dict(self) -> dict:
        return {"text": self.text, "confidence": self.confidence, "size": list(self.size),
                "lines": [line.as_dict() for line in self.lines],
                "table": self.table(), "notes": list(self.notes)}
