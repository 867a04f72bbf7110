"""Images as DIGITS loaded and resized them (`digits/utils/image.py`: load_image, resize_image).

Loading (PIL) keeps `L` and `RGB`; `1` -> `L`; `LA` is pasted on white into `L`; `CMYK` and
`YCbCr` -> `RGB`; `P` and `RGBA` (and Pillow's newer `PA`) are pasted on a white RGB background;
any other mode (16-bit, float) is refused. Images of more than `max_pixels` pixels are refused
as decompression bombs.

Resizing first converts the mode (channels 1 -> PIL `L`, ITU-R 601-2 luma
`L = R*299/1000 + G*587/1000 + B*114/1000`; channels 3 -> `RGB`) and gives a uint8 HxW or HxWx3
RGB array; an image already HxW is returned as is. Otherwise, with ratios
`rw = src_w / W`, `rh = src_h / H` and round2 = Python 2 round (half away from zero):

- squash (and every mode when rw == rh): bilinear resize straight to HxW;
- crop: resize by the smaller ratio (keeps the aspect, covers the target), e.g. rw > rh:
  `(H, round2(src_w / rh))`, then cut the centre: `start = round2((size - target) / 2)`;
- fill: resize by the larger ratio (fits inside), e.g. rw > rh: `(round2(src_h / rw), W)`, the
  short side bumped by 1 when `(target - size)` is odd; then pad both ends of the short axis
  with the *same* block of uniform noise `randint(0, 255)` (0..254), `(target - size) // 2` wide;
- half_crop: resize by the average ratio `(rw + rh) / 2` (same parity bump on the short axis),
  cut the centre of the axis still too long, pad the other with noise as in fill.

The bilinear resize is `scipy.misc.imresize(interp='bilinear')` in DIGITS, which hands uint8
data to PIL's `Image.resize(BILINEAR)` unchanged; here PIL is called directly. DIGITS drew the
noise from the unseeded global NumPy generator; here the caller passes a seeded Generator.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from .errors import LoadImageError
from .split import round_half_away

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm")
RESIZE_MODES = ("squash", "crop", "fill", "half_crop")
DEFAULT_MAX_PIXELS = 89_478_485          # PIL's MAX_IMAGE_PIXELS (a 1 GiB RGBA image)

ImageSource = Union[str, os.PathLike, np.ndarray, Image.Image]


def is_image_file(name: str) -> bool:
    """DIGITS' extension test: the name ends (case-insensitively) in a supported extension."""
    return name.lower().endswith(SUPPORTED_EXTENSIONS)


