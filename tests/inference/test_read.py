"""inference.read: strings and tables of real MNIST *test* digits composed (inference/read/
compose.py) and read with the session's trained LeNet (conftest: ~97 % on single digits);
the pieces (components, slant, cuts, layout) checked on their own; bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from inference.read import ReadLimits, TooMuchInk, read_digits
from inference.read.components import Component, components
from inference.read.compose import compose_string, compose_table, edit_distance
from inference.read.cuts import candidate_columns, crossings, cut_path
from inference.read.lines import estimate_slant, group_lines, shear_rows

from .conftest import STROKES, draw_strokes


def _strings(mnist_test, kind: str, count: int, seed: int, lengths=(3, 7)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        idx = rng.integers(0, len(mnist_test.labels), int(rng.integers(*lengths)))
        out.append(compose_string(list(mnist_test.images[idx]), list(mnist_test.labels[idx]),
                                  kind, rng))
    return out


def _score(classifier, composed):
    exact, errors, chars = 0, 0, 0
    for c in composed:
        got = read_digits(classifier, c.image).text.replace(" ", "")
        exact += got == c.text
        errors += edit_distance(c.text, got)
        chars += len(c.text)
    return exact / len(composed), errors / chars


# -- the pieces -----------------------------------------------------------------------------

def test_components_match_a_flood_fill():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) < 0.35
    found = components(mask)
    labels = np.zeros(mask.shape, int)
    for k, c in enumerate(found, 1):
        region = labels[c.top:c.bottom, c.left:c.right]
        region[c.mask] = k
    assert (labels > 0).sum() == mask.sum() and sum(c.area for c in found) == mask.sum()
    seen = np.zeros(mask.shape, bool)         # independent 8-connected flood fill
    count = 0
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        count += 1
        stack, members = [(y, x)], set()
        seen[y, x] = True
        while stack:
            a, b = stack.pop()
            members.add(labels[a, b])
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    p, q = a + dy, b + dx
                    if 0 <= p < 37 and 0 <= q < 53 and mask[p, q] and not seen[p, q]:
                        seen[p, q] = True
                        stack.append((p, q))
        assert len(members) == 1             # one flood region is exactly one component
    assert count == len(found)


@pytest.mark.parametrize("degrees", [-18, 0, 14])
def test_slant_is_found_and_taken_out(degrees):
    ink = np.zeros((41, 90), np.float32)
    s = math.tan(math.radians(degrees))
    for x0 in (20, 45, 70):                  # three upright bars, then sheared: tops lean right
        for y in range(41):
            x = int(round(x0 + s * (40 - y) - s * 20))
            ink[y, x:x + 3] = 1
    found = estimate_slant(ink)
    assert abs(math.degrees(math.atan(found)) - degrees) <= 2.5
    straight, _ = shear_rows(ink, found)
    assert (straight.sum(axis=0) > 0).sum() <= 3 * 5     # each bar back in about 3-5 columns


def _box(top: int, left: int, height: int, width: int) -> Component:
    return Component(top, left, np.ones((height, width), bool))


def test_a_short_stroke_near_a_line_joins_it():
    """A short component just above or below a line, over its columns, joins it (lines.NEAR);
    one too far away, or beside the line's columns, or as tall as a digit, starts its own."""
    digits = [_box(14, 8, 20, 12), _box(15, 30, 21, 10), _box(13, 50, 20, 14)]
    stem = _box(6, 31, 9, 4)             # a 6's stem, 2 of its 9 rows in the line's span
    dot = _box(36, 52, 3, 3)             # a dot 3 px under the last digit, under the span
    far = _box(0, 10, 4, 4)              # 9 px above the span: more than NEAR x 23 px
    beside = _box(10, 70, 3, 5)          # right of the line's last column
    tall = _box(38, 12, 19, 10)          # a digit of the next row, 2 px lower down
    lines = group_lines([*digits, stem, dot, far, beside, tall])
    members = sorted(([(c.top, c.left) for c in line.components] for line in lines), key=len)
    assert members[-1] == [(15, 30), (14, 8), (13, 50), (6, 31), (36, 52)]
    assert sorted(members[:-1]) == [[(0, 10)], [(10, 70)], [(38, 12)]]


