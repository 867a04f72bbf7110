"""DIGITS' image loading (PIL modes) and resize modes, against hand-computed small cases."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lmdb_builder.errors import LoadImageError
from lmdb_builder.images import is_image_file, load_image, resize_image


def _pil_resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize((width, height), Image.BILINEAR))


@pytest.fixture
def rgb(rng) -> np.ndarray:
    return rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)     # H=24, W=32


def test_same_size_is_not_resized(rgb):
    out = resize_image(Image.fromarray(rgb), 24, 32, 3, "fill")
    assert np.array_equal(out, rgb)


def test_squash_is_a_bilinear_resize(rgb):
    out = resize_image(Image.fromarray(rgb), 17, 9, 3, "squash")
    assert out.shape == (17, 9, 3)
    assert np.array_equal(out, _pil_resize(rgb, 17, 9))


def test_crop_wide_rounds_the_start_half_away(rgb):
    # rw = 32/16 = 2 > rh = 24/16 = 1.5: resize to 16 x round2(32/1.5 = 21.33) = 21,
    # start = round2((21 - 16) / 2 = 2.5) = 3 (Python 3 round would give 2)
    out = resize_image(Image.fromarray(rgb), 16, 16, 3, "crop")
    assert np.array_equal(out, _pil_resize(rgb, 16, 21)[:, 3:19])


def test_crop_tall(rgb):
    tall = np.ascontiguousarray(rgb.transpose(1, 0, 2))             # 32 x 24
    out = resize_image(Image.fromarray(tall), 16, 16, 3, "crop")
    assert np.array_equal(out, _pil_resize(tall, 21, 16)[3:19, :])


def test_equal_ratios_squash_in_every_mode(rng):
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    for mode in ("crop", "fill", "half_crop"):
        assert np.array_equal(resize_image(Image.fromarray(image), 16, 24, 3, mode),
                              _pil_resize(image, 16, 24))


def test_fill_pads_both_ends_with_the_same_seeded_noise(rgb):
    # rw = 2 > rh = 1.5: resize to round2(24/2) = 12 x 16; pad (16 - 12) // 2 = 2 rows each side
    out = resize_image(Image.fromarray(rgb), 16, 16, 3, "fill", rng=np.random.default_rng(5))
    noise = np.random.default_rng(5).integers(0, 255, (2, 16, 3), dtype=np.uint8)
    assert out.shape == (16, 16, 3)
    assert np.array_equal(out[2:14], _pil_resize(rgb, 12, 16))
    assert np.array_equal(out[:2], noise) and np.array_equal(out[14:], noise)
    assert out[:2].max() <= 254                                   # randint(0, 255) excludes 255


def test_fill_parity_bump(rng):
    image = rng.integers(0, 256, (24, 30), dtype=np.uint8)
    # rw = 30/16 = 1.875 > rh = 1.5: height round2(24/1.875 = 12.8) = 13, 16 - 13 odd -> 14, pad 1
    out = resize_image(Image.fromarray(image), 16, 16, 1, "fill", rng=np.random.default_rng(0))
    assert out.shape == (16, 16)
    assert np.array_equal(out[1:15], _pil_resize(image, 14, 16))
    assert np.array_equal(out[0], out[15])


def test_fill_tall_pads_columns(rng):
    image = rng.integers(0, 256, (32, 24), dtype=np.uint8)
    out = resize_image(Image.fromarray(image), 16, 16, 1, "fill", rng=np.random.default_rng(0))
    assert np.array_equal(out[:, 2:14], _pil_resize(image, 16, 12))
    assert np.array_equal(out[:, :2], out[:, 14:])


def test_half_crop_crops_one_axis_and_pads_the_other(rng):
    image = rng.integers(0, 256, (21, 32, 3), dtype=np.uint8)
    # rw = 2, rh = 21/16 = 1.3125, average 1.65625: width round2(19.32) = 19, height
    # round2(12.68) = 13 -> odd gap -> 14; crop start round2((19 - 16)/2 = 1.5) = 2; pad 1 row
    out = resize_image(Image.fromarray(image), 16, 16, 3, "half_crop", rng=np.random.default_rng(3))
    assert out.shape == (16, 16, 3)
    assert np.array_equal(out[1:15], _pil_resize(image, 14, 19)[:, 2:18])
    assert np.array_equal(out[0], out[15])


def test_grayscale_is_pil_luma(rgb):
    out = resize_image(Image.fromarray(rgb), 24, 32, 1)
    assert out.shape == (24, 32)
    assert np.array_equal(out, np.asarray(Image.fromarray(rgb).convert("L")))
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    assert np.abs(out - (r * 299 + g * 587 + b * 114) / 1000).max() <= 1


@pytest.mark.parametrize("mode", ["squash", "crop", "fill", "half_crop"])
def test_gray_to_colour_shortcut_equals_converting_first(rng, mode):
    gray = Image.fromarray(rng.integers(0, 256, (28, 20), dtype=np.uint8))
    fast = resize_image(gray, 37, 23, 3, mode, rng=np.random.default_rng(1))
    slow = resize_image(gray.convert("RGB"), 37, 23, 3, mode, rng=np.random.default_rng(1))
    assert fast.shape == (37, 23, 3) and np.array_equal(fast, slow)


def test_bad_arguments():
    image = Image.new("RGB", (4, 4))
    with pytest.raises(ValueError, match="resize_mode"):
        resize_image(image, 2, 2, 3, "stretch")
    with pytest.raises(ValueError, match="channels"):
        resize_image(image, 2, 2, 4)


# ---------------------------------------------------------------- loading

def test_modes_as_digits_loads_them(tmp_path):
    rgba = Image.new("RGBA", (4, 3), (10, 20, 30, 0))
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    rgba.save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (10, 20, 30)

    pal = Image.new("P", (4, 3), 1)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.save(tmp_path / "p.png", transparency=0)
    assert load_image(tmp_path / "p.png").getpixel((0, 0)) == (200, 100, 50)

    la = Image.new("LA", (4, 3), (40, 0))
    la.save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").mode == "L"
    assert load_image(tmp_path / "la.png").getpixel((0, 0)) == 255

    one = Image.new("1", (4, 3), 1)
    one.save(tmp_path / "one.png")
    assert load_image(tmp_path / "one.png").mode == "L"
    assert load_image(tmp_path / "one.png").getpixel((0, 0)) == 255

    cmyk = Image.new("CMYK", (4, 3), (0, 0, 0, 0))
    cmyk.save(tmp_path / "c.jpg")
    assert load_image(tmp_path / "c.jpg").mode == "RGB"


def test_unsupported_mode_corrupt_and_truncated_files(tmp_path):
    Image.fromarray(np.full((3, 4), 1000, np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(LoadImageError, match="not supported"):
        load_image(tmp_path / "deep.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(LoadImageError, match="text.png"):
        load_image(tmp_path / "text.png")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadImageError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")
    with pytest.raises(LoadImageError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_decompression_bomb_is_refused(tmp_path):
    Image.new("L", (32, 24)).save(tmp_path / "big.png")
    with pytest.raises(LoadImageError, match="decompression bomb"):
        load_image(tmp_path / "big.png", max_pixels=32 * 24 - 1)
    assert load_image(tmp_path / "big.png", max_pixels=32 * 24).size == (32, 24)


def test_extensions():
    assert is_image_file("A.PNG") and is_image_file("x.jpeg") and is_image_file("y.pgm")
    assert not is_image_file("labels.txt") and not is_image_file("a.gif")
