"""A drawing (a canvas with a digit somewhere on it) prepared the way MNIST's digits were.

MNIST (LeCun et al.): the digit's bounding box scaled, keeping its aspect ratio, to fit 20 x 20
(anti-aliased), then placed in a 28 x 28 field so that its centre of mass falls at the centre.
Measured on MNIST's training images the centre of mass sits at pixel index (14.0, 14.0), so that
is where we put it. Without this a digit drawn small, large or off-centre on a 280 x 280 canvas
and squashed to 28 x 28 looks nothing like the training data.

Steps: composite any transparency (on black for light strokes, on white for dark ones), take
luminance, call the border's median the background and everything differing from it ink, crop
the ink's box, scale into 20 x 20, place by centre of mass, and draw it in the polarity the model
was trained on: DIGITS' MNIST (and lmdb_builder's) stores **black digits on white** (its
downloader inverted the idx bytes); a dataset built with --no-invert has white on black.
`drawing_background` reads that from the model: the mean image's border (white ~255 for
DIGITS' MNIST), else the mean pixel, else DIGITS' white.

Bounded work: a drawing larger than WORK_SIDE (560 px, twice the page's canvas) is first
reduced by a whole factor (PIL's box-averaging `reduce`) so that its long side is at most that;
the digit ends up 20 px tall either way, and the float arrays below stay a few MB however large
the upload (a 4096 x 4096 RGBA canvas cost ~900 MB and 3 s before, ~70 MB and 0.1 s now).

Image modes: the same rule as without --drawing (DIGITS' load_image, lmdb_builder.images): L,
RGB, 1, LA, CMYK, YCbCr, P, PA and RGBA are read; 16-bit and floating-point images (I;16, I, F)
are refused with the same message, where they used to be clipped to white here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import BadImageError
from .images import ImageInput, as_pil
from .metadata import ModelInfo

FIELD, BOX = 28, 20
CENTRE = 14.0          # MNIST's mean centre of mass (row and column index)
INK_THRESHOLD = 0.2    # of the strongest ink: fainter pixels do not widen the box
BACKGROUNDS = ("white", "black")
WORK_SIDE = 560        # larger drawings are reduced to at most this before any float work
DIGITS_MODES = ("L", "RGB", "1", "LA", "CMYK", "YCbCr", "P", "PA", "RGBA")


def drawing_image(image: ImageInput) -> Image.Image:
    """The drawing as a PIL image of a mode DIGITS reads, reduced to at most WORK_SIDE a side."""
    where = str(image) if isinstance(image, (str, os.PathLike)) else None
    pil = as_pil(image)
    if pil.mode not in DIGITS_MODES:
        raise BadImageError(f'image mode "{pil.mode}" not supported (DIGITS reads L, RGB, 1, LA, '
                            "CMYK, YCbCr, P and RGBA); save it as an 8-bit PNG or JPEG", where)
    factor = -(-max(pil.size) // WORK_SIDE)
    if factor > 1:
        if pil.mode not in ("L", "LA", "RGB", "RGBA"):   # reduce() takes these; P, 1, CMYK...
            has_alpha = pil.mode == "PA" or "transparency" in pil.info
            pil = pil.convert("RGBA" if has_alpha else "L" if pil.mode == "1" else "RGB")
        pil = pil.reduce(factor)
    return pil


def _gray(image: Image.Image) -> np.ndarray:
    """Luminance in [0, 1]; transparent parts composited on the colour that hides them."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255
        alpha = rgba[:, :, 3:]
        luma = rgba[:, :, :3] @ np.array([0.299, 0.587, 0.114])
        weight = alpha[:, :, 0].sum()
        if alpha.min() < 1 and weight > 0:
            light_strokes = (luma * alpha[:, :, 0]).sum() / weight > 0.5
            behind = 0.0 if light_strokes else 1.0
            return luma * alpha[:, :, 0] + behind * (1 - alpha[:, :, 0])
        return luma
    return np.asarray(image.convert("L"), dtype=np.float64) / 255


