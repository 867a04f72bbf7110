"""inference.read.windows: the window hypotheses and the chain over them, checked with an
ideal window classifier (the composed strings' own truth, compose.window_label), so that what
is tested is whether the right reading is among the windows and the chain lets it through."""
from __future__ import annotations

import math

import numpy as np
import pytest

from inference.read import ReadLimits, TooMuchInk, read_digits
from inference.read.compose import compose_string, window_labels
from inference.read.cuts import Piece
from inference.read.reader import segment, span_field
from inference.read.windows import (MIN_WIDTH, OVERLAP, SHARE, best_chain, cell_grid, window_score,
                                    windows)

def _ideal_reading(composed) -> list[int]:
    """The digit indices an ideal window classifier reads, in order (-1: a wrong window won):
    0.99 for a right window, 0.1 for one in between, 0.001 for a wrong one, and 0.3 a window
    so that a digit inside its neighbours' windows (a 1 pushed into a 2) is still read."""
    page, plans = segment(composed.image, windowed=True)
    got = []
    for plan in plans:
        for (pieces, spans), who in zip(plan.cells, window_labels(composed.owners, plan)):
            scores = [0.3 + math.log(0.99 if w >= 0 else 1e-3 if w == -1 else 0.1) for w in who]
            got += [who[i] for i in best_chain(pieces, spans, scores, plan.line.height)]
    return got


@pytest.mark.parametrize("kind,least", [("separated", 20), ("touching", 18), ("overlapping", 19),
                                        ("slanted", 19)])
def test_the_right_windows_are_there_and_chained(mnist_test, kind, least):
    """Cuts cannot separate digits whose strokes run into each other (about 45 % of touching
    strings had every digit among the cut pieces' spans); windows may share columns."""
    rng = np.random.default_rng(31)
    right = 0
    for _ in range(20):
        idx = rng.integers(0, len(mnist_test.labels), int(rng.integers(3, 9)))
        composed = compose_string(list(mnist_test.images[idx]), list(mnist_test.labels[idx]), kind, rng)
        right += _ideal_reading(composed) == list(range(len(idx)))
    assert right >= least


def _blobs(widths: list[int], gaps: list[int], height: int = 20) -> list[Piece]:
    """Solid rectangles `height` tall, left to right, `gaps` px apart (negative: overlapping
    columns, drawn as separate pieces as the cuts would leave them)."""
    pieces, x = [], 3
    for k, w in enumerate(widths):
        pieces.append(Piece(top=1, left=x, ink=np.ones((height, w), np.float32), component=k))
        x += w + (gaps[k] if k < len(gaps) else 0)
    return pieces


def _windows_by_edges(pieces: list[Piece],
                      height: float = 20.0) -> tuple[list, list[tuple[int, int]]]:
    """The cell's windows and each one's (left, right) in px from the cell's first column."""
    spans = windows(pieces, height)
    grid = cell_grid(pieces, height)
    return spans, [(s.left - grid.left, s.left - grid.left + s.width) for s in spans]


def test_the_chain_keeps_its_rules_under_any_scores():
    """Random scores: every chain covers the cell's ink from its first column to its last,
    paper may be skipped but ink never, overlaps stay within the limits."""
    rng = np.random.default_rng(5)
    height = 20.0
    for trial in range(40):
        n = int(rng.integers(1, 5))
        pieces = _blobs([int(v) for v in rng.integers(3, 22, n)], [int(v) for v in rng.integers(-4, 9, n)])
        spans = windows(pieces, height)
        scores = list(rng.normal(0, 2, len(spans)))
        chain = best_chain(pieces, spans, scores, height)
        assert chain, f"trial {trial}: no chain"
        grid = cell_grid(pieces, height)
        ink = (grid.ink > 0).any(axis=0)
        covered = np.zeros_like(ink)
        previous = None
        for i in chain:
            span = spans[i]
            a, b = span.left - grid.left, span.left - grid.left + span.width
            covered[a:b] = True
            if previous is not None:
                pa, pb = previous
                shared = pb - a
                assert shared <= OVERLAP * height
                if shared > 0:    # a window reaching back: never twice over one narrow digit
                    assert shared <= SHARE * max(pb - pa, b - a) + 1e-9
                    assert a - pa >= MIN_WIDTH * height and b - pb >= MIN_WIDTH * height
            previous = (a, b)
        assert covered[ink].all(), f"trial {trial}: ink left unread"


