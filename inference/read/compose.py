"""Strings and tables of digits composed from single 28 x 28 digits (MNIST's test split in the
benchmark and the tests): the ground truth for reading, built the way the facts propose.

Kinds (digits keep their 28-row field, so baselines line up as MNIST centred them; each
digit's empty columns are trimmed; strings are composited with a pixel-wise max, then drawn
black on white with MARGIN px of paper around):
  separated    ink boxes GAP_SEPARATED (3-10) px apart
  touching     like UFPR's touching pairs: the next digit slides left until the ink masks
               first meet, then 1-2 px further; each neighbour pair touches with probability
               1/2, at least one pair does, the others are 1-4 px apart
  overlapping  ink boxes overlap by 1-4 px but the ink does not touch (the next digit is
               moved right until no pixel is 8-adjacent to the previous one's)
  slanted      separated, then per-digit size jitter +-15 % and baseline jitter +-3 px, strokes
               thickened by 1 px half of the time, and the whole string sheared by 10-20
               degrees either way
A table is rows x columns of separated numbers (1-4 digits), columns apart by 1.5-2.5 digit
widths, rows 34-40 px apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("separated", "touching", "overlapping", "slanted")
MARGIN = 8
INK = 40             # a pixel of ink in MNIST's 0-255 bytes


@dataclass(frozen=True)
class Composed:
    image: Image.Image        # L, black digits on white
    text: str                 # the digits; a table's rows joined by "\n", cells by " "
    kind: str
    cells: list[list[str]] | None = None     # a table's cells
    owners: np.ndarray | None = None        # per pixel: the digit (index) whose ink is
    #                                         strongest there, -1 on paper (slanted: sheared
    #                                         with the ink, nearest pixel)


def _trim(digit: np.ndarray) -> np.ndarray:
    cols = np.flatnonzero((digit > INK).any(axis=0))
    return digit[:, cols[0]:cols[-1] + 1] if cols.size else digit[:, 13:15]


def _touches(canvas: np.ndarray, digit: np.ndarray, x: int, y: int) -> bool:
    """Whether `digit` at (x, y) has ink 8-adjacent to (or on) ink already on `canvas`."""
    h, w = digit.shape
    region = canvas[max(0, y - 1):y + h + 1, max(0, x - 1):x + w + 1] > INK
    if not region.any():
        return False
    grown = np.zeros((h + 2, w + 2), bool)
    mask = digit > INK
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown[dy:dy + h, dx:dx + w] |= mask
    oy, ox = max(0, y - 1) - (y - 1), max(0, x - 1) - (x - 1)
    grown = grown[oy:oy + region.shape[0], ox:ox + region.shape[1]]
    return bool((grown & region).any())


def _place(digits: list[np.ndarray], offsets: list[int],
           gaps: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Composite trimmed `digits` left to right; gaps[i] says how digit i+1 meets digit i:
    ("gap", px) between ink boxes, ("touch", push px) or ("overlap", px of box overlap).
    Returns the canvas and the owners map (Composed.owners)."""
    height = max(d.shape[0] + o for d, o in zip(digits, offsets)) + 2 * MARGIN
    width = sum(d.shape[1] for d in digits) + 12 * len(digits) + 2 * MARGIN
    canvas = np.zeros((height, width), np.uint8)
    owners = np.full((height, width), -1, np.int16)
    x = MARGIN
    previous_right = None
    for k, (digit, dy) in enumerate(zip(digits, offsets)):
        y = MARGIN + dy
        if k:
            how, amount = gaps[k - 1]
            if how == "gap":
                x = previous_right + amount
            elif how == "touch":
                x = previous_right + 2
                while x > previous_right - digit.shape[1] and not _touches(canvas, digit, x, y):
                    x -= 1
                x -= amount
            else:   # overlap without touching
                x = previous_right - amount
                while _touches(canvas, digit, x, y):
                    x += 1
        region = canvas[y:y + digit.shape[0], x:x + digit.shape[1]]
        owner = owners[y:y + digit.shape[0], x:x + digit.shape[1]]
        owner[(digit > INK) & (digit >= region)] = k
        np.maximum(region, digit, out=region)
        previous_right = x + digit.shape[1] if previous_right is None else max(
            previous_right, x + digit.shape[1])
    cols = np.flatnonzero((canvas > 0).any(axis=0))
    return canvas[:, :cols[-1] + 1 + MARGIN], owners[:, :cols[-1] + 1 + MARGIN]


