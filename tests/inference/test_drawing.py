"""normalize_drawing: MNIST's 20x20 box and centre of mass, any polarity or alpha in, the
model's polarity out; and drawn digits are recognised with it, much less without."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inference import ModelInfo, drawing_background, normalize_drawing

from .conftest import STROKES, draw_strokes, drawn_canvas


def stroke_canvas(ink="black", paper="white", mode="RGB", size=(280, 240)):
    """A thick '7' drawn off-centre (top left), on a non-square canvas."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    draw.line([(30, 30), (110, 30), (60, 150)], fill=ink, width=18, joint="curve")
    return image


def digit_box(gray_on_white: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero((gray_on_white < 200).any(axis=1))
    cols = np.flatnonzero((gray_on_white < 200).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    total = ink.sum()
    return ((ink.sum(1) * np.arange(ink.shape[0])).sum() / total,
            (ink.sum(0) * np.arange(ink.shape[1])).sum() / total)


def test_box_and_centre_of_mass_are_mnists():
    out = np.asarray(normalize_drawing(stroke_canvas()))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    height, width = digit_box(out)
    assert 19 <= height <= 21 and width < height              # long side 20, aspect kept
    cy, cx = centre_of_mass(255 - out.astype(float))
    assert abs(cy - 14) <= 0.6 and abs(cx - 14) <= 0.6
    assert out[0, 0] == 255 and out.min() < 40                # white paper, dark ink


@pytest.mark.parametrize("ink, paper, mode", [
    ("white", "black", "RGB"),           # light on dark
    ((255, 255, 255, 255), (0, 0, 0, 0), "RGBA"),        # white strokes on transparent
    ((0, 0, 0, 255), (255, 255, 255, 0), "RGBA"),        # black strokes on transparent
    ((30, 60, 200, 255), (250, 250, 240, 255), "RGBA"),  # blue pen on cream, opaque
    (0, 255, "L"),
])
def test_any_polarity_and_alpha_give_the_same_digit(ink, paper, mode):
    reference = np.asarray(normalize_drawing(stroke_canvas()), dtype=float)
    out = np.asarray(normalize_drawing(stroke_canvas(ink, paper, mode)), dtype=float)
    assert np.abs(out - reference).mean() < 6


def test_black_background_is_the_inverse():
    white = np.asarray(normalize_drawing(stroke_canvas()), dtype=int)
    black = np.asarray(normalize_drawing(stroke_canvas(), background="black"), dtype=int)
    np.testing.assert_array_equal(black, 255 - white)
    with pytest.raises(ValueError, match="white or black"):
        normalize_drawing(stroke_canvas(), background="grey")


def test_blank_canvas_stays_blank():
    assert np.asarray(normalize_drawing(Image.new("L", (280, 280), 255))).min() == 255
    assert np.asarray(normalize_drawing(np.zeros((50, 60), np.uint8), "black")).max() == 0


def test_background_follows_the_model():
    def spec(**kw):
        return ModelInfo("x", "y", 1, 28, 28, **kw)
    white_border = np.full((1, 28, 28), 255, np.float32)
    white_border[:, 8:20, 8:20] = 90                        # DIGITS' MNIST: dark digits, white paper
    assert drawing_background(spec(mean_type="image", mean_image=white_border)) == "white"
    assert drawing_background(spec(mean_type="image", mean_image=255 - white_border)) == "black"
    assert drawing_background(spec(mean_type="pixel", mean_pixel=(33.3,))) == "black"
    assert drawing_background(spec()) == "white"
    assert drawing_background(spec(mean_type="pixel", mean_pixel=(33.3,),
                                   extra={"drawing_background": "white"})) == "white"


def test_the_trained_models_background_is_white(lenet_classifier):
    assert lenet_classifier.drawing_background == "white"   # lmdb_builder inverts MNIST like DIGITS


def test_drawn_digits_need_normalization(lenet_classifier, mnist_test):
    rng = np.random.default_rng(7)
    chosen = range(30)
    canvases = [drawn_canvas(mnist_test.images[i], rng) for i in chosen]
    labels = mnist_test.labels[list(chosen)]
    plain = lenet_classifier.classify(canvases, top=10)
    drawn = lenet_classifier.classify(canvases, top=10, drawing=True)

    def score(results):
        right = np.mean([r[0].index == y for r, y in zip(results, labels)])
        truth = np.mean([{p.index: p.probability for p in r}[y] for r, y in zip(results, labels)])
        return right, truth
    right_drawn, truth_drawn = score(drawn)
    right_plain, truth_plain = score(plain)
    assert right_drawn >= 0.85
    assert right_drawn >= right_plain + 0.4 and truth_drawn >= truth_plain + 0.4


def test_pen_drawn_digits_small_and_off_centre(lenet_classifier):
    """The ten digits drawn with the page's pen, shrunk and pushed into a corner of the canvas
    (as people draw): normalization recognises them, Classify One's squash does not."""
    labels = list(STROKES)
    canvases = [draw_strokes(STROKES[d], zoom=0.55, shift=(120, 10)) for d in labels]
    drawn = lenet_classifier.classify(canvases, drawing=True)
    plain = lenet_classifier.classify(canvases)
    right_drawn = sum(r[0].label == d for r, d in zip(drawn, labels))
    right_plain = sum(r[0].label == d for r, d in zip(plain, labels))
    assert right_drawn >= 9 and right_drawn >= right_plain + 4