def test_a_cut_goes_through_the_thin_joint():
    ink = np.zeros((21, 33), np.float32)
    ink[:, 2:12] = 1                          # two blocks joined by one thin bar on row 10
    ink[:, 21:31] = 1
    ink[10, 12:21] = 1
    columns = candidate_columns(ink > 0, 21)
    assert columns and all(12 <= c <= 21 for c in columns)
    path = cut_path(ink, columns[0], 21)
    assert crossings(ink, path) == 1 and 12 <= path.min() and path.max() <= 21


def test_pieces_map_back_to_the_page_and_owners_name_the_digits(mnist_test):
    """reader.segment's pieces, sheared and cut, land exactly on the page's ink again
    (span_pixels), and compose's owners map gives every ink pixel the digit it came from:
    what scripts/train_string_model.py relies on to tell right windows from wrong ones."""
    from inference.read.path import Span
    from inference.read.reader import segment, span_pixels
    for kind, seed in (("touching", 14), ("slanted", 16)):
        composed = _strings(mnist_test, kind, 1, seed=seed, lengths=(4, 5))[0]
        page, plans = segment(composed.image)
        assert kind == "touching" or any(abs(p.slant) > 0.1 for p in plans)
        covered = np.zeros(page.mask.shape, int)
        for plan in plans:
            for pieces, _ in plan.cells:
                for piece in pieces:
                    ys, xs = span_pixels(Span(0, 1, piece.top, piece.left, piece.ink), plan)
                    covered[ys, xs] += 1
        assert covered.max() == 1 and (covered.astype(bool) == page.mask).all()
        if kind == "touching":
            owners, ink = composed.owners, np.asarray(composed.image) < 255 - 40
            assert owners.shape == ink.shape and ((owners >= 0) == ink).all()
            assert sorted(np.unique(owners[ink])) == list(range(len(composed.text)))
            left_to_right = [np.flatnonzero((owners == k).any(axis=0)).mean() for k in range(4)]
            assert left_to_right == sorted(left_to_right)
        else:   # sheared with the ink, nearest pixel: nearly every ink pixel has its digit
            owners, ink = composed.owners, np.asarray(composed.image) < 255 - 40
            assert owners.shape == ink.shape and ((owners >= 0) & ink).sum() >= 0.9 * ink.sum()
            assert sorted(np.unique(owners[owners >= 0])) == list(range(len(composed.text)))


# -- reading composed strings of MNIST test digits --------------------------------------------

def test_separated_strings_are_read(lenet_classifier, mnist_test):
    exact, cer = _score(lenet_classifier, _strings(mnist_test, "separated", 24, seed=1))
    print(f"separated: {exact:.0%} exact, CER {cer:.3f}")
    assert exact >= 0.6 and cer <= 0.1


@pytest.mark.parametrize("kind, least, worst_cer", [("touching", 0.1, 0.35),
                                                    ("overlapping", 0.5, 0.15),
                                                    ("slanted", 0.5, 0.15)])
def test_hard_strings_are_mostly_read(lenet_classifier, mnist_test, kind, least, worst_cer):
    composed = _strings(mnist_test, kind, 16, seed=2)
    exact, cer = _score(lenet_classifier, composed)
    print(f"{kind}: {exact:.0%} exact, CER {cer:.3f}")
    assert exact >= least and cer <= worst_cer


def test_touching_digits_are_split(lenet_classifier, mnist_test):
    """Strings whose digits share one component: a components-only reader gets their length
    wrong every time; the cuts must recover it."""
    joined = [c for c in _strings(mnist_test, "touching", 30, seed=3)
              if len([p for p in components(np.asarray(c.image) < 128) if p.area > 10]) < len(c.text)]
    assert len(joined) >= 10
    right_length = sum(len(read_digits(lenet_classifier, c.image).digits) == len(c.text)
                       for c in joined)
    assert right_length >= 0.3 * len(joined)     # a components-only reader: 0


def test_polarity_size_and_boxes(lenet_classifier, mnist_test):
    composed = _strings(mnist_test, "separated", 1, seed=4, lengths=(5, 6))[0]
    reading = read_digits(lenet_classifier, composed.image)
    inverted = read_digits(lenet_classifier, Image.eval(composed.image, lambda v: 255 - v))
    w, h = composed.image.size
    big = composed.image.resize((w * 7, h * 7), Image.BILINEAR)       # digits ~140 px tall
    enlarged = read_digits(lenet_classifier, big)
    assert inverted.text == reading.text and len(reading.text) == len(enlarged.text) == 5
    assert sum(a == b for a, b in zip(reading.text, enlarged.text)) >= 4
    boxes = [d.box for d in reading.digits]
    assert all(a[2] <= b[0] + 2 for a, b in zip(boxes, boxes[1:]))   # left to right, apart
    for small, large in zip(boxes, (d.box for d in enlarged.digits)):
        assert all(abs(7 * s - t) <= 16 for s, t in zip(small, large))
    assert enlarged.size == big.size and 0 < reading.confidence <= 1
    assert all(len(d.top) == 3 and d.top[0].label == d.label for d in reading.digits)


