"""ONNX export of a deploy net with trained weights, checked against ONNX Runtime.

    python -m converter onnx --job MODEL_DIR --out model.onnx
    python -m converter onnx --model deploy.prototxt --weights snapshot.caffemodel --out model.onnx

A model job folder as DIGITS' "Download Model" has it is enough: deploy.prototxt, the newest
snapshot_iter_N.caffemodel, mean.binaryproto, labels.txt, info.json (train_val.prototxt, when
present, gives the input scale). So is a model job folder as it sits on a DIGITS server, whose
labels and mean are in the dataset job beside it (digits_job.py: the lookup rules, --snapshot,
--dataset). The graph: opset >= 17, one input (the net's, e.g. "data",
N x C x H x W with a dynamic batch N), one output, the deploy net's Softmax top (class
probabilities). Ceil-mode pooling is written as Pad + pooling without ceil_mode (see
layers/pooling.py), LRN ACROSS_CHANNELS as ONNX LRN. onnx.checker runs on the result, and the
export compares PyTorch with ONNX Runtime (CPU) on random inputs (batch 1 and 3) and any real
inputs given; above `tolerance` (1e-4 max abs) it fails and writes nothing.

metadata_props (all strings) carry what a consumer needs to feed the model, DIGITS' way:

| key | value |
|---|---|
| labels | JSON list of class names (labels.txt, one per line) |
| input_name, output_name | the graph's input and output names |
| input_shape | C x H x W the network takes, e.g. "3x224x224" |
| channel_order | "BGR" for 3 channels (Caffe/DIGITS order), "GRAY" for 1 |
| resize_mode | DIGITS' resize mode: squash (default), crop, fill, half_crop |
| dataset_image_size | H x W x C the dataset images were stored at, e.g. "256x256x3" |
| mean_type | "image", "pixel" or "none" |
| mean_pixel | JSON list, one mean per channel (in channel_order) |
| mean_shape, mean_data | the mean image: "CxHxW" and base64 float32 little-endian C-order values |
| scale | multiply after subtracting the mean (transform_param.scale, default 1) |
| preprocessing | the recipe in words |

Recipe (DIGITS' inference, facts P12): load the image in `channel_order`, resize the whole image
to H x W of input_shape with `resize_mode`, subtract the mean (the mean image resized to H x W as
well, or the per-channel mean), multiply by `scale`, feed as N x C x H x W float32.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prototxt import atomic_write, blob_shape, caffe_pb2, read_blob, read_net
from .caffemodel import blob_array, load_caffemodel
from .digits_job import JobFiles, find_job
from .errors import ConverterError
from .net import CaffeNet, build_model

log = logging.getLogger(__name__)
MIN_OPSET = 17


def read_labels(path: Path | None) -> list[str]:
    if path is None:
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _train_transform(path: Path | None) -> caffe_pb2.TransformationParameter | None:
    """The TEST-phase data layer's transform_param of train_val.prototxt (else TRAIN's)."""
    if path is None:
        return None
    found = None
    for layer in read_net(path).layer:
        if layer.type in ("Data", "ImageData") and layer.HasField("transform_param"):
            test = any(r.HasField("phase") and r.phase == caffe_pb2.TEST for r in layer.include)
            if test or found is None:
                found = layer.transform_param
    return found


def preprocessing_metadata(model: CaffeNet, files: JobFiles | None, mean_path: Path | None,
                           labels: list[str], resize_mode: str | None = None,
                           scale: float | None = None) -> dict[str, str]:
    """metadata_props for the exported model (table in the module docstring)."""
    (name,) = model.input_names
    shape = model.input_shapes[name]
    if len(shape) != 4:
        raise ConverterError(f"the input '{name}' must be N x C x H x W, not {list(shape)}",
                             model.source)
    channels = shape[1]
    info = files.info if files else {}
    transform = _train_transform(files.train_val if files else None)
    meta = {"labels": json.dumps(labels), "input_name": name,
            "input_shape": "x".join(map(str, shape[1:])),
            "channel_order": "BGR" if channels == 3 else "GRAY" if channels == 1 else "N/A",
            "resize_mode": resize_mode or info.get("image resize mode", "squash")}
    if "image dimensions" in info:
        meta["dataset_image_size"] = "x".join(map(str, info["image dimensions"]))
    if scale is None:
        scale = transform.scale if transform is not None else 1.0
    meta["scale"] = repr(float(scale))
    kind = info.get("mean subtraction")  # DIGITS' choice: image, pixel or none
    pixel = None
    if transform is not None and len(transform.mean_value):
        kind = "pixel"
        pixel = list(transform.mean_value) * (channels if len(transform.mean_value) == 1 else 1)
    if mean_path is not None and kind != "none" and pixel is None:
        mean = read_mean(mean_path, channels)
        pixel = mean.reshape(channels, -1).mean(1).tolist()
        if kind != "pixel":
            kind = "image"
            meta["mean_shape"] = "x".join(map(str, mean.shape))
            meta["mean_data"] = base64.b64encode(mean.tobytes()).decode("ascii")
    if pixel is not None:
        meta["mean_pixel"] = json.dumps([float(v) for v in pixel])
    meta["mean_type"] = kind if kind in ("image", "pixel") and pixel is not None else "none"
    meta["preprocessing"] = (
        f"load as {meta['channel_order']}; resize to {shape[2]}x{shape[3]} ({meta['resize_mode']}); "
        + ("subtract mean_data resized to the same size; " if meta["mean_type"] == "image" else
           "subtract mean_pixel per channel; " if meta["mean_type"] == "pixel" else "")
        + f"multiply by {meta['scale']}; feed N x {channels} x {shape[2]} x {shape[3]} float32")
    return meta


def read_mean(path: Path, channels: int) -> np.ndarray:
    """mean.binaryproto as a C x H x W float32 array (DIGITS writes 1 x C x H x W, BGR)."""
    blob = read_blob(path)
    dims = blob_shape(blob)
    if len(dims) < 3 or dims[-3] != channels:
        raise ConverterError(f"the mean blob has shape {list(dims)}; the net takes {channels} "
                             "channels", path)
    return blob_array(blob, path).reshape(-1, *dims[-3:])[0].astype("<f4")


class _Probabilities(nn.Module):
    def __init__(self, model: CaffeNet, output: str):
        super().__init__()
        self.model, self.output = model, output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[self.output]


def probability_output(model: CaffeNet) -> str:
    """The deploy net's Softmax top among the net outputs."""
    softmax = [top for info in model.layer_info if info.type == "Softmax" for top in info.tops
               if top in model.outputs]
    if len(softmax) != 1:
        raise ConverterError(f"the deploy net must end in one Softmax layer whose top is a net "
                             f"output (outputs: {', '.join(model.outputs) or 'none'})", model.source)
    return softmax[0]