def test_the_chain_prefers_the_higher_total():
    """Two blobs 1 px apart: read as two digits when the two windows score higher together
    than the one window over both, else as one."""
    pieces = _blobs([10, 10], [1])
    spans, edges = _windows_by_edges(pieces)
    left = next(i for i, e in enumerate(edges) if e == (0, 10))
    right = next(i for i, e in enumerate(edges) if e[0] == 10 and e[1] >= 21)
    both = next(i for i, e in enumerate(edges) if e[0] == 0 and e[1] >= 21)
    scores = [-50.0] * len(spans)
    scores[left], scores[right], scores[both] = window_score(0.95), window_score(0.95), window_score(0.5)
    assert best_chain(pieces, spans, scores, 20.0) == [left, right]
    scores[left] = scores[right] = window_score(0.3)
    assert best_chain(pieces, spans, scores, 20.0) == [both]


def test_windows_are_bounded(mnist_test):
    """A page with more windows than ReadLimits.max_windows is refused before any is classified."""
    rng = np.random.default_rng(2)
    idx = rng.integers(0, len(mnist_test.labels), 8)
    composed = compose_string(list(mnist_test.images[idx]), list(mnist_test.labels[idx]), "touching", rng)
    _, plans = segment(composed.image, ReadLimits(max_windows=5000), windowed=True)
    count = sum(len(spans) for plan in plans for _, spans in plan.cells)
    assert 100 < count <= 5000
    with pytest.raises(TooMuchInk, match=f"more than {count - 1} windows"):
        segment(composed.image, ReadLimits(max_windows=count - 1), windowed=True)


def test_windows_need_a_none_class(lenet_classifier, mnist_test):
    """A 10-class model reads by pieces; asking it to read by windows is refused (it has no way
    to say a window is wrong, so every window would read as some digit)."""
    composed = compose_string(list(mnist_test.images[:3]), list(mnist_test.labels[:3]), "separated",
                              np.random.default_rng(0))
    assert read_digits(lenet_classifier, composed.image).digits
    with pytest.raises(ValueError, match="'none' class"):
        read_digits(lenet_classifier, composed.image, by_windows=True)


def test_a_window_that_takes_in_most_of_a_neighbour_is_not_that_digit():
    """compose.window_label, which teaches the window model: a 0 at columns 10-40 and a 1
    pushed into its right side (37-43, H = 20, so the 0's tolerance is 2.4 px). The 0's window
    with a fragment of the 1 is a 0; one 2 px wider holds most of the 1 and is none (else the
    model learns to read 0 + 1 as 0), and so is the window over both, although its edge is
    within twice the tolerance (untaught, were it only a wider 0); a 1 lying inside the 0's own
    columns leaves the 0's window untaught; the 1's window with a slice of the 0 is a 1."""
    from inference.read.compose import window_label
    extents = {0: (10, 40, 300), 1: (37, 43, 60)}
    assert window_label(extents, 10, 40, 20.0, {0: 300, 1: 20}) == 0
    assert window_label(extents, 10, 42, 20.0, {0: 300, 1: 50}) == -1
    assert window_label(extents, 10, 43, 20.0, {0: 300, 1: 60}) == -1
    assert window_label(extents, 10, 43, 20.0, {0: 300, 1: 25}) == -2
    assert window_label(extents, 37, 43, 20.0, {0: 40, 1: 60}) == 1
    assert window_label(extents, 26, 42, 20.0, {0: 150, 1: 60}) == -1        # half a 0 and a 1
    inside = {0: (10, 40, 300), 1: (33, 39, 60)}
    assert window_label(inside, 10, 40, 20.0, {0: 300, 1: 60}) == -2
    assert window_label(inside, 33, 39, 20.0, {0: 50, 1: 60}) == 1