def test_specks_are_ignored(lenet_classifier, mnist_test):
    composed = _strings(mnist_test, "separated", 1, seed=5, lengths=(4, 5))[0]
    clean = read_digits(lenet_classifier, composed.image).text
    noisy = composed.image.copy()
    rng = np.random.default_rng(6)
    for x, y in zip(rng.integers(0, noisy.width, 12), rng.integers(0, noisy.height, 12)):
        noisy.putpixel((int(x), int(y)), 0)
    assert read_digits(lenet_classifier, noisy).text == clean


def _written(digits: list[list[list[tuple[float, float]]]], zoom: float = 0.5) -> Image.Image:
    """Pen-drawn digits side by side (the page's pen), black on white."""
    pictures = [draw_strokes(strokes, zoom=zoom, shift=(-40, 0)) for strokes in digits]
    step = int(190 * zoom)
    canvas = Image.new("L", (step * len(digits) + 60, int(280 * zoom)), 255)
    for k, picture in enumerate(pictures):
        canvas.paste(Image.fromarray(np.minimum(np.asarray(canvas.crop(
            (20 + k * step, 0, 20 + k * step + picture.width, picture.height))),
            np.asarray(picture))), (20 + k * step, 0))
    return canvas


def test_broken_strokes_are_merged(lenet_classifier):
    """A 5 with its bar lifted off and a 4 in two strokes that do not meet read as one digit each."""
    five = [[(190, 50), (112, 50)], [(100, 72), (95, 130)] + STROKES["5"][0][3:]]
    four = [[(150, 50), (70, 170), (210, 170)], [(185, 110), (180, 240)]]
    image = _written([STROKES["3"], five, four, STROKES["7"]])
    assert len([c for c in components(np.asarray(image) < 128)]) >= 5
    reading = read_digits(lenet_classifier, image)
    assert reading.text == "3547", reading.text


def test_a_stroke_lifted_above_its_digit_stays_in_the_line(lenet_classifier):
    """A 7 whose bar floats above it and a 6 whose stem is lifted off its loop read in one
    line: alone, the bar would be a line of its own."""
    seven = [[(90, 10), (200, 10)], [(195, 55), (120, 230)]]
    six = [[(170, 30), (135, 80)], [(120, 110)] + STROKES["6"][0][2:]]
    reading = read_digits(lenet_classifier, _written([STROKES["3"], seven, STROKES["4"], six]))
    assert len(reading.lines) == 1 and reading.text == "3746", reading.text


def test_a_table_keeps_its_rows_and_columns(lenet_classifier, mnist_test):
    rng = np.random.default_rng(7)
    table = compose_table(mnist_test.images[100:200], mnist_test.labels[100:200], rng, rows=4, cols=3)
    reading = read_digits(lenet_classifier, table.image)
    rows = reading.table()
    assert len(rows) == 4 and all(len(r) == 3 for r in rows)
    right = sum(a == b for got, want in zip(rows, table.cells) for a, b in zip(got, want))
    assert right >= 10
    assert reading.csv().count("\n") == 4 and reading.csv().splitlines()[0].count(",") == 2


# -- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(1, 1), (3, 2), (300, 200)])
def test_no_ink_is_an_empty_reading(lenet_classifier, size):
    reading = read_digits(lenet_classifier, Image.new("L", size, 255))
    assert reading.lines == [] and reading.text == "" and reading.notes == ["no ink found"]
    assert reading.table() == [] and reading.confidence == 1.0


def test_one_digit(lenet_classifier, mnist_test):
    image = Image.fromarray(255 - mnist_test.images[0])      # a 7, 28 x 28
    assert read_digits(lenet_classifier, image).text == str(mnist_test.labels[0])