def _shear(image: np.ndarray, degrees: float, resample=Image.BILINEAR) -> np.ndarray:
    """Sheared so that the tops lean right (degrees > 0) or left: x_out = x + s (h - y) + off."""
    s = math.tan(math.radians(degrees))
    h, w = image.shape
    off = 0.0 if s >= 0 else -s * h
    out = Image.fromarray(image).transform((w + int(math.ceil(abs(s) * h)), h), Image.AFFINE,
                                           (1, s, -s * h - off, 0, 1, 0), resample)
    return np.asarray(out)


def compose_string(digits: list[np.ndarray], labels: list[int], kind: str,
                   rng: np.random.Generator) -> Composed:
    """One string of `digits` (28 x 28 uint8, white on black as MNIST's bytes) of `kind`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    n = len(digits)
    offsets = [int(v) for v in rng.integers(-1, 2, n)]
    work = list(digits)
    if kind == "slanted":
        work = []
        for d in digits:
            side = int(round(28 * rng.uniform(0.85, 1.15)))
            img = Image.fromarray(d).resize((side, side), Image.BILINEAR)
            if rng.random() < 0.5:
                img = img.filter(ImageFilter.MaxFilter(3))
            work.append(np.asarray(img))
        offsets = [int(v) for v in rng.integers(-3, 4, n)]
        offsets = [o - min(offsets) for o in offsets]
    else:
        offsets = [o - min(offsets) for o in offsets]
    trimmed = [_trim(d) for d in work]
    if kind == "separated" or kind == "slanted":
        gaps = [("gap", int(rng.integers(3, 11))) for _ in range(n - 1)]
    elif kind == "overlapping":
        gaps = [("overlap", int(rng.integers(1, 5))) for _ in range(n - 1)]
    else:
        touch = rng.random(n - 1) < 0.5
        if n > 1 and not touch.any():
            touch[rng.integers(0, n - 1)] = True
        gaps = [("touch", int(rng.integers(1, 3))) if t else ("gap", int(rng.integers(1, 5)))
                for t in touch]
    canvas, owners = _place(trimmed, offsets, gaps)
    if kind == "slanted":
        angle = float(rng.uniform(10, 20)) * (1 if rng.random() < 0.5 else -1)
        canvas = _shear(canvas, angle)
        owners = _shear((owners + 1).astype(np.uint8), angle, Image.NEAREST).astype(np.int16) - 1
    image = Image.fromarray(255 - canvas)
    return Composed(image, "".join(str(int(v)) for v in labels), kind, owners=owners)


def compose_table(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                  rows: int | None = None, cols: int | None = None) -> Composed:
    """A table of separated numbers, drawing digits in order from `digits` (enough of them:
    rows x cols x 4 at most)."""
    rows = rows or int(rng.integers(3, 6))
    cols = cols or int(rng.integers(2, 5))
    used = 0
    cells: list[list[str]] = []
    pictures: list[list[np.ndarray]] = []
    for _ in range(rows):
        row_cells, row_pics = [], []
        for _ in range(cols):
            length = int(rng.integers(1, 5))
            part = compose_string(list(digits[used:used + length]),
                                  list(labels[used:used + length]), "separated", rng)
            used += length
            row_cells.append(part.text)
            row_pics.append(255 - np.asarray(part.image))
        cells.append(row_cells)
        pictures.append(row_pics)
    col_width = [max(pictures[r][c].shape[1] for r in range(rows)) for c in range(cols)]
    gaps = [int(rng.integers(42, 70)) for _ in range(cols)]
    pitch = [int(rng.integers(34, 41)) for _ in range(rows)]
    width = sum(col_width) + sum(gaps)
    height = sum(pitch) + 2 * MARGIN + 28
    canvas = np.zeros((height, width), np.uint8)
    y = 0
    for r in range(rows):
        x = 0
        for c in range(cols):
            pic = pictures[r][c]
            region = canvas[y:y + pic.shape[0], x:x + pic.shape[1]]
            np.maximum(region, pic[:region.shape[0]], out=region)
            x += col_width[c] + gaps[c]
        y += pitch[r]
    text = "\n".join(" ".join(row) for row in cells)
    return Composed(Image.fromarray(255 - canvas), text, "tables", cells)


def _owners_of(owners: np.ndarray, plan, ink: np.ndarray, top: int,
               left: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ink pixel of a piece or window of a reader line (rows top.., columns left.. of the
    line with its slant taken out): the digit that owns it (Composed.owners), and the columns."""
    ys, xs = np.nonzero(ink > 0)
    ys, xs = ys + top, xs + left
    return owners[ys + plan.top, xs - plan.shifts[ys] + plan.left], xs


