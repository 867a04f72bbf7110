"""Blob values in every storage the Caffe flavours write: the one place that turns a BlobProto
into an array (weights, mean images and solver histories alike).

storage        fields                                       written by
-------------  -------------------------------------------  ---------------------------------------
float data     data (packed float32)                        BVLC Caffe, NVCaffe <= 0.15, NVCaffe
                                                            0.16+ with store_blobs_in_old_format,
                                                            DIGITS' mean.binaryproto, redigits
double data    double_data (packed float64)                 Caffe built for double
raw FLOAT      raw_data_type = FLOAT (1),   raw_data bytes  NVCaffe 0.16/0.17 (its default)
raw FLOAT16    raw_data_type = FLOAT16 (2), raw_data bytes  NVCaffe 0.16/0.17, fp16 nets
raw DOUBLE     raw_data_type = DOUBLE (0),  raw_data bytes  NVCaffe 0.16/0.17, double nets

raw_data holds count * (4 | 2 | 8) bytes, little endian (NVCaffe copies its memory), FLOAT16
being IEEE 754 half. Fields: BlobProto.raw_data_type 10, raw_diff_type 11, raw_data 12,
raw_diff 13 and the top-level enum Type {DOUBLE 0, FLOAT 1, FLOAT16 2, INT 3, UINT 4, BOOL 5}
(NVIDIA/caffe src/caffe/proto/caffe.proto, tags v0.16.1 to v0.17.4; BOOL from v0.17.0).
As in NVCaffe's Blob::FromProto, double_data wins over data, and data over raw_data; a raw blob
without raw_data_type, or of INT/UINT/BOOL, is refused. The shape is `shape.dim`, else the
legacy num/channels/height/width (V1 files, DIGITS' mean), else the values' own count.

Writing stays BVLC's (float `data`), which every reader understands.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import caffe_pb2
from .errors import PrototxtError

BlobProto = caffe_pb2.BlobProto
LEGACY_FIELDS = ("num", "channels", "height", "width")
RAW_DTYPES = {caffe_pb2.FLOAT: np.dtype("<f4"), caffe_pb2.FLOAT16: np.dtype("<f2"),
              caffe_pb2.DOUBLE: np.dtype("<f8")}
FLOAT_DATA, DOUBLE_DATA, EMPTY = "float data", "double data", "empty"


class BlobError(PrototxtError):
    """A blob whose values do not fill its shape (or cannot be read at all). `layer` (when
    known), `index`, `expected` and `found` say which blob and by how much."""

    def __init__(self, message: str, path: str | Path | None = None, layer: str | None = None,
                 index: int | None = None, expected: int | None = None, found: int | None = None):
        self.layer, self.index, self.expected, self.found = layer, index, expected, found
        who = " ".join(part for part in (f"layer '{layer}'" if layer is not None else "",
                                         f"blob {index}" if index is not None else "blob") if part)
        super().__init__(f"{who}: {message}", path, field=layer)


def blob_storage(blob: BlobProto) -> str:
    """Which storage holds the values: "float data", "double data", "raw FLOAT", "raw FLOAT16",
    "raw DOUBLE", "raw <TYPE>" for the types no reader supports, or "empty"."""
    if len(blob.double_data):
        return DOUBLE_DATA
    if len(blob.data):
        return FLOAT_DATA
    if blob.HasField("raw_data"):
        if not blob.HasField("raw_data_type"):
            return "raw (no raw_data_type)"
        return "raw " + caffe_pb2.Type.Name(blob.raw_data_type)
    return EMPTY


def blob_shape(blob: BlobProto) -> tuple[int, ...]:
    """The blob's shape: `shape.dim`, else the legacy num/channels/height/width, else (count,)
    of the values it holds."""
    if blob.HasField("shape"):
        return tuple(blob.shape.dim)
    if any(blob.HasField(f) for f in LEGACY_FIELDS):
        return (blob.num, blob.channels, blob.height, blob.width)
    if len(blob.double_data) or len(blob.data):
        return (len(blob.double_data) or len(blob.data),)
    dtype = RAW_DTYPES.get(blob.raw_data_type) if blob.HasField("raw_data_type") else None
    return (len(blob.raw_data) // dtype.itemsize if dtype is not None else 0,)


def blob_count(blob: BlobProto) -> int:
    count = 1
    for dim in blob_shape(blob):
        count *= dim
    return count


def blob_array(blob: BlobProto, where: str | Path | None = None, *, layer: str | None = None,
               index: int | None = None, dtype=np.float32) -> np.ndarray:
    """The blob's values in its shape, as `dtype` (float32 unless asked), from whichever storage
    holds them (module docstring). Values that do not fill the shape raise BlobError naming
    `where` (the file), the layer and blob index (when given), expected and found sizes."""
    shape = blob_shape(blob)
    count = int(np.prod(shape, dtype=np.int64))
    storage = blob_storage(blob)

    def fail(message, expected=None, found=None):
        raise BlobError(message, where, layer, index, expected, found)

    if storage in (DOUBLE_DATA, FLOAT_DATA):
        values = np.asarray(blob.double_data if storage == DOUBLE_DATA else blob.data,
                            dtype=np.float64 if storage == DOUBLE_DATA else np.float32)
        if values.size != count:
            fail(f"its shape {list(shape)} needs {count} values but the file holds {values.size} "
                 f"({storage})", count, values.size)
    elif storage == EMPTY:
        if count:
            fail(f"its shape {list(shape)} needs {count} values but the file holds none (no data, "
                 "double_data or raw_data)", count, 0)
        values = np.zeros(0, np.float32)
    else:
        if not blob.HasField("raw_data_type"):
            fail("raw_data without raw_data_type: the element type is unknown")
        raw_type = RAW_DTYPES.get(blob.raw_data_type)
        if raw_type is None:
            fail(f"raw_data of type {caffe_pb2.Type.Name(blob.raw_data_type)}: blob values are "
                 "DOUBLE, FLOAT or FLOAT16")
        expected, found = count * raw_type.itemsize, len(blob.raw_data)
        if found != expected:
            fail(f"its shape {list(shape)} needs {count} {storage[4:]} values = {expected} bytes "
                 f"of raw_data but the file holds {found} bytes", expected, found)
        return np.frombuffer(blob.raw_data, dtype=raw_type).astype(dtype).reshape(shape)  # writable
    return values.astype(dtype, copy=False).reshape(shape)


def describe_storage(blobs: Iterable[BlobProto]) -> str:
    """How a file stores its blobs, in words for the log: "NVIDIA Caffe raw FLOAT16 blobs",
    "BVLC float data blobs", or each storage with its count when they are mixed."""
    counts = Counter(blob_storage(b) for b in blobs)
    counts.pop(EMPTY, None)  # zero-size blobs say nothing about the writer
    if not counts:
        return "no blob values"

    def name(storage):
        return ("NVIDIA Caffe " if storage.startswith("raw") else "BVLC ") + storage

    if len(counts) == 1:
        return f"{name(next(iter(counts)))} blobs"
    return "mixed: " + ", ".join(f"{name(s)} ({n} blob{'s' * (n != 1)})"
                                 for s, n in counts.most_common())
