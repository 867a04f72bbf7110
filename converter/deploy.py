"""The deployment steps of `python -m converter onnx`, applied to the checked fp32 export:

    fp32 export (onnx_export.py, checked against PyTorch)
      -> --int8 (quantize.py) or --fp16 (half.py), each checked against fp32 on --calibrate images
      -> --out, written atomically (nothing is left behind when a check fails)
      -> --triton REPO_DIR (triton.py): REPO_DIR/NAME/config.pbtxt, 1/model.onnx, labels.txt
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from prototxt import atomic_write

from .agreement import MIN_AGREEMENT
from .calibration import DEFAULT_IMAGES, CaffeTransform, load_calibration
from .errors import ConverterError
from .onnx_export import ExportReport, export_job


@dataclass
class DeployReport:
    export: ExportReport
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join(self.lines)


def check_options(int8: bool, fp16: bool, calibrate, calibration_images, triton, triton_name,
                  max_batch_size, out=None) -> None:
    """Refuse option combinations that do nothing or cannot work (errors name the --out file)."""
    if int8 and fp16:
        raise ConverterError("give --int8 or --fp16, not both", out)
    if (int8 or fp16) and not calibrate:
        raise ConverterError(f"--{'int8' if int8 else 'fp16'} checks itself on real images: give "
                             "--calibrate DATASET_DIR (a dataset job folder with val_db)", out)
    if calibrate and not (int8 or fp16):
        raise ConverterError("--calibrate goes with --int8 or --fp16", out)
    if calibration_images is not None and not calibrate:
        raise ConverterError("--calibration-images goes with --calibrate DATASET_DIR", out)
    if (triton_name is not None or max_batch_size is not None) and not triton:
        raise ConverterError("--triton-name and --max-batch-size go with --triton REPO_DIR", out)


def export_deployment(out: str | os.PathLike, *, int8: bool = False, fp16: bool = False,
                      calibrate: str | os.PathLike | None = None,
                      calibration_images: int | None = None,
                      min_agreement: float = MIN_AGREEMENT,
                      triton: str | os.PathLike | None = None, triton_name: str | None = None,
                      max_batch_size: int | None = None, **export_args) -> DeployReport:
    """export_job(out, **export_args), then the steps in the module docstring."""
    check_options(int8, fp16, calibrate, calibration_images, triton, triton_name, max_batch_size,
                  out)
    out = Path(out)
    if not (int8 or fp16):
        report = export_job(out, **export_args)
        result = DeployReport(report, [report.summary()])
    else:
        import onnx
        from .half import export_fp16
        from .quantize import export_int8, metadata_of
        with tempfile.TemporaryDirectory(prefix="redigits-fp32-") as tmp:
            report = export_job(Path(tmp) / "fp32.onnx", **export_args)
            fp32 = report.path.read_bytes()
        meta = metadata_of(onnx.load_from_string(fp32))
        images = load_calibration(calibrate, CaffeTransform.from_metadata(meta, out),
                                  calibration_images or DEFAULT_IMAGES)
        lines = [report.summary().replace(str(report.path), "the fp32 model")]
        if int8:
            done = export_int8(fp32, images, min_agreement, where=out)
            lines.append(done.agreement.summary())
        else:
            done = export_fp16(fp32, images, min_agreement, where=out)
            lines.append(done.note)
        report.path = atomic_write(out, done.data)
        lines.append(f"wrote {report.path} ({'int8' if int8 else 'fp16'}, "
                     f"{len(done.data) / 1e6:.2f} MB; fp32 {len(fp32) / 1e6:.2f} MB)")
        result = DeployReport(report, lines)
    if triton:
        from .triton import write_triton
        result.lines.append(write_triton(report.path, triton, triton_name, max_batch_size).summary())
    return result
