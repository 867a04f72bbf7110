"""Reading the digits of an image with a single-digit classifier: the steps in order.

    page (page.py) -> components (components.py), specks dropped -> lines (lines.py), each
    deslanted -> pieces, wide components cut (cuts.py) -> cells (layout.py) -> digit spans
    (path.py; or windows, windows.py, for a model with a "none" class), all classified in one
    batch by the Classifier (its own drawing normalization: ink box -> 20 x 20 -> centre of
    mass in 28 x 28) -> the best path (or chain of windows) per cell -> Reading.

Bounded work: the working image is at most 2048 px a side (page.py), and a page with more
than `max_pieces` pieces (about `max_pieces / 2` digits, since wide components are cut) or
`max_runs` runs of ink is refused with a TooMuchInk error before anything is classified;
the classifier then sees at most about MAX_SPAN x `max_pieces` candidates, or, reading by
windows, at most `max_windows`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..classifier import Classifier, top_k
from ..drawing import context_field, field_bytes, ink_field
from ..errors import BadImageError
from ..images import ImageInput
from ..metadata import NONE_LABEL
from .components import components
from .cuts import pieces
from .layout import columns_of, split_cells
from .lines import estimate_slant, group_lines, line_image, shear_rows
from .page import DIGIT_HEIGHT_MAX, DIGIT_HEIGHT_TARGET, load_page
from .path import Span, best_path, legal_spans, span_score, tempered
from .result import Box, Cell, Digit, Line, Reading, union_box
from .windows import best_chain, window_score, windows

NONE_W = 1.0           # and the weight of log(1 - P(none)), untempered, in a span's score
SPECK_AREA = 0.01     # x H^2: smaller components ...
SPECK_SIDE = 0.25     # ... whose longer side is also below this x H are specks


class TooMuchInk(BadImageError):
    """More ink than the reader's limits: the server answers 413."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message, path, status=413)


@dataclass(frozen=True)
class ReadLimits:
    max_pieces: int = 2000     # about 1,000 digits
    max_windows: int = 60_000  # reading by windows: about 500 digits (about 120 windows each)
    max_runs: int = 400_000    # horizontal runs of ink on the working image
    top: int = 3               # predictions kept per digit


def _page_components(page, limits: ReadLimits, where: str | None):
    try:
        found = components(page.mask, limits.max_runs)
    except OverflowError as exc:
        raise TooMuchInk(f"the image has {exc.args[0]} runs of ink, more than the reader's limit "
                         f"of {limits.max_runs}; crop it to the digits or scan it with less "
                         "noise", where) from None
    return [c for c in found if c.area >= 3]


def _typical_height(parts) -> float:
    if not parts:
        return 0.0
    tallest = max(c.height for c in parts)
    return float(np.median([c.height for c in parts if c.height >= 0.5 * tallest]))


def digit_classes(labels: list[str], columns: int) -> tuple[np.ndarray, int | None]:
    """The model's digit columns and its "none" column (NONE_LABEL in labels.txt), if any.

    A model with the extra class (scripts/train_string_model.py) says how likely a span or
    window is wrong. By windows, a window scores its best *digit* probability out of all
    classes (windows.py); by pieces, a span scores that (tempered, as path.py says) plus
    NONE_W log(1 - P(none)) untempered, so a confident wrong merge no longer wins (NONE_W = 1
    was chosen on composed strings of another seed: touching 39 -> 45 % exact, the other
    kinds unchanged). "none" is never a digit of the reading."""
    none = labels.index(NONE_LABEL) if NONE_LABEL in labels[:columns] else None
    return np.array([i for i in range(columns) if i != none], np.int64), none


def span_field(span: Span, background: str = "white", context: bool = False) -> Image.Image:
    """span_field_bytes as an image (L, or RGB with `context`)."""
    return Image.fromarray(span_field_bytes(span, background, context))


def span_field_bytes(span: Span, background: str = "white", context: bool = False) -> np.ndarray:
    """The span as the classifier's 28 x 28 drawing: its ink, 8-bit as a drawing would be,
    scaled to its strongest pixel, placed by drawing.ink_field (normalize_drawing's rule).

    With `context` (a window model with 3 input channels: ModelInfo.sees_context), an RGB
    field (drawing.context_field): R holds the window's ink as above, G the ink of the window's
    cell outside the window's columns, drawn by the same transform (what the window cuts
    through or leaves beside it), B all of that ink. A window alone cannot tell "a 1 with a
    sliver of the 0 beside it" from "the left half of a 0"; with its surroundings it can."""
    amount = np.round(np.clip(span.ink, 0, 1) * 255) / 255
    peak = amount.max()
    if peak <= 0.05:
        amount, peak = np.zeros_like(amount), 1.0
    window, placement = ink_field(amount / peak)
    if not context:
        return field_bytes(window, background)
    beside = np.zeros_like(window)
    if placement is not None and span.around is not None:
        around = np.round(np.clip(span.around, 0, 1) * 255).astype(np.float32) / (255 * peak)
        col = span.left - span.around_at[1]
        around[:, col:col + span.width] = 0
        matrix = placement.affine(span.around_at[0] - span.top, -col)
        beside = np.clip(cv2.warpAffine(around, matrix, window.shape[::-1], flags=cv2.INTER_LINEAR),
                         0, 1)
    return field_bytes(context_field(window, beside), background)


@dataclass(frozen=True)
class LinePlan:
    """One line cut into pieces, its cells and their digit hypotheses (spans), before scoring."""
    line: object                  # lines.LineInk
    slant: float
    shifts: np.ndarray            # per row of the line: the whole-pixel shear taken out
    top: int
    left: int
    cells: list                   # [(cell pieces, legal spans)]


