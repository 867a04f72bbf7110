"""Caffe's DataTransformer on one uint8 C x H x W image (data_transformer.cpp, Transform(Datum)).

    do_mirror = mirror and phase == TRAIN and Rand(2)          (drawn first, as Caffe does)
    h_off, w_off = Rand(H - crop + 1), Rand(W - crop + 1)      TRAIN with crop_size
                 = (H - crop) / 2, (W - crop) / 2 (integer)    TEST with crop_size
    out[c, h, w'] = (x[c, h_off + h, w_off + w] - mean[c, h_off + h, w_off + w]) * scale
                    with w' = crop - 1 - w when mirrored, else w

The mean file is indexed at the crop location, so it must have the datum's full C x H x W;
`mean_value` is per channel (one value serves every channel). Mean subtraction comes before
scaling. Random numbers come from a seeded NumPy generator, not Caffe's Boost stream, so the
crops and flips are Caffe's distribution, not its exact draws.

The work splits in two so that a GPU can do the float part (NVCaffe's `use_gpu_transform`):
`draw` + `crop_uint8` pick and cut the window in uint8 where the datum is decoded, and
`trainer.batch_transform` subtracts the mean at the window and scales a whole batch on its
device. `__call__` does all of it on one image in NumPy, the reference both must equal bit for
bit (the same float32 subtraction and multiplication, element by element).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError


class Draw(NamedTuple):
    """One image's random choices: flip it, and where its crop window starts."""
    mirror: bool
    h_off: int
    w_off: int


class DataTransformer:
    def __init__(self, param: caffe_pb2.TransformationParameter, phase: int,
                 mean: np.ndarray | None = None, seed: int | None = None, where: str = "<layer>"):
        """`mean`: the mean_file's blob as C x H x W (None when the layer has no mean_file)."""
        self.param, self.phase, self.where = param, phase, where
        self.scale = np.float32(param.scale)
        self.crop = int(param.crop_size)
        self.mirror = bool(param.mirror) and phase == caffe_pb2.TRAIN
        self.rng = np.random.default_rng(seed)
        if param.HasField("mean_file") and len(param.mean_value):
            raise PrototxtError("specify either mean_file or mean_value, not both", field=where)
        if param.HasField("mean_file") and mean is None:
            raise PrototxtError(f"mean_file {param.mean_file!r} was not loaded", field=where)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.mean_value = np.asarray(param.mean_value, dtype=np.float32)

    def reseed(self, seed: int | list[int] | None) -> None:
        """Restart the random stream (the trainer seeds each batch, so any batch can be made
        again after a resume or by another worker process)."""
        self.rng = np.random.default_rng(seed)

    def output_shape(self, channels: int, height: int, width: int) -> tuple[int, int, int]:
        return (channels, self.crop, self.crop) if self.crop else (channels, height, width)

    def check(self, shape: tuple[int, int, int]) -> None:
        """Refuse a mean or crop that does not fit a C x H x W datum (Caffe's CHECKs)."""
        channels, height, width = shape
        if self.mean is not None and self.mean.shape != tuple(shape):
            raise PrototxtError(f"the mean is {'x'.join(map(str, self.mean.shape))} but the data "
                                f"is {channels}x{height}x{width}; they must match",
                                self.param.mean_file or None, field=self.where)
        if self.mean is None and self.mean_value.size not in (0, 1, channels):
            raise PrototxtError(f"{self.mean_value.size} mean_value(s) for {channels} channels; "
                                "give one or one per channel", field=self.where)
        if self.crop and (self.crop > height or self.crop > width):
            raise PrototxtError(f"crop_size {self.crop} is larger than the data "
                                f"({height}x{width})", field=self.where)

    def draw(self, height: int, width: int) -> Draw:
        """This image's random choices, in Caffe's order: mirror first, then the crop offsets."""
        do_mirror = self.mirror and bool(self.rng.integers(2))
        if not self.crop:
            return Draw(do_mirror, 0, 0)
        if self.phase == caffe_pb2.TRAIN:
            h_off = int(self.rng.integers(height - self.crop + 1))
            w_off = int(self.rng.integers(width - self.crop + 1))
            return Draw(do_mirror, h_off, w_off)
        return Draw(do_mirror, (height - self.crop) // 2, (width - self.crop) // 2)

    def crop_uint8(self, image: np.ndarray, draw: Draw) -> np.ndarray:
        """The datum's pixels at the crop window, mirrored when drawn so: still uint8, before the
        mean and the scale (which `trainer.batch_transform` applies to a whole batch)."""
        h, w = (self.crop, self.crop) if self.crop else image.shape[1:]
        x = image[:, draw.h_off:draw.h_off + h, draw.w_off:draw.w_off + w]
        return x[:, :, ::-1] if draw.mirror else x

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Transform one uint8 C x H x W image into float32 C x h x w (the reference path)."""
        self.check(image.shape)
        x = image.astype(np.float32)
        if self.mean is not None:
            x = x - self.mean
        elif self.mean_value.size:
            x = x - self.mean_value.reshape(-1, 1, 1)
        draw = self.draw(image.shape[1], image.shape[2])
        x = self.crop_uint8(x, draw)  # the same window and flip, on the float pixels
        if self.scale != 1:
            x = x * self.scale
        return np.ascontiguousarray(x, dtype=np.float32)
