"""fp16 export for GPUs: weights and arithmetic in float16, input and output kept float32.

    python -m converter onnx --job MODEL_DIR --out model-fp16.onnx --fp16 --calibrate DATASET_DIR

ONNX Runtime's own converter (`onnxruntime.transformers.float16.convert_float_to_float16`,
the same code as onnxconverter-common's) turns every float initializer and op into float16 and,
with `keep_io_types`, puts a Cast at the graph's input and output, so a consumer still feeds
float32 N x C x H x W and gets float32 probabilities: `python -m inference` runs the file
unchanged. Values beyond float16's range are clamped to +-65504 and tiny ones to
+-5.96e-8 (its smallest subnormal); a Caffe net's mean-subtracted pixels (|x| <= 255) and
trained weights are far inside it.

Before that, a range check that needs no GPU: the fp32 model runs on the check images with
max |v| of every float tensor it computes, and a tensor beyond float16's largest value (65504)
stops the export naming its node: on a GPU that tensor would be infinite (the same pass gives
the agreement check its fp32 classes, so the fp32 model runs once). The agreement check alone
cannot see it on a CPU, where ONNX Runtime computes float16 ops without float16 kernels
in float32 (GoogLeNet's LRN squares overflowed on an H200 and agreed on the CPU).

The self-check (agreement.py) runs the fp16 model where ONNX Runtime can: on CUDA where an
NVIDIA GPU is present (the machine the file is for), else, or when CUDA fails, on the CPU
provider (ONNX Runtime 1.31 runs the float16 graphs of our exports there: LeNet, GoogLeNet's
Conv, Gemm, pooling, LRN, Concat, Softmax); the report names the provider. When no provider here can run it, the export says so and writes the file
unchecked (the machine it is meant for is the GPU one).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import agreement
from .agreement import MIN_AGREEMENT, Agreement, require, session, top1_agreement
from .calibration import CalibrationSet
from .errors import ConverterError
from .quantize import metadata_of, set_metadata


def convert_fp16(fp32: bytes) -> bytes:
    """The float16 model of `fp32` (serialized ONNX), float32 input/output, metadata copied."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load_from_string(fp32)
    meta = metadata_of(proto)
    try:
        half = convert_float_to_float16(proto, keep_io_types=True)
    except Exception as exc:  # the converter's own errors
        raise ConverterError(f"float16 conversion failed: {type(exc).__name__}: {exc}") from exc
    # the converter appends the input's Cast after the nodes that read it: ONNX Runtime
    # accepts that, onnx.checker and stricter consumers do not
    topological_order(half.graph)
    meta["precision"] = "fp16"
    set_metadata(half, meta)
    try:
        onnx.checker.check_model(half, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ConverterError(f"onnx.checker rejects the float16 model: {exc}") from None
    return half.SerializeToString()


def topological_order(graph) -> None:
    """Reorder `graph.node` (an onnx GraphProto) so that every node comes after the nodes
    whose outputs it reads, keeping the given order where it already does."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    waiting, order = list(graph.node), []
    while waiting:
        rest = []
        for node in waiting:
            if all(name in ready for name in node.input):
                order.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(waiting):
            names = ", ".join(n.name or n.op_type for n in rest[:5])
            raise ConverterError(f"the float16 graph has nodes whose inputs nothing makes: {names}")
        waiting = rest
    copies = [type(node)() for node in order]
    for copy, node in zip(copies, order):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


@dataclass(frozen=True)
class HalfResult:
    data: bytes
    agreement: Agreement | None
    note: str            # where the check ran, or why it did not


def runnable_session(data: bytes):
    """(session, None) on the first provider that loads `data`, else (None, reasons)."""
    import onnxruntime as ort
    reasons = []
    gpu = any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))
    for provider in ("CUDAExecutionProvider", "CPUExecutionProvider"):
        if provider not in ort.get_available_providers() or (provider.startswith("CUDA")
                                                              and not gpu):
            continue
        try:
            sess = session(data, provider)
        except Exception as exc:  # e.g. NOT_IMPLEMENTED: no float16 kernel for an op
            reasons.append(f"{provider}: {str(exc).splitlines()[0]}")
            continue
        if sess.get_providers()[0] == provider:
            return sess, None
        reasons.append(f"{provider}: not usable on this machine")
    return None, "; ".join(reasons) or "no ONNX Runtime provider"


FLOAT16_MAX = 65504.0


@dataclass(frozen=True)
class RangeCheck:
    over: list[tuple[str, str, float]]  # (node, output, max |value|) beyond float16, largest first
    top1: np.ndarray                    # the fp32 model's class per image (its first output)


def float16_range(fp32: bytes, images: np.ndarray, batch: int = 16) -> RangeCheck:
    """The float tensors the fp32 model computes on `images` beyond float16's range, and its
    top-1 classes there (the agreement check's reference, from the same pass): Abs and
    ReduceMax of every float node output are added as graph outputs, so only one number per
    tensor and batch comes back."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(fp32))
    floats = {v.name for v in model.graph.value_info
              if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    floats |= {v.name for v in model.graph.output if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    made_by = {out: node for node in model.graph.node for out in node.output if out in floats}
    for i, name in enumerate(made_by):
        model.graph.node.extend([
            helper.make_node("Abs", [name], [f"_abs{i}"]),
            helper.make_node("ReduceMax", [f"_abs{i}"], [f"_peak{i}"], keepdims=0)])
        model.graph.output.append(helper.make_tensor_value_info(f"_peak{i}", TensorProto.FLOAT, []))
    # float32 on the CPU, always (not this module's `session`, which serves the fp16 model)
    sess = agreement.session(model.SerializeToString())
    peaks = [f"_peak{i}" for i in range(len(made_by))]
    first, scores = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    worst = np.zeros(len(peaks))
    top1 = []
    for start in range(0, len(images), batch):
        values = sess.run([scores, *peaks], {first: images[start:start + batch]})
        top1.append(np.asarray(values[0]).argmax(1))
        worst = np.maximum(worst, [float(v) for v in values[1:]])
    found = [(made_by[name].name or made_by[name].op_type, name, float(peak))
             for name, peak in zip(made_by, worst) if not peak <= FLOAT16_MAX]
    found.sort(key=lambda f: f[2] if np.isfinite(f[2]) else np.inf, reverse=True)
    return RangeCheck(found, np.concatenate(top1) if top1 else np.zeros(0, np.int64))


def export_fp16(fp32: bytes, check: CalibrationSet, minimum: float = MIN_AGREEMENT,
                where=None) -> HalfResult:
    """Check float16's range, convert, then check top-1 agreement on `check` where a
    provider can run float16."""
    checked = float16_range(fp32, check.images)
    if checked.over:
        named = "; ".join(f"node '{node}' ({name}) reaches {peak:.4g}"
                          for node, name, peak in checked.over[:3])
        raise ConverterError(f"float16 cannot hold this model's values on {check.describe()}: "
                             f"{named} (float16's largest is 65504); nothing was written, keep "
                             "the fp32 model", where)
    data = convert_fp16(fp32)
    sess, reason = runnable_session(data)
    if sess is None:
        return HalfResult(data, None, f"fp16 self-check not run: ONNX Runtime here cannot run "
                                      f"the fp16 model ({reason}); check it on the GPU")
    agreement = top1_agreement("fp16", fp32, sess, check.images, check.labels, check.describe(),
                               reference_top1=checked.top1)
    require(agreement, minimum, where)
    import onnx
    proto = onnx.load_from_string(data)
    meta = metadata_of(proto)
    meta["fp16_check"] = agreement.summary()
    set_metadata(proto, meta)
    return HalfResult(proto.SerializeToString(), agreement, agreement.summary())