@dataclass
class ExportReport:
    path: Path
    opset: int
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    differences: dict[str, float]  # check input -> max abs difference PyTorch vs ORT

    def summary(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.differences.items())
        return (f"wrote {self.path} (opset {self.opset}, input {self.input_name} "
                f"Nx{'x'.join(map(str, self.input_shape[1:]))}, output {self.output_name}); "
                f"PyTorch vs ONNX Runtime max abs difference: {diffs}")


def ort_session(data: bytes):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def export_onnx(model: CaffeNet, out: str | os.PathLike, metadata: dict[str, str] | None = None,
                opset: int = MIN_OPSET, tolerance: float = 1e-4,
                real_inputs: np.ndarray | None = None, seed: int = 0,
                output: str | None = None) -> ExportReport:
    """Export `model` (a deploy CaffeNet with weights) to `out`; see the module docstring.
    `output` defaults to the Softmax top (class probabilities)."""
    import onnx

    if opset < MIN_OPSET:
        raise ConverterError(f"opset {opset} is too old; use {MIN_OPSET} or newer")
    output = output or probability_output(model)
    (name,) = model.input_names
    shape = model.input_shapes[name]
    model.eval()
    wrapper = _Probabilities(model, output).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapper, (torch.zeros(shape),), buffer, dynamo=False,
                              opset_version=opset, input_names=[name], output_names=[output],
                              dynamic_axes={name: {0: "batch"}, output: {0: "batch"}},
                              do_constant_folding=True)
        except Exception as exc:  # the exporter's own errors
            raise ConverterError(f"ONNX export failed: {exc}", model.source) from exc
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name, proto.producer_version = "redigits converter", "0.1.0"
    proto.doc_string = f"{model.net.name or 'Caffe net'} converted from {model.source}"
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=str(value))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ConverterError(f"onnx.checker rejects the export: {exc}", model.source) from None
    data = proto.SerializeToString()
    differences = self_check(model, output, data, shape, real_inputs, seed)
    worst = max(differences.values())
    if not worst <= tolerance:  # also catches NaN
        raise ConverterError("PyTorch and ONNX Runtime disagree: max abs difference "
                             + ", ".join(f"{k} {v:.3g}" for k, v in differences.items())
                             + f" (tolerance {tolerance:g}); nothing was written", model.source)
    out = atomic_write(out, data)
    return ExportReport(out, opset, name, shape, output, differences)


