""".caffemodel <-> model blobs, by layer name (Caffe's Net::CopyTrainedLayersFrom and ToProto).

Loading copies each file layer's blobs into the model layer of the same name, in Caffe's blob
order, after checking the blob count and each shape. A legacy blob (num/channels/height/width,
as V1 files and old snapshots store them, e.g. InnerProduct (1, 1, N, K)) is reshaped when its
count matches. Layers only the model has keep their filler values (reported as `missing`),
layers only the file has are skipped (`extra`); `strict=True` makes either an error.
NVIDIA Caffe's 5-blob BatchNorm is recognised by its blob shapes and mapped:
0.15 (DIGITS) [scale, bias, mean, var, counter] and 0.16+ [mean, var, 1, scale, bias], whose
statistics are used as stored (see layers/batch_norm.py).

Saving writes what Caffe's snapshot writes: the net name, every layer's parameters with its
blobs as `shape` + float `data` (BVLC layout; NVIDIA BatchNorm layers loaded from a 5-blob file
are written back in their own layout), net-level inputs as an "input" Input layer (Caffe's
UpgradeNetInput). The file is written atomically. load(save(model)) is bit-exact and
save(load(file)) of a file we wrote is byte-identical.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from prototxt import blob_shape, caffe_pb2, read_caffemodel, write_binary
from .errors import ConverterError
from .fillers import constant_filler
from .layers.batch_norm import BLOB_ORDER, NVCAFFE_015, NVCAFFE_016, CaffeBatchNorm
from .net import CaffeNet
from .registry import Blob

log = logging.getLogger(__name__)
BlobProto = caffe_pb2.BlobProto
NetParameter = caffe_pb2.NetParameter


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)   # layers whose blobs were copied
    missing: list[str] = field(default_factory=list)  # model layers with blobs the file lacks
    extra: list[str] = field(default_factory=list)    # file layers with blobs the model lacks
    notes: list[str] = field(default_factory=list)    # reshapes, BatchNorm mappings

    def summary(self) -> str:
        text = f"loaded {len(self.loaded)} layers"
        if self.missing:
            text += f"; not in the file (kept their fillers): {', '.join(self.missing)}"
        if self.extra:
            text += f"; in the file but not the model (skipped): {', '.join(self.extra)}"
        return text


def blob_array(blob: BlobProto) -> np.ndarray:
    """The blob's values (float data or double_data) in its shape, as float32."""
    values = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    return values


def _is_legacy(blob: BlobProto) -> bool:
    return not blob.HasField("shape") and any(
        blob.HasField(f) for f in ("num", "channels", "height", "width"))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def array_blob(array: np.ndarray) -> BlobProto:
    """A BlobProto with `shape` and packed float `data` (built from raw bytes: fast)."""
    blob = BlobProto()
    blob.shape.SetInParent()
    blob.shape.dim.extend(int(d) for d in array.shape)
    raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
    blob.MergeFromString(b"\x2a" + _varint(len(raw)) + raw)  # field 5 (data), packed
    return blob


def _nvcaffe_layout(blobs, channels: int) -> str | None:
    counts = [int(np.prod(blob_shape(b))) for b in blobs]
    if counts[4] == 1 and counts[2] == channels:
        return NVCAFFE_015
    if counts[2] == 1 and counts[3] == channels:
        return NVCAFFE_016
    return None


def _remap_batchnorm(model: CaffeNet, index: int, layout: str) -> None:
    info = model.layer_info[index]
    getattr(model, info.module).make_affine(layout)
    zero, one = constant_filler(0.0), constant_filler(1.0)
    fillers = {"weight": one, "scale_factor": one}
    model.layer_info[index] = info._replace(
        blobs=tuple(Blob(name, fillers.get(name, zero)) for name in BLOB_ORDER[layout]))


