"""PNG records decode to the same CxHxW BGR pixels through OpenCV's fast path and through PIL,
for every kind of PNG: the fast path takes 8-bit grey, RGB and palette images and leaves the
rest (alpha, transparency, 16-bit, 1-bit) to PIL."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lmdb_builder import datum as datum_module
from lmdb_builder.datum import _decode_image, _decode_png_opencv
from lmdb_builder.png import encode_png

H, W = 13, 21  # non-square, odd


def _png(image: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **save)
    return buf.getvalue()


def _cases() -> dict[str, tuple[bytes, bool]]:
    """name -> (PNG bytes, whether the fast path takes it)."""
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, (H, W), dtype=np.uint8)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    palette = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=37)
    with_alpha = palette.copy()
    with_alpha.info["transparency"] = 3
    return {
        "grey": (_png(Image.fromarray(gray)), True),
        "rgb": (_png(Image.fromarray(rgb)), True),
        "rgb, PIL optimize": (_png(Image.fromarray(rgb), optimize=True), True),
        "palette": (_png(palette), True),
        "grey-ramp palette (png.py)": (encode_png(gray, 1, "palette"), True),
        "rgb (png.py)": (encode_png(rgb, 1), True),
        "grey (png.py, level 0)": (encode_png(gray, 0), True),
        "palette with transparency": (_png(with_alpha), False),
        "grey + alpha": (_png(Image.fromarray(np.stack([gray, gray], -1), "LA")), False),
        "rgba": (_png(Image.fromarray(rgba, "RGBA")), False),
        "16-bit grey": (_png(Image.fromarray(gray.astype(np.uint16) * 257)), False),
        "1-bit": (_png(Image.fromarray(gray > 127)), False),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_and_pil_give_the_same_pixels(name, monkeypatch):
    data, fast = CASES[name]
    taken = _decode_png_opencv(data)
    assert (taken is not None) == fast
    got = _decode_image(data)
    monkeypatch.setattr(datum_module, "cv2", None)  # PIL only
    assert _decode_png_opencv(data) is None
    want = _decode_image(data)
    assert got.dtype == want.dtype == np.uint8 and got.flags.c_contiguous
    assert got.shape == want.shape and got.shape[1:] == (H, W)
    np.testing.assert_array_equal(got, want)


def test_not_a_png_and_damaged_png_are_left_to_pil():
    assert _decode_png_opencv(b"\xff\xd8\xff not a png") is None
    truncated = CASES["rgb"][0][:60]
    assert _decode_png_opencv(truncated) is None  # OpenCV gives up; PIL raises its own error
    with pytest.raises(Exception):
        _decode_image(truncated)
