"""A Triton Inference Server model repository entry for an exported model.

    python -m converter onnx --job MODEL_DIR --out model.onnx --triton REPO_DIR
                             [--triton-name NAME] [--max-batch-size N]

writes

    REPO_DIR/NAME/config.pbtxt      the model configuration (below)
    REPO_DIR/NAME/1/model.onnx      the exported file (fp32, int8 or fp16), version 1
    REPO_DIR/NAME/labels.txt        one class name a line, from the model's `labels` metadata

as Triton's ONNX Runtime backend expects (model_config.proto of triton-inference-server/common):
`platform: "onnxruntime_onnx"` and `backend: "onnxruntime"`; one `input`/`output` entry per
graph input/output with its name, `data_type` (ONNX FLOAT -> TYPE_FP32, FLOAT16 -> TYPE_FP16,
...) and `dims`; the class-probability output names `label_filename`, so Triton's
classification extension answers with class names. With `max_batch_size` > 0 Triton adds the
batch dimension itself, so `dims` leave out the ONNX model's first (dynamic, "batch")
dimension; a model whose first dimension is fixed gets `max_batch_size: 0` and its full dims
(any other dynamic dimension is -1). `dynamic_batching {}` lets Triton gather requests into
batches up to max_batch_size (our exports have a dynamic batch dimension: onnx_export.py).

NAME defaults to the --out file's stem; an existing REPO_DIR/NAME is replaced whole, and the
new folder is built under a temporary name beside it and renamed when complete.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from prototxt import atomic_folder

from .errors import ConverterError

DEFAULT_MAX_BATCH = 32
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*$")

# onnx.TensorProto.DataType -> Triton's DataType name
TRITON_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16",
                5: "TYPE_INT16", 6: "TYPE_INT32", 7: "TYPE_INT64", 8: "TYPE_STRING",
                9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32",
                13: "TYPE_UINT64", 16: "TYPE_BF16"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str              # Triton's, e.g. TYPE_FP32
    dims: tuple[int, ...]       # without the batch dimension when max_batch_size > 0


@dataclass(frozen=True)
class TritonReport:
    folder: Path
    name: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: int

    def summary(self) -> str:
        return (f"wrote Triton model '{self.name}' in {self.folder} (config.pbtxt, 1/model.onnx"
                + (", labels.txt" if self.labels else "") + f"; max_batch_size "
                f"{self.max_batch_size}, dynamic batching)")


def _shape(value_info) -> list[int | None]:
    """Dims of a graph input/output; None for a dynamic one."""
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value_info.type.tensor_type.shape.dim]


def _spec(value_info, batched: bool, where) -> TensorSpec:
    elem = value_info.type.tensor_type.elem_type
    if elem not in TRITON_TYPES:
        raise ConverterError(f"'{value_info.name}' has ONNX element type {elem}, which Triton "
                             "has no data type for", where)
    dims = _shape(value_info)[1 if batched else 0:]
    return TensorSpec(value_info.name, TRITON_TYPES[elem],
                      tuple(-1 if d is None else d for d in dims))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def config_text(name: str, max_batch_size: int, inputs, outputs,
                label_output: str | None) -> str:
    """config.pbtxt in protobuf text format (Triton's ModelConfig)."""
    def tensors(kind: str, specs) -> list[str]:
        lines = [f"{kind} ["]
        for i, spec in enumerate(specs):
            lines += ["  {", f"    name: {_quote(spec.name)}", f"    data_type: {spec.data_type}",
                      f"    dims: [ {', '.join(map(str, spec.dims))} ]"]
            if spec.name == label_output:
                lines.append('    label_filename: "labels.txt"')
            lines.append("  }," if i < len(specs) - 1 else "  }")
        return lines + ["]"]
    lines = [f"name: {_quote(name)}", 'platform: "onnxruntime_onnx"', 'backend: "onnxruntime"',
             f"max_batch_size: {max_batch_size}", *tensors("input", inputs),
             *tensors("output", outputs), "dynamic_batching { }", ""]
    return "\n".join(lines)


def write_triton(model_path: str | os.PathLike, repo: str | os.PathLike,
                 name: str | None = None, max_batch_size: int | None = None) -> TritonReport:
    """REPO/NAME/{config.pbtxt, 1/model.onnx, labels.txt} for the ONNX file `model_path`."""
    import json

    import onnx

    model_path = Path(model_path)
    name = name or model_path.stem
    if not NAME.match(name):
        raise ConverterError(f"'{name}' cannot name a Triton model folder: use letters, digits, "
                             "'_', '.', '-' (give --triton-name)")
    proto = onnx.load(str(model_path), load_external_data=False)
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in initializers]
    first = [_shape(v)[:1] for v in (*graph_inputs, *graph.output)]
    dynamic = all(dims == [None] for dims in first)
    if max_batch_size is None:
        max_batch_size = DEFAULT_MAX_BATCH if dynamic else 0
    if max_batch_size < 0:
        raise ConverterError(f"--max-batch-size must be 0 or more, not {max_batch_size}")
    if max_batch_size > 0 and not dynamic:
        raise ConverterError(f"--max-batch-size {max_batch_size} needs a dynamic first (batch) "
                             "dimension on every input and output; this model has fixed ones: "
                             "give --max-batch-size 0", model_path)
    batched = max_batch_size > 0
    inputs = tuple(_spec(v, batched, model_path) for v in graph_inputs)
    outputs = tuple(_spec(v, batched, model_path) for v in graph.output)
    meta = {p.key: p.value for p in proto.metadata_props}
    labels = json.loads(meta["labels"]) if meta.get("labels") else []
    label_output = None
    if labels:
        label_output = meta.get("output_name") or outputs[0].name
        spec = next((s for s in outputs if s.name == label_output), None)
        if spec is None or spec.dims[-1:] != (len(labels),):
            raise ConverterError(f"the model has {len(labels)} labels but its output "
                                 f"'{label_output}' is not {len(labels)} classes wide", model_path)
    repo = Path(repo)
    if (repo / name).exists() and not (repo / name).is_dir():
        raise ConverterError("exists and is not a folder; choose another --triton-name",
                             repo / name)
    with atomic_folder(repo / name) as tmp:
        (tmp / "1").mkdir()
        shutil.copyfile(model_path, tmp / "1" / "model.onnx")
        (tmp / "config.pbtxt").write_text(
            config_text(name, max_batch_size, inputs, outputs, label_output), encoding="utf-8")
        if labels:
            (tmp / "labels.txt").write_text("".join(f"{label}\n" for label in labels),
                                            encoding="utf-8")
    return TritonReport(repo / name, name, max_batch_size, inputs, outputs, len(labels))