def ink(image: ImageInput) -> np.ndarray:
    """How much each pixel differs from the background, in [0, 1] (1 = the strongest stroke)."""
    gray = _gray(drawing_image(image))
    frame = max(1, min(gray.shape) // 20)
    border = np.concatenate([gray[:frame].ravel(), gray[-frame:].ravel(),
                             gray[:, :frame].ravel(), gray[:, -frame:].ravel()])
    background = float(np.median(border))
    amount = np.abs(gray - background)
    peak = amount.max()
    return amount / peak if peak > 0.05 else np.zeros_like(amount)


def normalize_drawing(image: ImageInput, background: str = "white",
                      context: bool = False) -> Image.Image:
    """A 28 x 28 `L` image of the drawn digit, MNIST-style, on a `background` (white or black);
    with `context`, the RGB field of a window model that sees a window's surroundings
    (context_field), here with nothing beside the digit."""
    field = ink_field(ink(image))[0]
    return field_image(context_field(field) if context else field, background)


def context_field(window: np.ndarray, beside: np.ndarray | None = None) -> np.ndarray:
    """The H x W x 3 field of a window model that sees each window's surroundings
    (inference/read/reader.span_field): R the window's ink, G the ink beside it, B both."""
    beside = np.zeros_like(window) if beside is None else beside
    return np.stack([window, beside, np.maximum(window, beside)], axis=2)


@dataclass(frozen=True)
class Placement:
    """Where ink_field puts ink: the crop (ink box) of the source is resized to height x width
    and its top-left corner lands at (top, left) of the 28 x 28 field."""
    row: int
    col: int
    crop_height: int
    crop_width: int
    height: int
    width: int
    top: int
    left: int

    def affine(self, row: float = 0.0, col: float = 0.0) -> np.ndarray:
        """2 x 3 matrix from the pixels of a source whose pixel (0, 0) is pixel (row, col) of the
        placed ink's array to field pixels, pixel centres matched as PIL's resize matches them."""
        sy, sx = self.height / self.crop_height, self.width / self.crop_width
        return np.array([[sx, 0.0, self.left + (0.5 - (self.col - col)) * sx - 0.5],
                         [0.0, sy, self.top + (0.5 - (self.row - row)) * sy - 0.5]])


def ink_field(amount: np.ndarray) -> tuple[np.ndarray, Placement | None]:
    """normalize_drawing's second half, for callers that already hold the ink amounts in [0, 1]
    (ink()'s output; the reader's windows): the 28 x 28 field of ink (0 = paper), and where the ink
    went (None without ink): the box of ink above INK_THRESHOLD, its longer side scaled to
    BOX, its centre of mass (after the resize) put at CENTRE."""
    rows = np.flatnonzero((amount > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((amount > INK_THRESHOLD).any(axis=0))
    field = np.zeros((FIELD, FIELD))
    if not rows.size:
        return field, None
    crop = amount[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    factor = BOX / max(crop.shape)
    height = max(1, round(crop.shape[0] * factor))
    width = max(1, round(crop.shape[1] * factor))
    small = Image.fromarray(np.round(crop * 255).astype(np.uint8)).resize((width, height),
                                                                          Image.LANCZOS)
    digit = np.asarray(small, dtype=np.float64) / 255
    total = digit.sum()
    if total > 0:
        cy = (digit.sum(axis=1) * np.arange(height)).sum() / total
        cx = (digit.sum(axis=0) * np.arange(width)).sum() / total
    else:
        cy, cx = (height - 1) / 2, (width - 1) / 2
    top = int(np.clip(round(CENTRE - cy), 0, FIELD - height))
    left = int(np.clip(round(CENTRE - cx), 0, FIELD - width))
    field[top:top + height, left:left + width] = digit
    return field, Placement(int(rows[0]), int(cols[0]), crop.shape[0], crop.shape[1], height,
                            width, top, left)


def field_bytes(field: np.ndarray, background: str = "white") -> np.ndarray:
    """Ink amounts in [0, 1] as 8-bit pixels on `background` (H x W, or H x W x 3 for RGB)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be white or black, not {background!r}")
    values = field if background == "black" else 1 - field
    return np.round(values * 255).astype(np.uint8)


def field_image(field: np.ndarray, background: str = "white") -> Image.Image:
    """field_bytes as an image: L, or RGB for a H x W x 3 field."""
    return Image.fromarray(field_bytes(field, background))


def drawing_background(info: ModelInfo) -> str:
    """The background colour of the model's training digits: white or black (module docstring)."""
    told = info.extra.get("drawing_background")
    if told in BACKGROUNDS:
        return told
    if info.mean_type == "image" and info.mean_image is not None:
        mean = info.mean_image
        border = np.concatenate([mean[:, 0].ravel(), mean[:, -1].ravel(),
                                 mean[:, :, 0].ravel(), mean[:, :, -1].ravel()])
        return "white" if np.median(border) > 127 else "black"
    if info.mean_pixel:
        return "white" if float(np.mean(info.mean_pixel)) > 127 else "black"
    return "white"
