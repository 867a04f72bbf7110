"""PNG files written here, fast: the 8-bit `L` / `RGB` images of a dataset's records.

Caffe and DIGITS read decoded pixels, so how a PNG is compressed is free; only the pixels count.
PIL's encoder at its default settings (zlib level 6, the best of five filters chosen per row) was
about 60 % of a 256x256x3 build. This writer makes a valid PNG (PNG spec, 2nd edition) quicker:

- signature, `IHDR` (width, height, bit depth 8, colour type 0 = grey, 2 = RGB or 3 = palette,
  deflate, filter method 0, no interlace), [`PLTE`], one `IDAT`, `IEND`; each chunk
  `length, type, data, CRC-32(type + data)`;
- every scanline with filter 2 (Up): `Filt(x) = Orig(x) - Orig(x above) mod 256`, the line above
  the first being zeros. One vectorised subtraction per image; on images scaled up from small
  ones (MNIST 28 -> 256) rows repeat their neighbours, so Up compresses about as well as PIL's
  per-row choice;
- the filtered lines as one zlib stream, at `level` on zlib's scale (below).

A greyscale image stored with 3 channels (DIGITS' "Color" for MNIST) is the RGB image of three
equal channels. DIGITS wrote it as an RGB PNG (colour type 2); here it is an 8-bit palette PNG
(colour type 3) whose palette is the grey ramp, entry i = (i, i, i), and whose indices are the
grey values: a third of the bytes to filter and compress, no HxWx3 copy. Decoders expand a palette
to RGB, so the pixels are DIGITS' exactly: OpenCV's imdecode (Caffe's DecodeDatumToCVMatNative,
IMREAD_ANYCOLOR) gives 3-channel BGR, PIL's `convert("RGB")` (DIGITS, datum.py) RGB. (Only a
reader that takes PIL's palette indices as the image, `np.asarray(Image.open(...))`, sees HxW.)
`gray_as_rgb="rgb"` writes colour type 2 with the three channels spread instead.

Levels (10,000 MNIST test digits at 256x256x3, CPU time per image on a busy 2-core AVX-512 EPYC;
PIL's default 4.4 ms and 9.8 KB, OpenCV's imencode as convert_imageset calls it 1.3 ms, 19 KB):

| level | deflate by | palette (grey) ms | KB | RGB ms | KB |
|---|---|---|---|---|---|
| 0 | zlib, stored (no compression) | 0.06 | 67 | 0.6 | 197 |
| 1 (default) | ISA-L level 1 (`isal` package) | 0.08 | 7.4 | 0.2 | 11 |
| 2 / 6 / 9 | zlib at that level | 0.3 / 0.8 / 2.4 | 7.5 / 6.6 / 6.3 | 0.8 / 1.7 / 5.8 | 11 / 7.8 / 7.1 |

ISA-L picks its code path by CPU, so level 1 bytes may differ between machines (never between
runs or worker processes on one machine); the pixels never differ.
"""
from __future__ import annotations

import struct
import zlib
from typing import Literal, Union

import numpy as np
from isal import isal_zlib

LEVELS = range(10)
DEFAULT_LEVEL = 1
SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILTER_UP = 2
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
GrayAsRgb = Union[bool, Literal["palette", "rgb"]]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def deflate(data: bytes | memoryview, level: int) -> bytes:
    """A zlib stream of `data` at `level` (0 stored, 1 ISA-L level 1, 2-9 zlib)."""
    if level == 1:
        return isal_zlib.compress(data, 1)
    return zlib.compress(data, level)


_GRAY_PLTE = _chunk(b"PLTE", np.repeat(np.arange(256, dtype=np.uint8), 3).tobytes())


def _up_filtered(pixels: np.ndarray, out: np.ndarray) -> None:
    """Write Up-filtered rows of a 2-D uint8 array into `out` (same shape)."""
    out[0] = pixels[0]
    np.subtract(pixels[1:], pixels[:-1], out=out[1:])


def encode_png(pixels: np.ndarray, level: int = DEFAULT_LEVEL, gray_as_rgb: GrayAsRgb = False) -> bytes:
    """PNG bytes of a uint8 HxW (grey) or HxWx3 (RGB) array; with `gray_as_rgb`, an HxW array is
    written as the RGB image whose three channels equal it: a grey-ramp palette PNG (True or
    "palette") or an RGB PNG ("rgb")."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"expected a uint8 HxW or HxWx3 array, got {pixels.dtype} {pixels.shape}")
    if level not in LEVELS:
        raise ValueError(f"PNG level must be 0-9, got {level}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"cannot write an empty {height}x{width} image")
    if pixels.ndim == 2 and gray_as_rgb and gray_as_rgb != "rgb":
        lines = np.empty((height, 1 + width), np.uint8)
        lines[:, 0] = FILTER_UP
        _up_filtered(pixels, lines[:, 1:])
        header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
        return b"".join((SIGNATURE, _chunk(b"IHDR", header), _GRAY_PLTE,
                         _chunk(b"IDAT", deflate(lines.data, level)), _IEND))
    rgb = pixels.ndim == 3 or bool(gray_as_rgb)
    lines = np.empty((height, 1 + width * (3 if rgb else 1)), np.uint8)
    lines[:, 0] = FILTER_UP
    if pixels.ndim == 3:
        _up_filtered(pixels.reshape(height, width * 3), lines[:, 1:])
    elif gray_as_rgb:
        gray = np.empty((height, width), np.uint8)
        _up_filtered(pixels, gray)
        spread = lines[:, 1:].reshape(height, width, 3)
        for channel in range(3):                # three strided copies: faster than broadcasting
            spread[:, :, channel] = gray
    else:
        _up_filtered(pixels, lines[:, 1:])
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if rgb else 0, 0, 0, 0)
    return b"".join((SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", deflate(lines.data, level)),
                     _IEND))