@pytest.mark.slow
def test_a_page_of_hundreds_of_digits_is_bounded(lenet_classifier, mnist_test):
    rng = np.random.default_rng(8)
    rows = [compose_string(list(mnist_test.images[i:i + 25]), list(mnist_test.labels[i:i + 25]),
                           "separated", rng) for i in range(0, 300, 25)]
    page = Image.new("L", (max(r.image.width for r in rows), 40 * len(rows) + 20), 255)
    for k, row in enumerate(rows):
        page.paste(row.image, (0, 40 * k))
    reading = read_digits(lenet_classifier, page)
    assert len(reading.lines) == 12 and 280 <= len(reading.digits) <= 320
    with pytest.raises(TooMuchInk, match="more than 100 pieces"):
        read_digits(lenet_classifier, page, ReadLimits(max_pieces=100))
    noise = Image.fromarray((np.random.default_rng(9).random((900, 1300)) < 0.5).astype(np.uint8) * 255)
    with pytest.raises(TooMuchInk):
        read_digits(lenet_classifier, noise, ReadLimits(max_runs=20_000))


def test_command_line(lenet, mnist_test, tmp_path, capsys):
    from inference.__main__ import main
    composed = _strings(mnist_test, "separated", 1, seed=9, lengths=(4, 5))[0]
    path = tmp_path / "number.png"
    composed.image.save(path)
    assert main(["read", str(lenet.onnx), str(path), "--provider", "cpu"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and "% confident" in out and len(out.splitlines()[1].strip()) == 4
    assert main(["read", str(lenet.onnx), str(path), "--table"]) == 0
    assert capsys.readouterr().out.strip().isdigit()
    assert main(["read", str(lenet.onnx), str(path), "--json"]) == 0
    assert '"digits"' in capsys.readouterr().out
    assert main(["read", str(lenet.onnx), str(tmp_path / "missing.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.png" in err and "Traceback" not in err


# -- a model with a "none" class (scripts/train_string_model.py) ------------------------------

class _WithNone:
    """The session's LeNet seen as an 11-class model (labels 0-9 and "none"): P(none) is
    `none(aspect)` of each span's ink box (width / height, measured on the 28 x 28 field the
    reader hands to preprocessor, in the order it then batches them); the digits share the rest."""

    def __init__(self, classifier, none):
        import dataclasses
        self._c, self._none, self._aspects = classifier, none, []
        self.info = dataclasses.replace(classifier.info, labels=[*classifier.labels, "none"])
        self.labels = self.info.labels

    @property
    def drawing_background(self):
        return self._c.drawing_background

    def preprocessor(self, image):
        field = np.asarray(Image.fromarray(image).convert("L"), np.int16)   # the reader's field
        ink = np.abs(field - field[0, 0]) > 64
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        self._aspects.append((cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1) if rows.size else 1.0)
        return self._c.preprocessor(image)

    def probabilities(self, batch):
        aspects, self._aspects = self._aspects[:len(batch)], self._aspects[len(batch):]
        p = self._c.probabilities(batch)
        none = np.array([self._none(a) for a in aspects])[:, None]
        return np.concatenate([p * (1 - none), none], axis=1)


def test_a_none_class_is_used_and_never_read(lenet_classifier, mnist_test):
    composed = _strings(mnist_test, "touching", 6, seed=12, lengths=(3, 5))
    plain = [read_digits(lenet_classifier, c.image) for c in composed]
    zero = [read_digits(_WithNone(lenet_classifier, lambda a: 0.0), c.image, by_windows=False)
            for c in composed]
    assert [r.text for r in zero] == [r.text for r in plain]          # P(none) = 0: as before
    assert [d.box for r in zero for d in r.digits] == [d.box for r in plain for d in r.digits]
    # a model sure that every span wider than 0.75 x its height is a wrong cut: the reader now
    # prefers narrow pieces, so it reads more (narrower) digits; "none" is never one of them
    narrow = _WithNone(lenet_classifier, lambda a: 0.999 if a > 0.75 else 0.001)
    before = after = 0
    for c, r in zip(composed, plain):
        reading = read_digits(narrow, c.image, by_windows=False)
        assert reading.digits and all(d.label != "none" for d in reading.digits)
        assert all(len(d.top) == 3 and "none" not in [p.label for p in d.top] for d in reading.digits)
        before += sum((d.box[2] - d.box[0]) > 0.75 * (d.box[3] - d.box[1]) for d in r.digits)
        after += sum((d.box[2] - d.box[0]) > 0.75 * (d.box[3] - d.box[1]) for d in reading.digits)
    assert after < before
