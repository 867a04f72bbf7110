"""Fixtures for the inference tests: the trained LeNet's classifier (the `lenet` fixture itself,
shared with the converter's deployment tests, is in tests/conftest.py), MNIST test digits."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from lmdb_builder import load_mnist

@pytest.fixture(scope="session")
def lenet_classifier(lenet):
    from inference import Classifier
    return Classifier(lenet.onnx, provider="cpu")


@dataclass(frozen=True)
class Digits:
    images: np.ndarray   # N x 28 x 28 uint8, white digit on black (MNIST's idx bytes)
    labels: np.ndarray


@pytest.fixture(scope="session")
def mnist_test(mnist_dir) -> Digits:
    """MNIST's first 10,000-image *test* split (never trained on), raw polarity; first 1000."""
    mnist = load_mnist(mnist_dir, invert=False)
    return Digits(mnist.test_images[:1000], mnist.test_labels[:1000])


def drawn_canvas(digit: np.ndarray, rng: np.random.Generator, size: int = 280) -> Image.Image:
    """An MNIST digit as a person might draw it on the page: enlarged to 90-190 px, strokes
    thickened, somewhere off-centre, black on a white `size` x `size` canvas."""
    side = int(rng.integers(90, 190))
    big = Image.fromarray(digit).resize((side, side), Image.BILINEAR).filter(ImageFilter.MaxFilter(5))
    canvas = Image.new("L", (size, size), 0)
    left, top = (int(v) for v in rng.integers(0, size - side, 2))
    canvas.paste(big, (left, top))
    return Image.eval(canvas, lambda v: 255 - v)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _arc(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 2.0,
         steps: int = 24) -> list[tuple[float, float]]:
    """Points on an ellipse from `start` to `end` (in units of pi radians)."""
    return [(cx + rx * math.cos(math.pi * (start + (end - start) * i / steps)),
             cy + ry * math.sin(math.pi * (start + (end - start) * i / steps))) for i in range(steps + 1)]


# Each digit as pen strokes (polylines) on a 280 x 280 canvas, as a person draws them.
STROKES: dict[str, list[list[tuple[float, float]]]] = {
    "0": [_arc(140, 140, 60, 90)],
    "1": [[(150, 50), (135, 230)]],
    "2": [_arc(140, 100, 55, 45, 1.1, 2.25, 20) + [(80, 220), (210, 220)]],
    "3": [_arc(135, 95, 55, 45, 1.2, 2.5, 20), _arc(135, 180, 60, 50, 1.5, 2.8, 20)],
    "4": [[(160, 50), (70, 170), (210, 170)], [(170, 110), (165, 240)]],
    "5": [[(190, 50), (100, 50), (95, 130)] + _arc(135, 175, 60, 55, 1.25, 2.8, 20)],
    "6": [[(170, 40), (110, 120)] + _arc(140, 180, 55, 55, 1.0, 3.0, 30)],
    "7": [[(80, 60), (200, 60), (120, 230)]],
    "8": [_arc(140, 90, 45, 45), _arc(140, 185, 55, 50)],
    "9": [_arc(140, 100, 50, 45), [(190, 100), (180, 240)]],
}
PEN = 20     # the page's pen: a 14th of the 280 px canvas


def draw_strokes(strokes, size: int = 280, shift: tuple[float, float] = (0, 0),
                 zoom: float = 1.0) -> Image.Image:
    """The strokes drawn black on white with the page's round pen, moved and scaled."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    width = PEN * zoom
    for stroke in strokes:
        points = [(x * zoom + shift[0], y * zoom + shift[1]) for x, y in stroke]
        draw.line(points, fill=0, width=round(width), joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    return image
