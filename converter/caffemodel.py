""".caffemodel <-> model blobs, by layer name (Caffe's Net::CopyTrainedLayersFrom and ToProto).

Loading copies each file layer's blobs into the model layer of the same name, in Caffe's blob
order, after checking the blob count and each shape. A legacy blob (num/channels/height/width,
as V1 files and old snapshots store them, e.g. InnerProduct (1, 1, N, K)) is reshaped when its
count matches. Layers only the model has keep their filler values (reported as `missing`),
layers only the file has are skipped (`extra`); `strict=True` makes either an error.
Blob values come in any storage (BVLC float data or NVIDIA Caffe 0.16+ raw FLOAT/FLOAT16/DOUBLE:
prototxt/blobs.py); the report and the log say which. A BatchNorm layer takes the layout its
blobs are in (BVLC; NVIDIA Caffe 0.15 [scale, bias, mean, var, 1]; 0.16+ [mean, var, factor]
with optional [scale, bias]; a 0.16 factor written as 0, NVIDIA/caffe#436), detected and logged
per layer; a layout that cannot be decided is an error (layers/batch_norm.py, detect_layout).

Saving writes what Caffe's snapshot writes: the net name, every layer's parameters with its
blobs as `shape` + float `data` (BVLC storage, whatever storage was read; NVIDIA BatchNorm
layers are written back in their own layout, a #436 factor as 1), net-level inputs as an
"input" Input layer (Caffe's UpgradeNetInput). The file is written atomically. load(save(model))
is bit-exact and save(load(file)) of a file we wrote is byte-identical.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from prototxt import blob_array, caffe_pb2, describe_storage, read_caffemodel, write_binary
from .errors import ConverterError
from .layers.batch_norm import CaffeBatchNorm, LayoutError, detect_layout, layout_blobs
from .net import CaffeNet

log = logging.getLogger(__name__)
BlobProto = caffe_pb2.BlobProto
NetParameter = caffe_pb2.NetParameter


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)   # layers whose blobs were copied
    missing: list[str] = field(default_factory=list)  # model layers with blobs the file lacks
    extra: list[str] = field(default_factory=list)    # file layers with blobs the model lacks
    notes: list[str] = field(default_factory=list)    # reshapes, BatchNorm layouts
    warnings: list[str] = field(default_factory=list)  # what was read other than as written
    storage: str = ""                                  # e.g. "NVIDIA Caffe raw FLOAT16 blobs"
    batchnorm: dict[str, str] = field(default_factory=dict)  # layer -> layout read

    def summary(self) -> str:
        text = f"loaded {len(self.loaded)} layers"
        if self.missing:
            text += f"; not in the file (kept their fillers): {', '.join(self.missing)}"
        if self.extra:
            text += f"; in the file but not the model (skipped): {', '.join(self.extra)}"
        return text


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


def load_caffemodel(model: CaffeNet, source: str | os.PathLike | NetParameter,
                    strict: bool = False, batchnorm: str | None = None) -> LoadReport:
    """Copy trained blobs into `model` by layer name; see the module docstring. `batchnorm`
    (bvlc, nvcaffe-0.15, nvcaffe-0.16) names the flavour where BatchNorm blobs leave it open."""
    where = str(source) if not isinstance(source, NetParameter) else "<caffemodel>"
    weights = source if isinstance(source, NetParameter) else read_caffemodel(source)
    report = LoadReport(storage=describe_storage(b for l in weights.layer for b in l.blobs))
    if isinstance(source, NetParameter):  # read_caffemodel logs a file's storage
        log.info("%s: weights: %s", where, report.storage)
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
        arrays = [blob_array(b, where, layer=layer.name, index=j)
                  for j, b in enumerate(layer.blobs)]
        if isinstance(getattr(model, info.module), CaffeBatchNorm):
            _load_batchnorm(model, i, arrays, where, report, batchnorm)
        else:
            targets = model.caffe_blobs(layer.name)
            if len(arrays) != len(targets):
                raise ConverterError(f"the file has {len(arrays)} blobs for this layer, the model "
                                     f"{len(targets)} (incompatible number of blobs)", where,
                                     layer=layer.name, layer_type=info.type)
            for j, (blob, values, target) in enumerate(zip(layer.blobs, arrays, targets)):
                _copy(blob, values, target, j, layer.name, info.type, where, report)
        report.loaded.append(layer.name)
    report.missing = [info.name for info in model.layer_info
                      if info.blobs and info.name not in seen]
    if strict and (report.missing or report.extra):
        raise ConverterError(f"the weights do not match the net: {report.summary()}", where)
    layouts = Counter(report.batchnorm.values())
    if layouts:
        report.notes.append("BatchNorm layouts (from the blobs): "
                            + ", ".join(f"{name} {n}" for name, n in layouts.most_common()))
    for line in ([report.summary()] if report.missing or report.extra else []) + report.notes:
        log.info("%s: %s", where, line)
    for line in report.warnings:
        log.warning("%s: %s", where, line)
    return report


def _load_batchnorm(model: CaffeNet, i: int, arrays: list[np.ndarray], where: str,
                    report: LoadReport, flavor: str | None) -> None:
    """Detect the layout of one BatchNorm layer's blobs, switch the module to it, copy."""
    info = model.layer_info[i]
    module: CaffeBatchNorm = getattr(model, info.module)
    param = next(l for l in model.net.layer if l.name == info.name).batch_norm_param
    try:
        found = detect_layout(arrays, module.channels, param, flavor)
    except LayoutError as exc:
        raise ConverterError(str(exc), where, layer=info.name, layer_type=info.type) from None
    if module.affine and not found.affine:  # NVIDIA Caffe refuses this too
        raise ConverterError(f"the file has {len(arrays)} blobs for this layer, the model "
                             f"{len(info.blobs)} (incompatible number of blobs: the prototxt asks "
                             "for NVIDIA Caffe's built-in scale and bias, the file has none)",
                             where, layer=info.name, layer_type=info.type)
    if (found.layout, found.affine) != (module.layout, module.affine):
        module.set_layout(found.layout, found.affine)
        model.layer_info[i] = info._replace(blobs=layout_blobs(found.layout, found.affine, param))
    with torch.no_grad():
        for values, target in zip(arrays, model.caffe_blobs(info.name)):
            target.copy_(torch.from_numpy(values.reshape(target.shape)).to(target.dtype))
        if found.factor is not None:
            module.scale_factor.fill_(found.factor)
    report.batchnorm[info.name] = found.layout
    if found.layout != "bvlc" or found.factor is not None:
        report.notes.append(f"{info.name}: {found.note}")
    if found.warning:
        report.warnings.append(f"layer '{info.name}': {found.warning}")


def _copy(blob, values, target, j, name, layer_type, where, report) -> None:
    shape, want = tuple(values.shape), tuple(target.shape)
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