def segment(image: ImageInput, limits: ReadLimits = ReadLimits(),
            windowed: bool = False) -> tuple[object, list[LinePlan]]:
    """The page (page.Page) and every line's pieces and spans: all of reading but the classifier.
    Spans are runs of pieces (path.py), or windows (windows.py) if `windowed`."""
    where = str(image) if isinstance(image, (str, os.PathLike)) else None
    page = load_page(image)
    parts = _page_components(page, limits, where)
    height = _typical_height(parts)
    if height > DIGIT_HEIGHT_MAX:
        page = page.reduced(int(round(height / DIGIT_HEIGHT_TARGET)))
        parts = _page_components(page, limits, where)
        height = _typical_height(parts)
    parts = [c for c in parts if c.area >= SPECK_AREA * height ** 2
             or max(c.height, c.width) >= SPECK_SIDE * height]
    plans: list[LinePlan] = []
    total = spans = 0
    for line in group_lines(parts):
        ink, top, left = line_image(line, page.amount)
        slant = estimate_slant(ink)
        sheared, shifts = shear_rows(ink, slant)
        found = pieces(sheared, line.height)
        total += len(found)
        if total > limits.max_pieces:
            raise TooMuchInk(f"more than {limits.max_pieces} pieces of digits (about "
                             f"{limits.max_pieces // 2} digits), the reader's limit; read the "
                             "page in parts", where)
        hypotheses = windows if windowed else legal_spans
        cells = [(cell, hypotheses(cell, line.height)) for cell in split_cells(found, line.height)]
        if windowed:
            spans += sum(len(cell_spans) for _, cell_spans in cells)
            if spans > limits.max_windows:
                raise TooMuchInk(f"more than {limits.max_windows} windows (about "
                                 f"{limits.max_windows // 120} digits), the reader's limit when "
                                 "reading by windows; read the page in parts", where)
        plans.append(LinePlan(line, slant, shifts, top, left, cells))
    return page, plans


def span_pixels(span: Span, plan: LinePlan) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the span's ink in working-page pixels (the line's shear undone)."""
    ys, xs = np.nonzero(span.ink > 0)
    ys, xs = ys + span.top, xs + span.left
    return ys + plan.top, xs - plan.shifts[ys] + plan.left


def read_digits(classifier: Classifier, image: ImageInput,
                limits: ReadLimits = ReadLimits(), by_windows: bool | None = None) -> Reading:
    """Every digit of `image`, line by line, cell by cell (module docstring). A model with a
    "none" class reads by windows (windows.py) unless `by_windows` is False; others by pieces."""
    labels = list(classifier.labels)
    digit_columns, none_column = digit_classes(labels, len(labels))
    windowed = none_column is not None if by_windows is None else by_windows
    if windowed and none_column is None:
        raise ValueError("reading by windows needs a model with a 'none' class "
                         "(scripts/train_string_model.py)")
    page, plans = segment(image, limits, windowed)
    if not plans:
        return Reading([], page.size, notes=["no ink found"])

    spans = [s for plan in plans for _, cell_spans in plan.cells for s in cell_spans]
    if spans:
        background = classifier.drawing_background
        context = windowed and classifier.info.sees_context     # span_field_bytes
        pre = classifier.preprocessor
        batch = np.stack([pre(span_field_bytes(s, background, context)) for s in spans])
        probabilities = classifier.probabilities(batch)
    else:
        probabilities = np.zeros((0, len(labels)))

    def box_of(span: Span, plan: LinePlan) -> Box:
        ys, xs = span_pixels(span, plan)
        s = page.scale
        return (int(xs.min()) * s, int(ys.min()) * s,
                min(page.size[0], (int(xs.max()) + 1) * s), min(page.size[1], (int(ys.max()) + 1) * s))

    lines: list[Line] = []
    k = 0
    for plan in plans:
        line = plan.line
        read_cells = []
        for cell_pieces, cell_spans in plan.cells:
            probs = probabilities[k:k + len(cell_spans)]
            k += len(cell_spans)
            if len(probs) == 0:
                continue
            best = digit_columns[probs[:, digit_columns].argmax(axis=1)]   # "none" never read
            if windowed:
                scores = [window_score(float(p)) for p in probs[np.arange(len(probs)), best]]
                chosen = best_chain(cell_pieces, cell_spans, scores, line.height, list(best))
            else:
                soft = tempered(probs)[:, digit_columns]
                scores = [span_score(s, float(soft[i].max()), line.height,
                                     classifier.info.label(int(best[i])),
                                     cell_pieces[s.start].crossings)
                          for i, s in enumerate(cell_spans)]
                if none_column is not None:
                    scores = [v + NONE_W * float(np.log(max(1e-9, 1 - p[none_column])))
                              for v, p in zip(scores, probs)]
                chosen = best_path(cell_pieces, cell_spans, scores, line.height)
            digits = []
            for i in chosen:      # top-k only for the chosen spans: windows are hundreds a cell
                top = [p for p in top_k(probs[i], classifier.info, max(1, limits.top) + 1)
                       if p.index != none_column][:max(1, limits.top)]
                digits.append(Digit(top[0].label, top[0].probability, top, box_of(cell_spans[i], plan)))
            if digits:
                read_cells.append(Cell(digits, union_box([d.box for d in digits])))
        if read_cells:
            read_cells.sort(key=lambda c: c.box[0])
            lines.append(Line(read_cells, union_box([c.box for c in read_cells]), plan.slant))
    notes = [] if lines else ["no digits found"]
    return Reading(lines, page.size, columns_of([c for line in lines for c in line.cells]), notes)
