"""int8 export: static QDQ quantization with ONNX Runtime's own tools, calibrated on val_db.

    python -m converter onnx --job MODEL_DIR --out model-int8.onnx --int8 --calibrate DATASET_DIR
                             [--calibration-images N]

Steps, applied to the checked fp32 export:

1. `quant_pre_process` (ONNX Runtime's shape inference and graph optimisation, as its
   quantization guide asks) so that every tensor has a known type and shape;
2. `quantize_static` in the QDQ format: each Conv/Gemm input gets QuantizeLinear ->
   DequantizeLinear pairs, and ONNX Runtime fuses them into integer kernels when it loads the
   file (QLinearConv, QGemm on x86: VNNI where the CPU has it). Activations are uint8 with a
   zero point, `q = clamp(round(x / s) + z, 0, 255)`, with s and z from the MinMax range that
   the calibration images reach at that tensor; weights are int8, symmetric, **per output
   channel** (one scale per filter: a filter with small weights is not rounded to zero by a
   large neighbour, which costs nothing at run time and keeps accuracy). The final Softmax is
   left in float: quantizing probabilities to steps of 1/255 would make ties and blur the
   percentages shown to a user;
3. the self-check (agreement.py): top-1 agreement with fp32 on the calibration images, at
   least 99 %, else an error with the numbers and no file;
4. the fp32 model's metadata_props (labels, mean, input size, channel order, resize) are copied
   over, plus `precision=int8` and `quantization` (how it was made and what the check found),
   so `python -m inference classify|bench|serve` run the file unchanged: its input and output
   stay float32.

The calibration images come from calibration.py, fed exactly as the metadata says.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .agreement import MIN_AGREEMENT, Agreement, require, top1_agreement
from .calibration import CalibrationSet
from .errors import ConverterError

CALIBRATION_BATCH = 8


def calibration_batches(images: np.ndarray, batch: int = CALIBRATION_BATCH):
    """The inputs fed to the calibrator, `batch` images at a time (a seam for the tests)."""
    for start in range(0, len(images), batch):
        yield images[start:start + batch]


def _reader(input_name: str, images: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    class DatasetReader(CalibrationDataReader):
        """ONNX Runtime's calibration interface over the preprocessed val_db images."""

        def __init__(self):
            self._batches = iter(calibration_batches(images))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    return DatasetReader()


def metadata_of(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def set_metadata(proto, meta: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)


def quantize_int8(fp32: bytes, calibration: np.ndarray, per_channel: bool = True) -> bytes:
    """The QDQ int8 model of `fp32` (serialized ONNX) calibrated on `calibration` (N x C x H x W
    float32, preprocessed); metadata_props copied. No check here: see `export_int8`."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    proto = onnx.load_from_string(fp32)
    input_name = proto.graph.input[0].name
    softmax = [n.name for n in proto.graph.node if n.op_type == "Softmax"]
    quant_logger = logging.getLogger()  # ONNX Runtime's quantizer warns on the root logger
    level = quant_logger.level
    quant_logger.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="redigits-int8-") as tmp:
            pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
            quant_pre_process(proto, str(pre))
            pre_proto = onnx.load(str(pre))
            keep = {n.name for n in pre_proto.graph.node if n.op_type == "Softmax"} | set(softmax)
            quantize_static(str(pre), str(out), _reader(input_name, calibration),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=sorted(keep),
                            extra_options={"CalibMaxIntermediateOutputs": 16})
            quantized = onnx.load(str(out))
    except ConverterError:
        raise
    except Exception as exc:  # ONNX Runtime's tools raise bare exceptions
        raise ConverterError(f"ONNX Runtime's quantization failed: {type(exc).__name__}: {exc}") from exc
    finally:
        quant_logger.setLevel(level)
    set_metadata(quantized, metadata_of(proto))
    return quantized.SerializeToString()


@dataclass(frozen=True)
class Int8Result:
    data: bytes
    agreement: Agreement


def export_int8(fp32: bytes, images: CalibrationSet, minimum: float = MIN_AGREEMENT,
                check: CalibrationSet | None = None, where=None) -> Int8Result:
    """Quantize on `images`, check top-1 agreement on `check` (default: the same images)
    against `minimum`; raise ConverterError with the numbers below it."""
    check = check or images
    data = quantize_int8(fp32, images.images)
    agreement = top1_agreement("int8", fp32, data, check.images, check.labels, check.describe())
    require(agreement, minimum, where)
    import onnx
    proto = onnx.load_from_string(data)
    meta = metadata_of(proto)
    meta["precision"] = "int8"
    meta["quantization"] = (f"static QDQ (ONNX Runtime), uint8 activations (MinMax), int8 "
                            f"weights per channel, Softmax in float; calibrated on "
                            f"{images.describe()}; {agreement.summary()}")
    set_metadata(proto, meta)
    return Int8Result(proto.SerializeToString(), agreement)
