"""Lines of writing: components grouped by vertical overlap, then the line's slant taken out.

Grouping: components sorted by height (tallest first) seed lines; each joins the line whose
vertical span it overlaps most, if it overlaps by at least half its own height (a 5's
detached bar or a speck sits inside its digit's span); else, if it is short (under SHORT x
the line's span) and lies within NEAR x the span above or below it, over the line's columns,
it joins the nearest such line without widening it (a 6's stem lifted above its loop, a dot
over a 2: alone they would read as a line of their own); else it starts a line. Lines are then
ordered top to bottom, and a line's digit height H is the median height of its components
at least half as tall as its tallest: the yardstick for every threshold that follows.

Slant: the shear x' = x - s (y - y_mid) that makes strokes most vertical, i.e. maximises
sum_x n(x)^2 over the columns' ink counts n(x) (upright strokes pile ink into few columns),
searched over s = tan(angle) for angles -30..30 degrees in 2.5-degree steps, and kept only if
it beats s = 0 by SLANT_GAIN (15 %): upright touching digits often score a little better
sheared, and a needless shear moves their joints away from the vertical cuts. The line's ink
is then shifted row by row (a whole-pixel shear) so that cuts can be vertical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .components import Component

SLANT_ANGLES = np.radians(np.arange(-30.0, 30.01, 2.5))
SLANT_GAIN = 0.15    # a slant must pile up this much more ink than upright to be taken out
SHORT, NEAR = 0.5, 0.25   # x a line's span: a short component this close joins the line


@dataclass(frozen=True)
class LineInk:
    components: list[Component]   # in page working coordinates
    top: int
    bottom: int
    height: float                 # H: the typical digit height of the line


@dataclass
class _Span:
    """A line while it is being grouped: its vertical span, members and columns."""
    top: int
    bottom: int
    members: list[Component]
    left: int
    right: int

    def join(self, c: Component) -> None:
        self.members.append(c)
        self.left, self.right = min(self.left, c.left), max(self.right, c.right)


def group_lines(parts: list[Component]) -> list[LineInk]:
    spans: list[_Span] = []
    for c in sorted(parts, key=lambda c: -c.height):
        best, best_overlap = None, 0
        for span in spans:
            overlap = min(span.bottom, c.bottom) - max(span.top, c.top)
            if overlap > best_overlap:
                best, best_overlap = span, overlap
        if best is not None and best_overlap >= 0.5 * c.height:
            best.join(c)
            if best_overlap >= 0.5 * (best.bottom - best.top):   # a digit of the line: widen it
                best.top, best.bottom = min(best.top, c.top), max(best.bottom, c.bottom)
        elif (near := _nearby_line(c, spans)) is not None:
            near.join(c)
        else:
            spans.append(_Span(c.top, c.bottom, [c], c.left, c.right))
    lines = []
    for span in sorted(spans, key=lambda s: s.top):
        members = span.members
        tallest = max(c.height for c in members)
        height = float(np.median([c.height for c in members if c.height >= 0.5 * tallest]))
        lines.append(LineInk(members, min(c.top for c in members),
                             max(c.bottom for c in members), height))
    return lines


def _nearby_line(c: Component, spans: list[_Span]) -> _Span | None:
    """The nearest line span that `c` may join as a short stroke above or below it (SHORT, NEAR)."""
    best, best_gap = None, math.inf
    for span in spans:
        size = span.bottom - span.top
        gap = max(span.top - c.bottom, c.top - span.bottom)      # < 0: they overlap a little
        over = span.left < c.right and c.left < span.right
        if c.height < SHORT * size and gap <= NEAR * size and over and gap < best_gap:
            best, best_gap = span, gap
    return best


def line_image(line: LineInk, amount: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The line's own ink (other lines' pixels left out): an array and its (top, left)."""
    left = min(c.left for c in line.components)
    right = max(c.right for c in line.components)
    own = np.zeros((line.bottom - line.top, right - left), bool)
    for c in line.components:
        own[c.top - line.top:c.bottom - line.top, c.left - left:c.right - left] |= c.mask
    return np.where(own, amount[line.top:line.bottom, left:right], 0).astype(np.float32), line.top, left


def estimate_slant(ink: np.ndarray) -> float:
    """The shear s (dx per row, positive: the tops lean right) making strokes most vertical."""
    ys, xs = np.nonzero(ink > 0)
    if len(ys) < 8:
        return 0.0
    weights = ink[ys, xs]
    mid = (ink.shape[0] - 1) / 2
    best, best_s, upright = -1.0, 0.0, 0.0
    for angle in SLANT_ANGLES:
        s = math.tan(angle)
        cols = np.round(xs + s * (ys - mid)).astype(np.int64)   # sheared left for s > 0
        cols -= cols.min()
        score = float((np.bincount(cols, weights=weights) ** 2).sum())
        upright = score if angle == 0 else upright
        if score > best * (1 + 1e-4) or (score >= best * (1 - 1e-4) and abs(s) < abs(best_s)):
            best, best_s = max(best, score), s
    return best_s if best > upright * (1 + SLANT_GAIN) else 0.0


def shear_rows(ink: np.ndarray, slant: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row shifted by round(slant * (y - y_mid)) (cols: x' = x + shift(y) - min shift)."""
    mid = (ink.shape[0] - 1) / 2
    shifts = np.round(slant * (np.arange(ink.shape[0]) - mid)).astype(np.int64)
    shifts -= shifts.min()
    out = np.zeros((ink.shape[0], ink.shape[1] + int(shifts.max())), ink.dtype)
    for y, shift in enumerate(shifts):
        out[y, shift:shift + ink.shape[1]] = ink[y]
    return out, shifts
