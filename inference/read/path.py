"""Choosing the digits: which runs of consecutive pieces are digits, by dynamic programming.

Pieces of a cell are sorted left to right (by their centres). A *span* i..j-1 (at most
MAX_SPAN pieces) is a digit hypothesis if it is plausible in shape (legal_spans): not wider
than MAX_WIDTH x H, and no empty gap inside it wider than GAP x H unless everything on one
side of the gap is a fragment (shorter than FRAGMENT x H: a 5's detached bar, a broken
stroke); never a gap over MAX_GAP x H. The classifier scores each span; the reading is the
path from piece 0 to piece n that maximises

    sum over its spans of  log p_top(span) + BONUS - TALL_W max(0, TALL - h/H)
                           - WIDE_W max(0, w/H - WIDE) - CROSS_W (strokes its left cut crossed)
                           - SHAPE_W max(0, |w/h - mean_c| / sd_c - 1)^2
                           - PARTS_W (tall components in the span - 1)
    + SKIP for each fragment left out (a speck)

where c is the span's top class and mean_c, sd_c the ink box's width/height of class c
measured on MNIST's training digits (SHAPES): a third of a 0 read as a confident 1 is fine
in shape, but half a 4 read as a 7 is too narrow for a 7.
p_top is the network's top probability softened by TEMPERATURE (softmax(log p / T)). The
constants were chosen on composed strings from MNIST test digits with a seed the benchmark
does not use. The log-probabilities alone favour fewer, larger spans (fewer terms <= 0); BONUS per digit
balances that, the height term stops a fragment blown up to 20 x 20 from reading as a
confident digit, the width term stops two digits from reading as one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .cuts import Piece

MAX_SPAN = 5
MAX_WIDTH = 1.6
GAP, MAX_GAP = 0.12, 0.4
FRAGMENT = 0.5
BONUS = 1.0
TALL, TALL_W = 0.9, 8.0
WIDE, WIDE_W = 1.15, 4.0
TALL_PART, PARTS_W = 0.6, 2.0
TEMPERATURE = 4.0
CROSS_W = 0.7         # per stroke a chosen cut goes through
SHAPE_W = 0.5
# width / height of the ink box per class on MNIST's 60,000 training digits: mean, sd
SHAPES = {"0": (0.92, 0.18), "1": (0.43, 0.20), "2": (0.95, 0.22), "3": (0.80, 0.17),
          "4": (0.80, 0.17), "5": (0.96, 0.26), "6": (0.73, 0.16), "7": (0.78, 0.17),
          "8": (0.77, 0.17), "9": (0.68, 0.14)}
SKIP = -1.5
SKIPPABLE = 0.35      # a piece shorter than this x H may be left out as a speck


@dataclass(frozen=True)
class Span:
    start: int
    stop: int
    top: int
    left: int
    ink: np.ndarray       # the union of the pieces' ink in the span's box
    parts: int = 1        # components with a piece at least TALL_PART x H tall in the span
    around: np.ndarray | None = field(default=None, repr=False)   # a window's cell ink ...
    around_at: tuple[int, int] = (0, 0)   # ... and its top, left (windows.py: context)

    @property
    def height(self) -> int:
        return self.ink.shape[0]

    @property
    def width(self) -> int:
        return self.ink.shape[1]


def _plausible(group: list[Piece], height: float) -> bool:
    if len(group) == 1:
        return True        # every piece can be read alone (the shape terms still count)
    left, right = min(p.left for p in group), max(p.right for p in group)
    if right - left > MAX_WIDTH * height:
        return False
    ordered = sorted(group, key=lambda p: p.left)
    reach = ordered[0].right
    for k, p in enumerate(ordered[1:], 1):
        gap = p.left - reach
        if gap > MAX_GAP * height:
            return False
        if gap > GAP * height:
            before = max(q.bottom for q in ordered[:k]) - min(q.top for q in ordered[:k])
            after = max(q.bottom for q in ordered[k:]) - min(q.top for q in ordered[k:])
            if min(before, after) >= FRAGMENT * height:
                return False
        reach = max(reach, p.right)
    return True


def legal_spans(pieces: list[Piece], height: float) -> list[Span]:
    spans = []
    for i in range(len(pieces)):
        for j in range(i + 1, min(len(pieces), i + MAX_SPAN) + 1):
            group = pieces[i:j]
            if not _plausible(group, height):
                if j > i + 1 and max(p.right for p in group) - min(p.left for p in group) \
                        > MAX_WIDTH * height:
                    break
                continue
            top, left = min(p.top for p in group), min(p.left for p in group)
            ink = np.zeros((max(p.bottom for p in group) - top,
                            max(p.right for p in group) - left), np.float32)
            for p in group:
                view = ink[p.top - top:p.bottom - top, p.left - left:p.right - left]
                np.maximum(view, p.ink, out=view)
            parts = len({p.component for p in group if p.ink.shape[0] >= TALL_PART * height})
            spans.append(Span(i, j, top, left, ink, max(1, parts)))
    return spans


def tempered(probabilities: np.ndarray, temperature: float = None) -> np.ndarray:
    """softmax(log p / T): T > 1 softens an over-confident network's probabilities."""
    t = TEMPERATURE if temperature is None else temperature
    logits = np.log(np.maximum(probabilities, 1e-12)) / t
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def span_score(span: Span, p_top: float, height: float, label: str = "",
               crossings: int = 0) -> float:
    score = (math.log(max(p_top, 1e-9)) + BONUS - PARTS_W * (span.parts - 1)
             - TALL_W * max(0.0, TALL - span.height / height)
             - WIDE_W * max(0.0, span.width / height - WIDE)
             - CROSS_W * crossings)
    if label in SHAPES:
        mean, sd = SHAPES[label]
        z = abs(span.width / max(span.height, 1) - mean) / sd
        score -= SHAPE_W * max(0.0, z - 1.0) ** 2
    return score


def best_path(pieces: list[Piece], spans: list[Span], scores: list[float],
              height: float) -> list[int]:
    """Indices into `spans` of the best reading (module docstring); [] when nothing fits."""
    n = len(pieces)
    best = [-math.inf] * (n + 1)
    back: list[tuple[int, int] | None] = [None] * (n + 1)   # (previous end, span index or -1)
    best[0] = 0.0
    ending: dict[int, list[int]] = {}
    for k, s in enumerate(spans):
        ending.setdefault(s.stop, []).append(k)
    for j in range(1, n + 1):
        if pieces[j - 1].ink.shape[0] < SKIPPABLE * height and best[j - 1] + SKIP > best[j]:
            best[j], back[j] = best[j - 1] + SKIP, (j - 1, -1)
        for k in ending.get(j, []):
            value = best[spans[k].start] + scores[k]
            if value > best[j]:
                best[j], back[j] = value, (spans[k].start, k)
    if best[n] == -math.inf:
        return []
    chosen, j = [], n
    while j > 0:
        previous, k = back[j]
        if k >= 0:
            chosen.append(k)
        j = previous
    return chosen[::-1]
