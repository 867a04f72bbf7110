"""Turning what callers hand us (a path, bytes, a PIL image, an array) into a PIL image safely.

Uploaded bytes are checked before PIL decodes the pixels: empty, not an image, more pixels than
`max_pixels` (a decompression bomb: a small PNG that expands to gigabytes), or truncated.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import Union

import numpy as np
from PIL import Image

from lmdb_builder import LoadImageError, load_image
from lmdb_builder.images import DEFAULT_MAX_PIXELS

from .errors import BadImageError

ImageInput = Union[str, os.PathLike, bytes, bytearray, np.ndarray, Image.Image]


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 where: str | None = None) -> Image.Image:
    """Decode image bytes (PNG, JPEG, BMP, ...) fully, refusing bad or oversized ones."""
    if not data:
        raise BadImageError("the image is empty (0 bytes)", where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise BadImageError(f"the image is {width}x{height} = {width * height} pixels, more "
                                    f"than the limit of {max_pixels}", where, status=413)
            image.load()
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"refused as a decompression bomb: {exc}", where, status=413) from None
    except Image.UnidentifiedImageError:
        raise BadImageError("not an image PIL can read (PNG, JPEG, BMP, GIF, ...)", where,
                            status=415) from None
    except Exception as exc:  # PIL reports damaged files with many types (OSError, SyntaxError)
        raise BadImageError(f"cannot decode the image ({type(exc).__name__}: {exc})", where) from None
    return image


def as_pil(source: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A PIL image as given (alpha kept); arrays are uint8 H x W, H x W x 3 (RGB) or x 4 (RGBA)."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        return decode_image(bytes(source), max_pixels)
    if isinstance(source, np.ndarray):
        array = source[:, :, 0] if source.ndim == 3 and source.shape[2] == 1 else source
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
            raise BadImageError(f"an image array is H x W, H x W x 3 or H x W x 4, not {source.shape}")
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(array))
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BadImageError(f"cannot read the image: {exc.strerror or exc}", source) from None
    return decode_image(data, max_pixels, str(source))


def load_digits_image(source: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """As DIGITS' load_image: mode L or RGB (alpha pasted on white, ...), errors as BadImageError."""
    try:
        return load_image(as_pil(source, max_pixels))
    except LoadImageError as exc:
        raise BadImageError(exc.message, exc.path) from None