def _bar_and_post(width: int = 28, height: int = 20) -> list[Piece]:
    """One component: a post (a 1) at columns 0-3 joined by a bar along rows 4-6 to a block
    at columns 22-27, as a 1 running into a 7's bar would be."""
    ink = np.zeros((height, width), np.float32)
    ink[:, 0:4] = 1.0
    ink[4:7, 4:22] = 0.6
    ink[2:18, 22:width] = 1.0
    return [Piece(top=2, left=5, ink=ink, component=0)]


def test_a_window_in_context_keeps_its_own_field_and_shows_what_it_cuts():
    """span_field with context (a 3-channel window model): R is exactly the grey field, G the
    cell's ink outside the window's columns drawn by the same transform (so the bar the
    window cuts runs on from R into G on the same rows), B the union; a window holding the
    whole cell has nothing beside it."""
    pieces = _bar_and_post()
    spans = windows(pieces, 20.0)
    grid = cell_grid(pieces, 20.0)
    post = next(s for s in spans if s.left == grid.left and s.width == 4)
    grey = np.asarray(span_field(post))
    rgb = np.asarray(span_field(post, "white", context=True))
    assert rgb.shape == (28, 28, 3) and np.array_equal(rgb[:, :, 0], grey)
    window, beside = 1 - rgb[:, :, 0] / 255, 1 - rgb[:, :, 1] / 255
    assert np.array_equal(rgb[:, :, 2], np.minimum(rgb[:, :, 0], rgb[:, :, 1]))
    cols = np.flatnonzero((window > 0.2).any(axis=0))
    bar_rows = np.flatnonzero(beside[:, cols[-1] + 2] > 0.2)   # the bar, just right of the post
    top = np.flatnonzero((window > 0.2).any(axis=1))[0]          # the post's first row
    assert top + 5 in bar_rows and set(bar_rows) <= set(range(top + 3, top + 8))   # rows 4-6
    assert not (beside[:, :cols[0]] > 0.05).any()               # nothing left of the cell's ink
    assert (beside[:, cols[-1] + 1:] > 0.2).sum() > 20
    whole = max((s for s in spans if s.left == grid.left), key=lambda s: s.width)
    assert not (np.asarray(span_field(whole, "white", context=True))[:, :, 1] < 250).any()


def test_one_slanted_stroke_is_not_read_twice():
    """A stroke alone between paper, 10 px wide: its left and right three fifths each read as a
    confident 1, and the window over all of it as a surer 1. Read once; read twice when the
    whole run's window is less sure or reads something else (two true 1s sharing columns)."""
    pieces = _blobs([10], [])
    spans, edges = _windows_by_edges(pieces)
    left, right, whole = edges.index((0, 6)), edges.index((4, 10)), edges.index((0, 10))
    scores = [-50.0] * len(spans)
    reads = [7] * len(spans)
    scores[left], scores[right] = window_score(0.96), window_score(0.94)
    scores[whole] = window_score(0.99)
    reads[left] = reads[right] = reads[whole] = 1
    assert best_chain(pieces, spans, scores, 20.0) == [left, right]     # the rule off: twice
    assert best_chain(pieces, spans, scores, 20.0, reads) == [whole]
    reads[whole] = 10                                                    # the run reads "none"
    assert best_chain(pieces, spans, scores, 20.0, reads) == [left, right]
    reads[whole], scores[whole] = 1, window_score(0.9)                    # ... or less surely
    assert best_chain(pieces, spans, scores, 20.0, reads) == [left, right]


def test_the_rule_against_reading_twice_needs_paper_on_both_sides():
    """The same two windows of a stroke that touches the next digit are both kept: the run
    goes on into the neighbour, as where a 1 is drawn into a 0's side."""
    pieces = _blobs([10, 10], [0])
    spans, edges = _windows_by_edges(pieces)
    left, right, whole, nxt = (edges.index(e) for e in [(0, 6), (4, 10), (0, 10), (10, 20)])
    scores = [-50.0] * len(spans)
    reads = [1] * len(spans)
    scores[left], scores[right], scores[whole], scores[nxt] = (
        window_score(0.96), window_score(0.94), window_score(0.99), window_score(0.99))
    assert best_chain(pieces, spans, scores, 20.0, reads) == [left, right, nxt]
