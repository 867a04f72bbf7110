"""DIGITS' "Classify One" preprocessing, driven by the model's metadata (facts: digits.md 5.1).

    load (PIL; DIGITS' mode rules)  ->  resize to the *dataset* size with the dataset's resize
    mode (squash/crop/fill/half_crop, lmdb_builder)  ->  float32  ->  if the network input is
    smaller, resize the whole image to it (caffe.io.resize_image)  ->  C x H x W, RGB -> BGR for
    colour  ->  minus the mean (the mean image resized to the input size as well, or the mean
    pixel)  ->  times `scale`.

`crop="center"` replaces the second resize by Caffe's TEST-phase crop (offset (S - H) // 2 on
each axis, the mean image cropped at the same place). That is what the network saw in
validation, while DIGITS' Classify One squeezes the whole image; for crop networks (AlexNet 256
-> 227, GoogLeNet 256 -> 224) the two give different scores, the reason why validation accuracy
and Classify Many differ in DIGITS (NVIDIA/DIGITS#625). With no crop (dataset size = input
size) both are the same.

`scale` is applied (transform_param.scale of train_val.prototxt); DIGITS' Classify One left it
out, so a model trained with a transform_param scale scored wrongly there. DIGITS' own networks
scale inside the net (LeNet's Power layer) and have scale 1, where both agree.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from lmdb_builder import resize_image
from lmdb_builder.images import DEFAULT_MAX_PIXELS

from .errors import BadImageError, InferenceError
from .images import ImageInput, load_digits_image
from .metadata import ModelInfo
from .resize import caffe_resize, resize_mean

CROPS = ("resize", "center")


class Preprocessor:
    """Images -> the float32 N x C x H x W batch a model takes (see the module docstring)."""

    def __init__(self, info: ModelInfo, crop: str = "resize", seed: int = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        if crop not in CROPS:
            raise InferenceError(f"crop must be one of {', '.join(CROPS)}, not {crop!r}")
        self.info, self.crop, self.max_pixels = info, crop, max_pixels
        stored_h, stored_w = info.stored_size
        self.offset = (0, 0)
        if crop == "center":
            if stored_h < info.height or stored_w < info.width:
                raise InferenceError(f"crop='center' needs the dataset images ({stored_h}x{stored_w}) "
                                     f"at least as large as the input ({info.height}x{info.width})")
            self.offset = ((stored_h - info.height) // 2, (stored_w - info.width) // 2)
        self.mean = self._mean()
        # fill/half_crop pad with noise; a seeded stream makes results repeatable
        self.rng = np.random.default_rng(seed)

    def _mean(self) -> np.ndarray | None:
        """The mean to subtract, C x H x W (image) or C x 1 x 1 (pixel), or None."""
        info = self.info
        if info.mean_type == "pixel":
            pixel = np.asarray(info.mean_pixel, dtype=np.float32)
            return np.broadcast_to(pixel, (info.channels,)).reshape(-1, 1, 1).copy()
        if info.mean_type != "image" or info.mean_image is None:
            return None
        mean = info.mean_image
        if self.crop == "center" and mean.shape[1:] == info.stored_size:
            top, left = self.offset
            return mean[:, top:top + info.height, left:left + info.width].copy()
        return resize_mean(mean, info.height, info.width)

    def stored(self, image: ImageInput) -> np.ndarray:
        """Steps 1-2: DIGITS' load and resize to the dataset size: uint8 H x W (x 3, RGB).
        uint8 pixels already at the dataset's size and channels are what both steps would give
        back, and are taken as they are (the reader's windows, hundreds a string: the round
        trip through PIL was about 7 % of reading one)."""
        info = self.info
        height, width = info.stored_size
        if isinstance(image, np.ndarray) and image.dtype == np.uint8 \
                and image.shape == (height, width, *((3,) if info.channels == 3 else ())):
            return image
        try:
            pil = load_digits_image(image, self.max_pixels)
        except BadImageError as exc:
            if exc.path is None and isinstance(image, (str, os.PathLike)):
                raise BadImageError(exc.message, image, exc.status) from None  # name the file
            raise
        return resize_image(pil, height, width, info.channels, info.resize_mode, self.rng)

    def __call__(self, image: ImageInput) -> np.ndarray:
        """One image as the network's C x H x W float32 input."""
        info = self.info
        array = self.stored(image).astype(np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        if self.crop == "center":
            top, left = self.offset
            array = array[top:top + info.height, left:left + info.width]
        elif array.shape[:2] != (info.height, info.width):
            array = caffe_resize(array, info.height, info.width)
        array = array.transpose(2, 0, 1)
        if info.channels == 3:
            array = array[::-1]  # RGB -> BGR, Caffe's order
        if self.mean is not None:
            array = array - self.mean
        if info.scale != 1.0:
            array = array * np.float32(info.scale)
        return np.ascontiguousarray(array, dtype=np.float32)

    def batch(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Several images as one N x C x H x W float32 array."""
        if not len(images):
            return np.zeros((0, *self.info.input_shape), np.float32)
        return np.stack([self(image) for image in images])

