"""The two resizes of DIGITS' Classify One that lmdb_builder does not already do.

1. The image, from the dataset size to the network's input size (`caffe.io.resize_image`, used
   by DIGITS' transformer when the deploy input is smaller, e.g. 256 -> 227 for AlexNet):
   min-max normalise, then scikit-image `resize(order=1, mode='constant', cval=0)`, then scale
   back. That is bilinear interpolation without anti-aliasing, with output pixel `i` sampling
   the source at `(i + 0.5) * in/out - 0.5`; a sample partly outside the image blends with
   cval 0 *of the normalised image*, i.e. with the image's minimum. So: `min + bilinear(x - min)`
   with a zero border, as below.
2. The mean image, to the same size (`scipy.misc.imresize` on the uint8 mean: PIL bilinear).
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def _axis(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower source index (in a copy padded by one zero on each side) and weight of the upper."""
    coords = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    low = np.floor(coords)
    return low.astype(np.int64) + 1, coords - low


def caffe_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`caffe.io.resize_image(image, (height, width))` for an H x W x K float image; float32 out."""
    image = np.asarray(image, dtype=np.float64)
    if image.shape[:2] == (height, width):
        return image.astype(np.float32)
    low = float(image.min())
    padded = np.pad(image - low, ((1, 1), (1, 1)) + ((0, 0),) * (image.ndim - 2))
    rows, dr = _axis(image.shape[0], height)
    cols, dc = _axis(image.shape[1], width)
    dr = dr.reshape((-1, 1) + (1,) * (image.ndim - 2))
    dc = dc.reshape((1, -1) + (1,) * (image.ndim - 2))
    top = padded[rows][:, cols] * (1 - dc) + padded[rows][:, cols + 1] * dc
    bottom = padded[rows + 1][:, cols] * (1 - dc) + padded[rows + 1][:, cols + 1] * dc
    return (top * (1 - dr) + bottom * dr + low).astype(np.float32)


def resize_mean(mean: np.ndarray, height: int, width: int) -> np.ndarray:
    """A C x H x W mean image resized as DIGITS did for a crop network: rounded to uint8 (DIGITS'
    means already are), PIL bilinear per channel; float32 C x height x width out."""
    if mean.shape[1:] == (height, width):
        return mean.astype(np.float32)
    planes = [np.asarray(Image.fromarray(np.clip(np.rint(c), 0, 255).astype(np.uint8))
                         .resize((width, height), Image.BILINEAR)) for c in mean]
    return np.stack(planes).astype(np.float32)
