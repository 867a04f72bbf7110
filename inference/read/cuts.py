"""Over-segmentation: candidate cuts through wide components, and the pieces between them.

A component wider than WIDE x H (H: the line's digit height) may hold touching digits. Its
candidate cut columns are where, after the slant is taken out,
  - the column ink count n(x) (smoothed 1-2-1) has a local minimum (a thin joint),
  - the upper contour t(x) (first ink row) has a local maximum (a valley from above),
  - the lower contour b(x) (last ink row) has a local minimum (a valley from below),
at least EDGE x H from either side, with at most THIN x the component's 75th-percentile
column count (a joint is thinner than the digits it joins), thinned to one per SPACING x H by
the lowest n(x). A component at least PAIR x H wide (room for two digits) also gets the local
minima of its drop-fall cost (path_costs: the least ink any top-to-bottom path ending at each
column crosses), up to JOINTS or one per JOINT_SPACING x H of its width: where touching
digits meet, often with no thin column at all.
Each column becomes a cut *path*: from the top row to the bottom, one pixel a row, moving at
most JUMP columns a row within REACH x H of the column, crossing the least ink (cost per
pixel: its ink + 0.05 per column away from the candidate, + STEP_COST per column sideways;
dynamic programming row by row, as drop-fall methods do greedily). Paths are made not to
cross, and the pixels between two paths form a piece; a piece remembers how many strokes the
cut on its left crossed (a joint of touching digits is usually one stroke, a cut through a 0
two). Choosing which pieces make digits is path.py's job.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .components import Component, components

WIDE = 0.35
EDGE = 0.12
SPACING = 0.2
REACH = 0.2
PAIR = 1.0          # a component at least this x H wide may be two digits: joint_columns
JOINTS = 3          # at most this many joint candidates per component, or one per
JOINT_SPACING = 0.5  # ... this x H of its width
STEP_COST = 0.1     # a cut path's price for one column sideways
JUMP = 2            # a cut path moves at most this many columns a row
THIN = 0.75         # a candidate column holds at most this x the 75th percentile's ink
CROSS_INK = 0.3      # a path pixel with more ink than this crosses a stroke


@dataclass(frozen=True)
class Piece:
    top: int
    left: int
    ink: np.ndarray          # h x w float32, the piece's own ink (0 elsewhere in its box)
    crossings: int = 0       # strokes the cut on its left went through (0: a component's edge)
    component: int = 0       # which component of the line it came from

    @property
    def bottom(self) -> int:
        return self.top + self.ink.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.ink.shape[1]

    @property
    def centre(self) -> float:
        return self.left + self.ink.shape[1] / 2


def _local_extrema(values: np.ndarray, minima: bool) -> np.ndarray:
    v = values if minima else -values
    padded = np.concatenate([[np.inf], v, [np.inf]])
    return np.flatnonzero((padded[1:-1] <= padded[:-2]) & (padded[1:-1] <= padded[2:]))


def candidate_columns(mask: np.ndarray, height: float) -> list[int]:
    """Candidate cut columns of one component (module docstring), left to right."""
    h, w = mask.shape
    if w < WIDE * height:
        return []
    edge = max(1, int(round(EDGE * height)))
    counts = mask.sum(axis=0).astype(np.float64)
    smooth = np.convolve(np.pad(counts, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    has = mask.any(axis=0)
    upper = np.where(has, mask.argmax(axis=0), h).astype(np.float64)
    lower = np.where(has, h - 1 - mask[::-1].argmax(axis=0), -1).astype(np.float64)
    found = set(_local_extrema(smooth, True)) | set(_local_extrema(upper, False)) \
        | set(_local_extrema(lower, True))
    thin = THIN * np.percentile(smooth, 75)
    found = [int(x) for x in found if edge <= x <= w - edge and smooth[x] <= thin]
    spacing = max(2, int(round(SPACING * height)))
    chosen: list[int] = []
    for x in sorted(found, key=lambda x: (smooth[x], x)):
        if all(abs(x - c) >= spacing for c in chosen):
            chosen.append(x)
    limit = max(1, int(w / (SPACING * height)))
    return sorted(chosen[:limit])


def path_costs(ink: np.ndarray) -> np.ndarray:
    """For every bottom column x: the least ink a top-to-bottom path ending at x crosses
    (_descend's moves): a drop-fall over the whole component at once, whose local minima are
    the joints of touching digits."""
    return _descend(ink.astype(np.float64))[0]


def joint_columns(ink: np.ndarray, height: float) -> list[int]:
    """Extra candidates in a component wide enough for two digits (>= PAIR x H): the local
    minima of path_costs, lowest first, at least EDGE x H from either side."""
    h, w = ink.shape
    if w < PAIR * height:
        return []
    edge = max(1, int(round(EDGE * height)))
    cost = path_costs(ink)
    cost = cost + 1e-3 * np.abs(np.arange(w) - (w - 1) / 2)     # ties: nearer the middle
    found = [int(x) for x in _local_extrema(cost, True) if edge <= x <= w - 1 - edge]
    return sorted(found, key=lambda x: cost[x])[:max(JOINTS, int(w / (JOINT_SPACING * height)))]


def crossings(values: np.ndarray, path: np.ndarray) -> int:
    """How many strokes `path` cuts: runs of rows where the pixel on the path is ink."""
    on = values[np.arange(len(path)), np.clip(path, 0, values.shape[1] - 1)] > CROSS_INK
    on &= path < values.shape[1]
    return int(np.count_nonzero(np.diff(np.concatenate([[0], on.astype(np.int8)])) == 1))


def _descend(local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-by-row dynamic programming of a top-to-bottom path through `local` costs that moves
    at most JUMP columns a row for STEP_COST a column: (cost per bottom column, moves)."""
    h, w = local.shape
    cost = local[0].copy()
    back = np.zeros((h, w), np.int8)
    steps = np.arange(-JUMP, JUMP + 1)
    for y in range(1, h):
        stacked = np.full((len(steps), w), np.inf)
        for k, d in enumerate(steps):          # arriving at x from x + d
            if d < 0:
                stacked[k, -d:] = cost[:d]
            elif d > 0:
                stacked[k, :-d] = cost[d:]
            else:
                stacked[k] = cost
            stacked[k] += STEP_COST * abs(d)
        move = stacked.argmin(axis=0)
        cost = stacked[move, np.arange(w)] + local[y]
        back[y] = steps[move]
    return cost, back


def cut_path(ink: np.ndarray, column: int, height: float) -> np.ndarray:
    """The least-ink top-to-bottom path near `column`: x of the boundary in each row."""
    h, w = ink.shape
    reach = max(2, int(round(REACH * height)))
    lo, hi = max(0, column - reach), min(w, column + reach + 1)
    xs = np.arange(lo, hi)
    local = ink[:, lo:hi].astype(np.float64) + 0.05 * np.abs(xs - column)
    cost, back = _descend(local)
    path = np.empty(h, np.int64)
    x = int(cost.argmin())
    for y in range(h - 1, -1, -1):
        path[y] = x + lo
        x += back[y, x] if y else 0
    return path


def pieces(ink: np.ndarray, height: float) -> list[Piece]:
    """The line's ink (slant removed) as pieces: components, wide ones cut (module docstring)."""
    out: list[Piece] = []
    for number, comp in enumerate(components(ink > 0)):
        values = np.where(comp.mask, ink[comp.top:comp.bottom, comp.left:comp.right], 0)
        columns = candidate_columns(comp.mask, height)
        spacing = max(2, int(round(SPACING * height)) // 2)
        for x in joint_columns(values, height):
            if all(abs(x - c) >= spacing for c in columns):
                columns.append(x)
        paths = [cut_path(values, c, height) for c in sorted(columns)]
        paths.sort(key=lambda p: p.mean())
        bounds = [np.zeros(comp.height, np.int64)]
        for p in paths:
            bounds.append(np.maximum(p, bounds[-1]))
        bounds.append(np.full(comp.height, comp.width, np.int64))
        cols = np.arange(comp.width)
        crossed = 0
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            crossed = max(crossed, crossings(values, lo) if k else 0)
            inside = comp.mask & (cols >= lo[:, None]) & (cols < hi[:, None])
            if inside.sum() < 2:
                continue     # an empty sliver: its cut's crossings pass to the next piece
            rows, colsx = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, colsx[0], colsx[-1] + 1
            piece = np.where(inside[r0:r1, c0:c1], values[r0:r1, c0:c1], 0).astype(np.float32)
            out.append(Piece(comp.top + int(r0), comp.left + int(c0), piece, crossed, number))
            crossed = 0
    out.sort(key=lambda p: (p.centre, p.top))
    return out


__all__ = ["Piece", "pieces", "candidate_columns", "cut_path", "Component"]
