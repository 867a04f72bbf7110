"""Calibration and check images for the deployment exports: a DIGITS dataset's val_db, fed as
the exported model's metadata says.

The records of val_db are Caffe Datums already stored at the dataset size (uint8 C x S_h x S_w,
BGR for colour), so what remains is Caffe's TEST-phase DataTransformer, driven by the metadata
that `export_onnx` wrote (table in onnx_export.py):

    x = (datum[:, t:t+H, l:l+W] - mean) * scale,    t = (S_h - H) // 2,  l = (S_w - W) // 2

with H x W the network input; no crop when the stored size equals it. `mean` is the mean image
(mean_type image: mean_data, cropped at the same place when it has the stored size, used as it
is when it has the input size) or the mean pixel per channel (mean_type pixel), or 0 (none).
This equals `inference`'s Preprocessor with crop="center" on the same picture (tested there:
tests/converter/test_quantize.py), which is what the network saw in validation. It lives here
because converter may not import inference (arrows point one way).

Records are taken evenly spread over the database (positions round(i * (n - 1) / (N - 1))), so
a few hundred images cover every class of a DIGITS val_db, whichever order its keys have.
"""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from lmdb_builder import BuilderError, DatumDB

from .errors import ConverterError

DEFAULT_IMAGES = 500


@dataclass(frozen=True, eq=False)
class CaffeTransform:
    """Caffe's TEST-phase transform for one network input (see the module docstring)."""
    channels: int
    height: int
    width: int
    mean_type: str = "none"                  # "image", "pixel" or "none"
    mean: np.ndarray | None = None           # C x h x w (image) or C x 1 x 1 (pixel), float32
    scale: float = 1.0

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], where: str | os.PathLike | None = None
                      ) -> "CaffeTransform":
        """From the metadata_props that export_onnx writes (input_shape, mean_*, scale)."""
        try:
            channels, height, width = (int(v) for v in meta["input_shape"].split("x"))
            mean_type = meta.get("mean_type", "none")
            mean = None
            if mean_type == "image":
                shape = tuple(int(v) for v in meta["mean_shape"].split("x"))
                mean = np.frombuffer(base64.b64decode(meta["mean_data"]), "<f4").reshape(shape)
            elif mean_type == "pixel":
                pixel = np.asarray(json.loads(meta["mean_pixel"]), np.float32)
                mean = np.broadcast_to(pixel, (channels,)).reshape(-1, 1, 1)
            scale = float(meta.get("scale", "1"))
        except (KeyError, ValueError, TypeError) as exc:
            raise ConverterError(f"the model's metadata does not say how to feed it ({exc}); "
                                 "export it with python -m converter onnx", where) from None
        return cls(channels, height, width, mean_type, mean, scale)

    def __call__(self, image: np.ndarray, where: str = "the image") -> np.ndarray:
        """One stored C x S_h x S_w image (uint8 or float, BGR) as the float32 C x H x W input."""
        c, sh, sw = image.shape
        if c != self.channels:
            raise ConverterError(f"{where} has {c} channels; the network takes {self.channels}")
        if sh < self.height or sw < self.width:
            raise ConverterError(f"{where} is {sh}x{sw}, smaller than the network input "
                                 f"{self.height}x{self.width}; Caffe crops, it does not enlarge")
        top, left = (sh - self.height) // 2, (sw - self.width) // 2
        x = image[:, top:top + self.height, left:left + self.width].astype(np.float32)
        if self.mean is not None:
            mean = self.mean
            if mean.shape[1:] == (sh, sw):
                mean = mean[:, top:top + self.height, left:left + self.width]
            elif mean.shape[1:] not in ((self.height, self.width), (1, 1)):
                raise ConverterError(f"the mean image is {mean.shape[1]}x{mean.shape[2]}; {where} "
                                     f"is {sh}x{sw} and the input {self.height}x{self.width}: "
                                     "Caffe needs the mean at one of those sizes")
            x = x - mean
        if self.scale != 1.0:
            x = x * np.float32(self.scale)
        return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Preprocessed images of a val_db with their labels."""
    images: np.ndarray       # N x C x H x W float32
    labels: np.ndarray       # N int64
    source: Path             # the LMDB folder
    total: int               # records in it

    def __len__(self) -> int:
        return len(self.images)

    def describe(self) -> str:
        return f"{self.source} ({len(self)} of {self.total} records, evenly spread)"


def find_val_db(dataset: str | os.PathLike) -> Path:
    """DATASET_DIR/val_db (a DIGITS dataset job folder), or DATASET_DIR itself when it is an LMDB."""
    folder = Path(dataset)
    for candidate in (folder / "val_db", folder):
        if (candidate / "data.mdb").is_file():
            return candidate
    raise ConverterError("no val_db with a data.mdb here; give a DIGITS dataset job folder "
                         "(train_db, val_db, mean.binaryproto) or an LMDB folder", folder)


def spread(total: int, count: int) -> np.ndarray:
    """`count` positions evenly spread over 0 .. total - 1 (all of them when count >= total)."""
    if count >= total:
        return np.arange(total)
    return np.unique(np.round(np.linspace(0, total - 1, count)).astype(np.int64))


def load_calibration(dataset: str | os.PathLike, transform: CaffeTransform,
                     count: int = DEFAULT_IMAGES) -> CalibrationSet:
    """`count` images of the dataset's val_db, spread evenly, through `transform`."""
    if count < 1:
        raise ConverterError(f"--calibration-images must be at least 1, not {count}")
    path = find_val_db(dataset)
    try:
        with DatumDB(path) as db:
            total = len(db)
            if total == 0:
                raise ConverterError("the database is empty; calibration needs images", path)
            images, labels = [], []
            for index in spread(total, count):
                image, label = db[int(index)]
                images.append(transform(image, f"record {int(index)} of {path}"))
                labels.append(label)
    except BuilderError as exc:
        raise ConverterError(f"cannot read the calibration images: {exc}", path) from None
    return CalibrationSet(np.stack(images), np.asarray(labels, np.int64), path, total)
