"""The deployment exports' self-check: top-1 agreement of a converted model with the fp32 one.

    agreement = (number of images where argmax p_fp32 == argmax p_converted) / N

on the calibration images (calibration.py), both run by ONNX Runtime. An int8 or fp16 file is
written only when the agreement reaches the minimum (99 % unless told otherwise); otherwise the
export fails with the numbers. Where the images carry labels, the top-1 accuracy of both models
is reported too, so a drop shows as what a user would lose.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConverterError

MIN_AGREEMENT = 0.99
BATCH = 64


@dataclass(frozen=True)
class Agreement:
    kind: str                     # "int8" or "fp16"
    images: int
    agreeing: int
    reference_correct: int        # top-1 hits of the fp32 model on the labels
    candidate_correct: int
    provider: str                 # where the converted model ran
    source: str                   # which images

    @property
    def rate(self) -> float:
        return self.agreeing / self.images if self.images else 0.0

    def summary(self) -> str:
        return (f"{self.kind} vs fp32 top-1 agreement {100 * self.rate:.2f} % "
                f"({self.agreeing}/{self.images} images from {self.source}, on {self.provider}); "
                f"top-1 accuracy fp32 {100 * self.reference_correct / self.images:.2f} %, "
                f"{self.kind} {100 * self.candidate_correct / self.images:.2f} %")


def session(data: bytes, provider: str = "CPUExecutionProvider"):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=[provider])


def predict(sess, images: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Top-1 class per image (the first output holds the class scores)."""
    name = sess.get_inputs()[0].name
    top = [np.asarray(sess.run(None, {name: images[i:i + batch]})[0]).argmax(1)
           for i in range(0, len(images), batch)]
    return np.concatenate(top) if top else np.zeros(0, np.int64)


def top1_agreement(kind: str, reference: bytes, candidate, images: np.ndarray, labels: np.ndarray,
                   source: str, provider: str = "CPUExecutionProvider",
                   reference_top1: np.ndarray | None = None) -> Agreement:
    """Agreement of `candidate` (bytes, or a session already made) with the fp32 `reference`
    (whose top-1 classes on `images` may be given, when they were computed already)."""
    ours = predict(session(reference), images) if reference_top1 is None else reference_top1
    sess = candidate if not isinstance(candidate, bytes) else session(candidate, provider)
    theirs = predict(sess, images)
    return Agreement(kind, len(images), int((ours == theirs).sum()), int((ours == labels).sum()),
                     int((theirs == labels).sum()), sess.get_providers()[0], source)


def require(agreement: Agreement, minimum: float, where) -> None:
    """Raise with the numbers when the agreement is below `minimum` (a fraction)."""
    if not agreement.rate >= minimum:
        raise ConverterError(
            f"the {agreement.kind} model disagrees with fp32: {agreement.summary()}; at least "
            f"{100 * minimum:g} % is required, nothing was written. Calibrate on more or more "
            "typical images (--calibration-images), or keep the fp32 model", where)
