"""Blobs and .caffemodel files made the way each Caffe writes them (for the loader tests), built
with protobuf directly, not with the converter's own writer.

- BVLC Caffe (and NVIDIA Caffe 0.15, and 0.16+ with store_blobs_in_old_format): `shape` and
  packed float `data`;
- NVIDIA Caffe 0.16/0.17 by default: `shape`, `raw_data_type` and little-endian `raw_data`
  (FLOAT, FLOAT16 for fp16 nets, DOUBLE).
"""
from __future__ import annotations

import numpy as np

from prototxt import caffe_pb2

RAW = {"FLOAT": "<f4", "FLOAT16": "<f2", "DOUBLE": "<f8"}
STORAGES = ("data",) + tuple(RAW)


def kept(values, storage: str) -> np.ndarray:
    """What a writer of `storage` keeps of `values`, as float64."""
    return np.asarray(values, np.float64).astype(RAW.get(storage, "<f4")).astype(np.float64)


def blob(values, storage: str = "data", shape=None) -> caffe_pb2.BlobProto:
    values = np.asarray(values, np.float64)
    out = caffe_pb2.BlobProto()
    out.shape.dim.extend(values.shape if shape is None else shape)
    if storage == "data":
        out.data.extend(values.astype(np.float32).ravel().tolist())
    else:
        out.raw_data_type = getattr(caffe_pb2, storage)
        out.raw_data = values.astype(RAW[storage]).tobytes()
    return out


def weights(layers: dict[str, list[caffe_pb2.BlobProto]], types: dict[str, str] | None = None
            ) -> caffe_pb2.NetParameter:
    """A NetParameter whose layers carry `blobs` (as Net::ToProto writes a .caffemodel)."""
    net = caffe_pb2.NetParameter(name="hand-made")
    for name, blobs in layers.items():
        net.layer.add(name=name, type=(types or {}).get(name, "BatchNorm")).blobs.extend(blobs)
    return net