def self_check(model: CaffeNet, output: str, data: bytes, shape, real_inputs, seed) -> dict[str, float]:
    """Max abs difference of the probabilities, PyTorch vs ONNX Runtime, per check input."""
    session = ort_session(data)
    name = session.get_inputs()[0].name
    g = np.random.default_rng(seed)
    inputs = {"random batch 1": g.normal(0, 50, (1, *shape[1:])),
              "random batch 3": g.normal(0, 50, (3, *shape[1:]))}
    if real_inputs is not None:
        inputs["real inputs"] = real_inputs
    result = {}
    for label, x in inputs.items():
        x = np.ascontiguousarray(x, dtype=np.float32)
        with torch.no_grad():
            ours = model(torch.from_numpy(x))[output].numpy()
        (theirs,) = session.run(None, {name: x})
        result[label] = float(np.abs(ours - theirs).max())
    return result


def export_job(out: str | os.PathLike, job: str | os.PathLike | None = None,
               deploy: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
               mean: str | os.PathLike | None = None, labels: str | os.PathLike | None = None,
               resize_mode: str | None = None, scale: float | None = None, opset: int = MIN_OPSET,
               tolerance: float = 1e-4, real_inputs: np.ndarray | None = None,
               snapshot: int | None = None, dataset: str | os.PathLike | None = None,
               batchnorm: str | None = None) -> ExportReport:
    """Export a model job folder (ours, DIGITS' download, or a DIGITS server's: `snapshot` is
    the iteration N of snapshot_iter_N.caffemodel, `dataset` the dataset job folder; see
    digits_job.py), or a deploy prototxt + weights (+ mean, labels). `batchnorm` (bvlc,
    nvcaffe-0.15, nvcaffe-0.16) names the Caffe that wrote the weights where BatchNorm blobs
    leave the layout open (load_caffemodel)."""
    if job is None and (snapshot is not None or dataset is not None):
        raise ConverterError("--snapshot and --dataset go with --job MODEL_DIR")
    files = find_job(job, snapshot, dataset, labels_given=bool(labels),
                     mean_given=bool(mean)) if job is not None else None
    if files is None:
        if deploy is None or weights is None:
            raise ConverterError("give --job MODEL_DIR, or --model deploy.prototxt and --weights "
                                 "x.caffemodel")
        files = JobFiles(Path(deploy), Path(weights))
    elif resize_mode is None and "image resize mode" not in files.info:
        log.warning("%s: the resize mode is not recorded here (DIGITS keeps it in the dataset "
                    "job's status.pickle, which is never read); assuming DIGITS' default, squash; "
                    "give --resize-mode if the dataset used another", job)
    mean_path = Path(mean) if mean else files.mean
    label_list = read_labels(Path(labels) if labels else files.labels)
    model = build_model(files.deploy, "TEST")
    report = load_caffemodel(model, files.weights, batchnorm=batchnorm)
    if report.missing:
        raise ConverterError(f"the weights lack layers of the deploy net: "
                             f"{', '.join(report.missing)}", files.weights)
    meta = preprocessing_metadata(model, files, mean_path, label_list, resize_mode, scale)
    classes = model.blob_shapes()[probability_output(model)]
    if label_list and classes[-1] != len(label_list):
        raise ConverterError(f"the net outputs {classes[-1]} classes but the labels file has "
                             f"{len(label_list)}", files.labels or labels)
    meta["output_name"] = probability_output(model)
    return export_onnx(model, out, meta, opset, tolerance, real_inputs)
