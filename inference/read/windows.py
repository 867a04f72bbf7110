"""Reading a cell by windows: for a model that knows "not a digit" (a `none` class).

Cuts (cuts.py) partition the ink, so two digits whose strokes run into each other (a 1 drawn
on a 0's left side, a 7's bar over the next digit) have no right answer among the pieces: the
shared stroke belongs to both. Windows do not partition. A window is every pixel of the cell's
ink (slant removed) between two columns a < b on a grid of STEP x H (H: the line's digit
height), MIN_WIDTH x H <= b - a <= MAX_WIDTH x H, with ink in its first and last grid step
(a looser window is the same window with paper around it). Each window is normalized as a
drawing and classified; a model trained on windows of composed strings
(scripts/train_string_model.py) answers a digit for a window that holds one digit from edge
to edge, whatever fragments of its neighbours come with it, and `none` for anything else
(half a digit, two digits, a digit and a half).

The reading of a cell is the chain of windows w_1..w_n, left to right, that maximises

    sum_i  log p_digit(w_i) + BONUS

where p_digit is the window's best digit probability out of all classes (so P(none) counts
against it), under the constraints: w_1 starts at the cell's first ink column and w_n ends
past its last; each next window starts no later than the previous one's end unless only
paper lies between. It may start before that end (digits whose columns overlap), by at most
OVERLAP x H and SHARE x the wider of the two windows, and then both its start and its end
must move at least MIN_WIDTH x H past the previous window's (else a narrow 1 would be read
twice, from two windows a grid step apart). Nor may two overlapping windows both read the
same digit d when together they span a run of ink with paper on both sides whose own window
reads d at least as surely as the second: a slanted 1 is 0.5 H wide, and its left and right
three fifths each look like a 1 (training leaves such windows untaught: their edges lie
between the tolerances), so two confident 1s outscored the one window over the whole stroke
by a BONUS; two true 1s sharing columns make the run's window read "none". On 800 composed
strings of each of three tuning seeds this removed every such double read (separated +1,
slanted +2) and changed nothing else. Dynamic programming over (end, start) grid
positions finds the best chain exactly. BONUS (a small reward per digit) was chosen on
composed strings of a seed the benchmark does not use: 0 loses the digits pushed inside
their neighbours (a 1 in a 0's side), 0.3 starts reading strokes as extra 1s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cuts import Piece
from .path import Span

STEP = 0.1             # x H: the grid of window edges (2 px for a 20-px digit)
MIN_WIDTH = 0.14       # x H: a narrow 1
MAX_WIDTH = 1.5        # x H: a wide 2 or 5 with its neighbours' fragments
OVERLAP = 0.45         # x H: how far a window may reach back into the previous one
SHARE = 0.4            # x the wider window: the most two windows may share
BONUS = 0.15           # per digit (module docstring)


@dataclass(frozen=True)
class Grid:
    """A cell's ink on the window grid: edges x_k = left + k * step (line coordinates)."""
    top: int
    left: int
    ink: np.ndarray          # the cell's ink, rows top.., columns left.. (K * step wide)
    step: int

    @property
    def edges(self) -> int:
        return self.ink.shape[1] // self.step

    def column_ink(self) -> np.ndarray:
        """Per grid step: whether it holds ink."""
        cols = (self.ink > 0).any(axis=0)
        return cols.reshape(self.edges, self.step).any(axis=1)