def load_caffemodel(model: CaffeNet, source: str | os.PathLike | NetParameter,
                    strict: bool = False) -> LoadReport:
    """Copy trained blobs into `model` by layer name; see the module docstring."""
    where = str(source) if not isinstance(source, NetParameter) else "<caffemodel>"
    weights = source if isinstance(source, NetParameter) else read_caffemodel(source)
    report = LoadReport()
    index = {info.name: i for i, info in enumerate(model.layer_info)}
    seen = set()
    for layer in weights.layer:
        if not len(layer.blobs):
            continue
        i = index.get(layer.name)
        if i is None or not model.layer_info[i].blobs:
            report.extra.append(layer.name)
            continue
        seen.add(layer.name)
        info = model.layer_info[i]
        module = getattr(model, info.module)
        if isinstance(module, CaffeBatchNorm) and len(layer.blobs) == 5 and len(info.blobs) != 5:
            layout = _nvcaffe_layout(layer.blobs, module.channels)
            if layout is None:
                raise ConverterError("5 BatchNorm blobs in a layout this converter does not know "
                                     f"(shapes {[blob_shape(b) for b in layer.blobs]})", where,
                                     layer=layer.name, layer_type=info.type)
            _remap_batchnorm(model, i, layout)
            report.notes.append(f"{layer.name}: NVIDIA Caffe BatchNorm ({layout}) mapped")
        targets = model.caffe_blobs(layer.name)
        if len(layer.blobs) != len(targets):
            raise ConverterError(f"the file has {len(layer.blobs)} blobs for this layer, the model "
                                 f"{len(targets)} (incompatible number of blobs)", where,
                                 layer=layer.name, layer_type=info.type)
        for j, (blob, target) in enumerate(zip(layer.blobs, targets)):
            _copy(blob, target, j, layer.name, info.type, where, report)
        report.loaded.append(layer.name)
    report.missing = [info.name for info in model.layer_info if info.blobs and info.name not in seen]
    if strict and (report.missing or report.extra):
        raise ConverterError(f"the weights do not match the net: {report.summary()}", where)
    for line in ([report.summary()] if report.missing or report.extra else []) + report.notes:
        log.info("%s: %s", where, line)
    return report


def _copy(blob, target, j, name, layer_type, where, report) -> None:
    shape, want = tuple(blob_shape(blob)), tuple(target.shape)
    values = blob_array(blob)
    if values.size != int(np.prod(shape)):
        raise ConverterError(f"blob {j} holds {values.size} values but its shape {list(shape)} "
                             f"needs {int(np.prod(shape))}", where, layer=name, layer_type=layer_type)
    if shape != want:
        if not (_is_legacy(blob) and values.size == int(np.prod(want))):
            raise ConverterError(
                f"cannot copy blob {j}: shape mismatch, the file has {list(shape)}, the model "
                f"{list(want)}. To learn this layer's parameters from scratch rather than copying "
                "them from a saved net, rename the layer", where, layer=name, layer_type=layer_type)
        report.notes.append(f"{name}: blob {j} legacy shape {list(shape)} read as {list(want)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(values.reshape(want)).to(target.dtype))


def to_net_parameter(model: CaffeNet) -> NetParameter:
    """The model as Caffe's Net::ToProto writes it (layers with parameters and blobs)."""
    net = NetParameter()
    if model.net.HasField("name"):
        net.name = model.net.name
    if len(model.net.input):
        layer = net.layer.add(name="input", type="Input", top=list(model.net.input))
        for name in model.net.input:
            layer.input_param.shape.add(dim=list(model.input_shapes[name]))
    blobs = {info.name: info for info in model.layer_info}
    for source in model.net.layer:
        layer = net.layer.add()
        layer.CopyFrom(source)
        layer.ClearField("blobs")
        info = blobs.get(source.name)
        if info is not None and info.blobs:
            for tensor in model.caffe_blobs(source.name):
                layer.blobs.append(array_blob(tensor.detach().cpu().numpy()))
    return net


def save_caffemodel(model: CaffeNet, path: str | os.PathLike) -> str:
    """Write the model's blobs as a .caffemodel (atomically); returns the path."""
    return str(write_binary(to_net_parameter(model), path))