def line_extents(owners: np.ndarray, plan) -> dict[int, tuple[int, int, int]]:
    """Each digit's columns [left, right) on a line of the reader (reader.LinePlan: its top,
    left, per-row shifts taking the slant out, and its cells' pieces) and its count of ink
    pixels, counting only the ink the reader kept (specks dropped), from `owners`
    (Composed.owners): where a window must start and end to hold that digit."""
    lo: dict[int, int] = {}
    hi: dict[int, int] = {}
    ink: dict[int, int] = {}
    for pieces, _ in plan.cells:
        for piece in pieces:
            own, xs = _owners_of(owners, plan, piece.ink, piece.top, piece.left)
            for k in map(int, np.unique(own[own >= 0])):
                cols = xs[own == k]
                a, b = int(cols.min()), int(cols.max()) + 1
                lo[k], hi[k] = min(lo.get(k, a), a), max(hi.get(k, b), b)
                ink[k] = ink.get(k, 0) + cols.size
    return {k: (lo[k], hi[k], ink[k]) for k in lo}


RIGHT, RIGHT_SHARE = 0.12, 0.25   # a window is digit k if both edges are within the smaller of
#                                   RIGHT x H and RIGHT_SHARE x k's width (at least 1 px) of k's
HOLD = 0.5                        # ... and it holds at most this share of any other digit's ink


def window_label(extents: dict[int, tuple[int, int, int]], left: int, right: int, height: float,
                 held: dict[int, int] | None = None) -> int:
    """The truth of a window [left, right) on a line (line_extents) holding `held` ink pixels
    of each digit: the digit it holds from edge to edge, with at most fragments of the others;
    -1 for none of them (an edge more than twice the tolerance from every digit's, or most of
    a neighbour taken in: a 1 pushed into a 0's side makes the 0's window a little wider hold
    the whole 1, and that window must not read as a 0, even when its edge is only a little
    more than the tolerance off the 0's: a 1 is about that wide); -2 in between (neither is
    taught), also where the neighbour lies inside the digit's own columns and no window can
    leave it out."""
    label = -1
    for k, (a, b, _) in extents.items():
        error = max(abs(left - a), abs(right - b))
        tolerance = min(RIGHT * height, max(1.0, RIGHT_SHARE * (b - a)))
        if error > 2 * tolerance:
            continue
        taken = [j for j, count in (held or {}).items()
                 if j != k and j in extents and count > HOLD * extents[j][2]]
        if any(extents[j][0] < a - tolerance or extents[j][1] > b + tolerance for j in taken):
            continue        # most of a neighbour beside k: none, even a little off k's edges
        if error <= tolerance and not taken:
            return k
        label = -2
    return label


def window_labels(owners: np.ndarray, plan) -> list[list[int]]:
    """window_label of every window of every cell of a reader line (a LinePlan segmented by
    windows), cell by cell: the truth an ideal window classifier would answer."""
    extents = line_extents(owners, plan)
    labels = []
    for _, spans in plan.cells:
        labels.append([])
        for s in spans:
            own, _ = _owners_of(owners, plan, s.ink, s.top, s.left)
            held = dict(enumerate(np.bincount(own[own >= 0]).tolist())) if own.size else {}
            labels[-1].append(window_label(extents, s.left, s.left + s.width,
                                           plan.line.height, held))
    return labels


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each 1): the character
    errors of reading `b` where `a` is written (CER = errors / len(a))."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]
