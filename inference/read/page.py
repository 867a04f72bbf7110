"""The page as ink: how much each pixel differs from the paper, at a bounded working size.

The same rule as a single drawing (drawing.py): luminance with transparency composited, the
border's median is the paper, |gray - paper| is ink, so dark-on-light and light-on-dark read
alike. A page larger than WORK_SIDE on its long side is first reduced by a whole factor (PIL's
box-averaging `reduce`), and again after the first look if its digits are taller than
DIGIT_HEIGHT_MAX: a digit 40 px tall reads as well as one 400 px tall, at a hundredth of
the work. `scale` maps working pixels back to the image's (x_image = x_work * scale).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..drawing import DIGITS_MODES, _gray
from ..errors import BadImageError
from ..images import ImageInput, as_pil

WORK_SIDE = 2048          # long side of the working image at most
DIGIT_HEIGHT_MAX = 64     # taller digits are reduced to about DIGIT_HEIGHT_TARGET
DIGIT_HEIGHT_TARGET = 40
INK_LEVEL = 0.3           # of the strongest ink: the binary mask's threshold
MIN_PEAK = 0.08           # less contrast than this anywhere: a blank page


@dataclass(frozen=True)
class Page:
    amount: np.ndarray    # H x W float32 in [0, 1]: ink, 1 = the strongest stroke
    scale: int            # image pixels per working pixel
    size: tuple[int, int]  # (width, height) of the image as given

    @property
    def mask(self) -> np.ndarray:
        return self.amount > INK_LEVEL

    def reduced(self, factor: int) -> "Page":
        """Block-averaged by a whole `factor` (the edge rows/columns that do not fill a block go)."""
        if factor <= 1:
            return self
        h, w = (s // factor * factor for s in self.amount.shape)
        if h == 0 or w == 0:
            return self
        blocks = self.amount[:h, :w].reshape(h // factor, factor, w // factor, factor)
        amount = blocks.mean(axis=(1, 3))
        peak = amount.max()
        amount = amount / peak if peak > 0 else amount
        return Page(amount.astype(np.float32), self.scale * factor, self.size)


def load_page(image: ImageInput) -> Page:
    """The image's ink at a working size of at most WORK_SIDE a side (module docstring)."""
    where = str(image) if isinstance(image, (str, os.PathLike)) else None
    pil = as_pil(image)
    if pil.mode not in DIGITS_MODES:
        raise BadImageError(f'image mode "{pil.mode}" not supported (DIGITS reads L, RGB, 1, LA, '
                            "CMYK, YCbCr, P and RGBA); save it as an 8-bit PNG or JPEG", where)
    size = pil.size
    factor = -(-max(size) // WORK_SIDE)
    if factor > 1:
        if pil.mode not in ("L", "LA", "RGB", "RGBA"):
            has_alpha = pil.mode == "PA" or "transparency" in pil.info
            pil = pil.convert("RGBA" if has_alpha else "L" if pil.mode == "1" else "RGB")
        pil = pil.reduce(factor)
    gray = _gray(pil).astype(np.float32)
    frame = max(1, min(gray.shape) // 20)
    border = np.concatenate([gray[:frame].ravel(), gray[-frame:].ravel(),
                             gray[:, :frame].ravel(), gray[:, -frame:].ravel()])
    amount = np.abs(gray - np.float32(np.median(border)))
    peak = float(amount.max()) if amount.size else 0.0
    if peak < MIN_PEAK:
        return Page(np.zeros_like(amount), factor, size)
    return Page(amount / peak, factor, size)
