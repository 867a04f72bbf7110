"""png.py: valid PNG files (chunks, CRCs, colour type) whose pixels are exactly the array's, at
every level, read by PIL and by OpenCV (how Caffe decodes); levels trade size for time."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from lmdb_builder.png import LEVELS, encode_png


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def _pil(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("shape, gray_as_rgb, mode", [((13, 29), False, "L"), ((13, 29), True, "P"),
                                                       ((13, 29), "rgb", "RGB"), ((13, 29, 3), False, "RGB"),
                                                       ((1, 7), True, "P"), ((1, 7), "rgb", "RGB")])
def test_pixels_exact_at_every_level(rng, shape, gray_as_rgb, mode):
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    expected = np.repeat(pixels[:, :, np.newaxis], 3, axis=2) if gray_as_rgb else pixels
    for level in LEVELS:
        data = encode_png(pixels, level, gray_as_rgb)
        image = _pil(data)
        assert image.mode == mode and image.size == (shape[1], shape[0])
        if mode == "P":                                 # how DIGITS and datum.py read it
            image = image.convert("RGB")
        assert np.array_equal(np.asarray(image), expected), level
        # OpenCV as Caffe's DecodeDatumToCVMatNative: IMREAD_ANYCOLOR, colour comes out BGR
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR)
        assert np.array_equal(decoded, expected[:, :, ::-1] if expected.ndim == 3 else expected), level


def test_chunks_header_and_up_filter(rng):
    pixels = rng.integers(0, 256, (11, 6), dtype=np.uint8)
    chunks = _chunks(encode_png(pixels, 6, gray_as_rgb="rgb"))
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, method, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height, depth, colour, method, filtering, interlace) == (6, 11, 8, 2, 0, 0, 0)
    lines = np.frombuffer(zlib.decompress(chunks[1][1]), np.uint8).reshape(11, 1 + 18)
    assert (lines[:, 0] == 2).all()                            # every line filter 2 (Up)
    rgb = np.repeat(pixels[:, :, np.newaxis], 3, axis=2).reshape(11, 18)
    assert np.array_equal(lines[0, 1:], rgb[0])
    assert np.array_equal(lines[1:, 1:], (rgb[1:].astype(int) - rgb[:-1]) % 256)
    assert chunks[2][1] == b""


def test_grey_as_colour_is_a_grey_ramp_palette_of_the_grey_values(rng):
    pixels = rng.integers(0, 256, (5, 8), dtype=np.uint8)
    chunks = _chunks(encode_png(pixels, 0, gray_as_rgb=True))
    assert [kind for kind, _ in chunks] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (8, 5, 8, 3, 0, 0, 0)
    assert np.array_equal(np.frombuffer(chunks[1][1], np.uint8).reshape(256, 3),
                          np.repeat(np.arange(256)[:, np.newaxis], 3, axis=1))
    lines = np.frombuffer(zlib.decompress(chunks[2][1]), np.uint8).reshape(5, 9)
    assert (lines[:, 0] == 2).all() and np.array_equal(lines[0, 1:], pixels[0])
    assert np.array_equal(lines[1:, 1:], (pixels[1:].astype(int) - pixels[:-1]) % 256)


def test_levels_trade_size_and_stored_is_raw(rng):
    """Level 0 stores the filtered lines; compressed levels are much smaller on a smooth image."""
    ramp = np.add.outer(np.arange(40), np.arange(70)).astype(np.uint8)
    noisy = ramp.copy()
    noisy[rng.integers(0, 40, 25), rng.integers(0, 70, 25)] = rng.integers(0, 256, 25, dtype=np.uint8)
    sizes = {level: len(encode_png(noisy, level, gray_as_rgb=True)) for level in LEVELS}
    assert sizes[0] > 40 * (1 + 70)
    assert max(sizes[level] for level in range(1, 10)) < sizes[0] / 3
    assert sizes[9] <= sizes[2]


def test_same_bytes_every_call(rng):
    pixels = rng.integers(0, 256, (9, 14, 3), dtype=np.uint8)
    assert encode_png(pixels, 1) == encode_png(pixels.copy(), 1)


@pytest.mark.parametrize("pixels, level", [(np.zeros((4, 5), np.float32), 1), (np.zeros((4, 5, 4), np.uint8), 1),
                                           (np.zeros((0, 5), np.uint8), 1), (np.zeros((4, 5), np.uint8), 10)])
def test_refuses_what_it_cannot_write(pixels, level):
    with pytest.raises(ValueError):
        encode_png(pixels, level)