def cell_grid(pieces: list[Piece], height: float) -> Grid:
    step = max(1, int(round(STEP * height)))
    top, left = min(p.top for p in pieces), min(p.left for p in pieces)
    bottom, right = max(p.bottom for p in pieces), max(p.right for p in pieces)
    edges = -(-(right - left) // step)
    ink = np.zeros((bottom - top, edges * step), np.float32)
    for p in pieces:
        view = ink[p.top - top:p.bottom - top, p.left - left:p.right - left]
        np.maximum(view, p.ink, out=view)
    return Grid(top, left, ink, step)


def windows(pieces: list[Piece], height: float) -> list[Span]:
    """The cell's candidate windows (module docstring) as Spans: start and stop are grid edges."""
    grid = cell_grid(pieces, height)
    has = grid.column_ink()
    lo = max(1, int(math.ceil(MIN_WIDTH * height / grid.step)))
    hi = max(lo, int(MAX_WIDTH * height / grid.step))
    out = []
    for k in np.flatnonzero(has):
        for m in range(k + lo, min(grid.edges, k + hi) + 1):
            if not has[m - 1]:
                continue
            block = grid.ink[:, k * grid.step:m * grid.step]
            rows = np.flatnonzero((block > 0).any(axis=1))
            out.append(Span(int(k), int(m), grid.top + int(rows[0]), grid.left + int(k) * grid.step,
                            block[rows[0]:rows[-1] + 1], around=grid.ink,
                            around_at=(grid.top, grid.left)))
    return out


def best_chain(pieces: list[Piece], spans: list[Span], scores: list[float],
               height: float, reads: list[int] | None = None) -> list[int]:
    """Indices into `spans` (windows) of the best reading (module docstring); [] if none fits.
    `reads`: the digit class each window reads, for the rule against reading one digit twice
    (without it, that rule is off)."""
    if not spans:
        return []
    grid = cell_grid(pieces, height)
    has = grid.column_ink()
    edges = grid.edges
    twice = _DoubleRead(spans, scores, reads, has) if reads is not None else None
    overlap = int(OVERLAP * height / grid.step)
    lo = max(1, int(math.ceil(MIN_WIDTH * height / grid.step)))
    # reach[k]: the first edge j <= k with only paper in steps j..k-1
    reach = np.arange(edges + 1)
    for k in range(1, edges + 1):
        if not has[k - 1]:
            reach[k] = reach[k - 1]
    best = np.full((edges + 1, edges + 1), -np.inf)     # [end, start]
    back: dict[tuple[int, int], tuple[int, int, int]] = {}
    for i in sorted(range(len(spans)), key=lambda i: spans[i].stop):
        k, m = spans[i].start, spans[i].stop
        if k == 0:
            prev, where = 0.0, None
        else:
            j0, j1 = reach[k], min(k + overlap, m - 1)
            ends = np.arange(j0, j1 + 1)[:, None]
            over = ends - k                 # grid steps shared with the previous window
            starts = np.arange(k)[None, :]
            allowed = (over <= 0) | ((over <= SHARE * np.maximum(ends - starts, m - k))
                                     & (k - starts >= lo) & (m - ends >= lo))
            if twice is not None:
                allowed &= ~twice.after(i, j0, j1, over > 0)
            block = np.where(allowed, best[j0:j1 + 1, :k], -np.inf)
            if block.size == 0 or not np.isfinite(block.max()):
                continue
            flat = int(block.argmax())
            prev = float(block.flat[flat])
            where = (j0 + flat // k, flat % k)
        value = prev + scores[i]
        if value > best[m, k]:
            best[m, k] = value
            back[(m, k)] = (i, *(where or (-1, -1)))
    last = reach[edges]                     # ends from here on leave only paper after them
    tail = best[last:, :]
    if not np.isfinite(tail.max()):
        return []
    flat = int(tail.argmax())
    state = (last + flat // (edges + 1), flat % (edges + 1))
    chosen = []
    while state[0] >= 0:
        i, j, s = back[state]
        chosen.append(i)
        state = (j, s)
    return chosen[::-1]


class _DoubleRead:
    """best_chain's rule against one digit read from two overlapping windows (module docstring),
    as (end, start) masks of the previous windows a window may not follow."""

    def __init__(self, spans: list[Span], scores: list[float], reads: list[int], has: np.ndarray):
        size = len(has) + 1
        self.spans, self.scores, self.reads = spans, scores, reads
        self.run_read = np.full((size, size), -1)      # [start, stop]: what that window reads
        #                                                (one window per start and stop)
        self.run_score = np.full((size, size), -np.inf)
        for i, span in enumerate(spans):
            self.run_read[span.start, span.stop] = reads[i]
            self.run_score[span.start, span.stop] = scores[i]
        self.paper_before = np.concatenate([[True], ~has])      # [k]: no ink in step k - 1
        self.paper_after = np.concatenate([~has, [True]])       # [m]: no ink in step m

    def after(self, i: int, j0: int, j1: int, overlapping: np.ndarray) -> np.ndarray:
        """[end j0..j1, start 0..k-1]: previous windows that window i may not follow."""
        k, m, d = self.spans[i].start, self.spans[i].stop, self.reads[i]
        if not self.paper_after[m] or not overlapping.any():
            return np.zeros_like(overlapping)
        run = (self.paper_before[:k] & (self.run_read[:k, m] == d)
               & (self.run_score[:k, m] >= self.scores[i]))
        previous_read = self.run_read[:k, j0:j1 + 1].T
        return overlapping & run[None, :] & (previous_read == d)


def window_score(p_digit: float) -> float:
    return math.log(max(p_digit, 1e-9)) + BONUS