def _open(path: Path, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open(path, "rb") as f:
                image = Image.open(f)
                width, height = image.size
                if width * height > max_pixels:
                    raise LoadImageError(
                        f"the image is {width}x{height} = {width * height} pixels, more than the "
                        f"limit of {max_pixels} (a decompression bomb?); raise the limit with "
                        "--max-pixels if it is genuine", path)
                image.load()
    except LoadImageError:
        raise
    except FileNotFoundError:
        raise LoadImageError("not found", path) from None
    except Image.DecompressionBombError as exc:
        raise LoadImageError(f"refused as a decompression bomb: {exc}", path) from None
    except Exception as exc:  # PIL signals a bad file with many types (OSError, SyntaxError, ...)
        raise LoadImageError(f"cannot read the image ({type(exc).__name__}: {exc})", path) from None
    return image


def load_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A PIL image of mode `L` or `RGB`, converted from the file's mode as DIGITS did.

    `source` is a file path, a PIL image, or a uint8 HxW / HxWx3 array (taken as `L` / `RGB`,
    as if DIGITS had loaded the PNG file it would have been saved to).
    """
    if isinstance(source, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(source, dtype=np.uint8))
    if isinstance(source, Image.Image):
        image, where = source, None
    else:
        where = Path(source)
        image = _open(where, max_pixels)
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode == "LA":
        new = Image.new("L", image.size, 255)
        new.paste(image, mask=image.convert("RGBA"))
        return new
    if mode in ("CMYK", "YCbCr"):
        return image.convert("RGB")
    if mode in ("P", "PA", "RGBA"):
        new = Image.new("RGB", image.size, (255, 255, 255))
        new.paste(image, mask=image.convert("RGBA"))
        return new
    raise LoadImageError(f'image mode "{mode}" not supported (DIGITS reads L, RGB, 1, LA, CMYK, '
                         "YCbCr, P and RGBA)", where)


def _to_mode(image: Image.Image | np.ndarray, channels: int | None) -> Image.Image:
    """DIGITS' mode conversion: channels 1 -> `L` (PIL luma), 3 -> `RGB`, None -> unchanged."""
    if isinstance(image, np.ndarray):
        array = image.astype(np.uint8, copy=False)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if channels == 1 and array.ndim == 3:
            # DIGITS' array path (not used for files): np.dot with 0.299/0.587/0.114, truncated
            array = np.dot(array[:, :, :3], [0.299, 0.587, 0.114]).astype(np.uint8)
        image = Image.fromarray(np.ascontiguousarray(array))
    if channels is None:
        if image.mode not in ("L", "RGB"):
            raise ValueError(f'unknown image mode "{image.mode}"')
        return image
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise ValueError(f"unsupported number of channels: {channels} (1 or 3)")
    return image if image.mode == mode else image.convert(mode)


def _imresize(image: Image.Image, height: int, width: int) -> np.ndarray:
    """scipy.misc.imresize(array, (height, width), interp='bilinear') on uint8 data."""
    return np.asarray(image.resize((width, height), Image.BILINEAR))


def resize_image(image: Image.Image | np.ndarray, height: int, width: int,
                 channels: int | None = None, resize_mode: str = "squash",
                 rng: np.random.Generator | None = None, *, keep_gray: bool = False) -> np.ndarray:
    """DIGITS' resize_image: a uint8 HxW (channels 1) or HxWx3 RGB array (formulas above).

    `rng` draws the noise of fill/half_crop (a fresh unseeded one if None). With `keep_gray`, a
    grey (`L`) image going to 3 channels comes back HxW, standing for the RGB image of three
    equal channels (the caller spreads it, or not, e.g. encoding it once); noise padding has
    three different channels, so an image padded with noise comes back HxWx3 all the same.
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f'resize_mode "{resize_mode}" not supported (one of {", ".join(RESIZE_MODES)})')
    if height <= 0 or width <= 0:
        raise ValueError(f"the target size must be positive, got {height}x{width}")
    # A grayscale source going to 3 channels is worked on as L and replicated at the end: PIL
    # resizes each band alike, so this equals converting to RGB first, at a third of the cost.
    expand = channels == 3 and isinstance(image, Image.Image) and image.mode == "L"
    pil = image if expand else _to_mode(image, channels)
    out_channels = 3 if (expand or pil.mode == "RGB") else 1

    def finish(array: np.ndarray, keep: bool = keep_gray) -> np.ndarray:
        if expand and not keep:
            array = np.repeat(array[:, :, np.newaxis], 3, axis=2)
        return array

    src_w, src_h = pil.size
    if src_h == height and src_w == width:
        return finish(np.array(pil))
    width_ratio = float(src_w) / width
    height_ratio = float(src_h) / height
    if resize_mode == "squash" or width_ratio == height_ratio:
        return finish(_imresize(pil, height, width))
    if resize_mode == "crop":
        if width_ratio > height_ratio:
            resize_height, resize_width = height, round_half_away(src_w / height_ratio)
        else:
            resize_width, resize_height = width, round_half_away(src_h / width_ratio)
        array = _imresize(pil, resize_height, resize_width)
        if width_ratio > height_ratio:
            start = round_half_away((resize_width - width) / 2.0)
            return finish(array[:, start:start + width])
        start = round_half_away((resize_height - height) / 2.0)
        return finish(array[start:start + height, :])

    if resize_mode == "fill":
        if width_ratio > height_ratio:
            resize_width = width
            resize_height = round_half_away(src_h / width_ratio)
            if (height - resize_height) % 2 == 1:
                resize_height += 1
        else:
            resize_height = height
            resize_width = round_half_away(src_w / height_ratio)
            if (width - resize_width) % 2 == 1:
                resize_width += 1
        array = _imresize(pil, resize_height, resize_width)
    else:  # half_crop
        new_ratio = (width_ratio + height_ratio) / 2.0
        resize_width = round_half_away(src_w / new_ratio)
        resize_height = round_half_away(src_h / new_ratio)
        if width_ratio > height_ratio and (height - resize_height) % 2 == 1:
            resize_height += 1
        elif width_ratio < height_ratio and (width - resize_width) % 2 == 1:
            resize_width += 1
        array = _imresize(pil, resize_height, resize_width)
        if width_ratio > height_ratio:
            start = round_half_away((resize_width - width) / 2.0)
            array = array[:, start:start + width]
        else:
            start = round_half_away((resize_height - height) / 2.0)
            array = array[start:start + height, :]
    array = finish(array, keep=False)

    rng = rng if rng is not None else np.random.default_rng()
    extra = (out_channels,) if out_channels > 1 else ()
    if width_ratio > height_ratio:
        padding = (height - resize_height) // 2
        noise = rng.integers(0, 255, (padding, width) + extra, dtype=np.uint8)
        return np.concatenate((noise, array, noise), axis=0)
    padding = (width - resize_width) // 2
    noise = rng.integers(0, 255, (height, padding) + extra, dtype=np.uint8)
    return np.concatenate((noise, array, noise), axis=1)
