"""The mean image, as DIGITS' create_db computed and saved it (`_save_means`).

The resized uint8 train images (RGB HxWx3 or HxW, *before* encoding) are summed in float64;
then `mean = np.around(sum / count).astype(uint8)`: rounded to integers, half to even.
- `mean.binaryproto`: colour transposed to CHW and swapped to **BGR**, grayscale as 1xHxW; a
  `BlobProto` with the legacy fields `num=1, channels, height, width` (no `shape`) and `data` =
  the uint8 values as floats, flattened in C order.
- `mean.jpg`: the uint8 mean (RGB or L) saved by PIL with its default JPEG settings (display only).

The sum is kept in int64 here: every partial sum is an integer below 2**53, so it equals
DIGITS' float64 sum exactly, and partial sums from worker processes add up in any order.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from prototxt import caffe_pb2
from prototxt.blobs import blob_array
from prototxt.io import atomic_write, blob_shape, read_blob

from .errors import BuilderError


class MeanAccumulator:
    """Sum of uint8 images (HxW or HxWx3) and their count."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, image: np.ndarray) -> None:
        self.add_sum(image.astype(np.int64), 1)

    def add_sum(self, total: np.ndarray, count: int) -> None:
        """Add a partial sum of `count` images (e.g. from a worker)."""
        if count == 0:
            return
        if self.total is None:
            self.total = np.zeros(total.shape, np.int64)
        elif self.total.shape != total.shape:
            raise ValueError(f"image shape {total.shape} differs from {self.total.shape}")
        self.total += total
        self.count += count

    def mean(self) -> np.ndarray:
        """`np.around(sum / count).astype(uint8)`, in the images' own layout (HxW or HxWx3 RGB)."""
        if self.total is None or self.count == 0:
            raise BuilderError("no images were summed, so there is no mean image")
        return np.around(self.total.astype(np.float64) / self.count).astype(np.uint8)


def mean_to_blob(mean: np.ndarray) -> caffe_pb2.BlobProto:
    """BlobProto of a uint8 mean: CHW, BGR for colour, legacy num/channels/height/width."""
    data = mean.transpose(2, 0, 1)[::-1] if mean.ndim == 3 else mean[np.newaxis]
    blob = caffe_pb2.BlobProto()
    blob.num = 1
    blob.channels, blob.height, blob.width = data.shape
    blob.data.extend(np.ascontiguousarray(data).astype(np.float64).ravel().tolist())
    return blob


def write_mean(mean: np.ndarray, binaryproto: str | Path | None = None,
               jpg: str | Path | None = None) -> None:
    """Save a uint8 mean (HxW or HxWx3 RGB) as mean.binaryproto and/or mean.jpg, atomically."""
    if binaryproto is not None:
        atomic_write(binaryproto, mean_to_blob(mean).SerializeToString())
    if jpg is not None:
        buf = io.BytesIO()
        Image.fromarray(mean).save(buf, format="JPEG")
        atomic_write(jpg, buf.getvalue())


def read_mean(path: str | Path) -> np.ndarray:
    """A mean.binaryproto as a float32 CxHxW array (BGR for colour, as stored)."""
    blob = read_blob(path)
    shape = blob_shape(blob)
    if len(shape) == 4:
        if shape[0] != 1:
            raise BuilderError(f"a mean blob has num 1, this one {shape}", path)
        shape = shape[1:]
    if len(shape) != 3:
        raise BuilderError(f"expected a 1xCxHxW mean blob, got shape {shape}", path)
    return blob_array(blob, path).reshape(shape)  # any storage: BVLC data, NVCaffe raw_data


def compute_mean(db_path: str | Path) -> np.ndarray:
    """The DIGITS mean (uint8 CxHxW, BGR) of an existing LMDB, from its decoded records.

    For png and raw DBs this equals the mean DIGITS saved; for jpg DBs DIGITS summed the
    pixels before JPEG encoding, so the result may differ slightly.
    """
    from .reader import DatumDB   # local import: reader depends on datum only

    acc = MeanAccumulator()
    with DatumDB(db_path) as db:
        for array, _ in db:
            acc.add(array.transpose(1, 2, 0))
    return acc.mean().transpose(2, 0, 1)
