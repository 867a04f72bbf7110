"""What a model needs fed: the metadata_props that `python -m converter onnx` writes.

See converter/onnx_export.py for the keys. A model without metadata (any ONNX classifier with
one N x C x H x W input) still works: no labels (class indices are shown), no mean, scale 1,
squash, and BGR for 3 channels as Caffe models expect.
"""
from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .errors import InferenceError

DIGIT_LABELS = [str(d) for d in range(10)]
NONE_LABEL = "none"     # a window model's class for wrong windows (inference/read)

# Limits on what a model file may ask for (a crafted file must not exhaust memory or recursion;
# a real Caffe/DIGITS model is far inside them: ImageNet-21k has 21,841 classes, DIGITS datasets
# are stored at 256 px or so).
MAX_SIDE = 4096           # pixels a side: dataset_image_size, the input, mean_shape
MAX_LABELS = 100_000
MAX_LABEL_CHARS = 1_000
MAX_JSON_CHARS = 16 << 20  # labels or mean_pixel text
MAX_SCALE = 1e6


def _shown(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"...({len(text)} characters)"


def _dims(text: str, key: str, count: int, where: str | None,
          max_side: int | None = MAX_SIDE) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.lower().split("x")) if len(text) < 100 else ()
    except ValueError:
        dims = ()
    if len(dims) != count or min(dims) < 1:
        raise InferenceError(f"metadata {key}={_shown(text)} is not {count} positive sizes joined "
                             "by 'x'", where)
    if max_side is not None and max(dims[-2:]) > max_side:
        raise InferenceError(f"metadata {key}={_shown(text)}: at most {max_side} pixels a side "
                             "(a larger image would take gigabytes for one classification)", where)
    return dims


def _json_list(meta: Mapping[str, str], key: str, where: str | None) -> list[Any]:
    """A flat JSON list from metadata `key` (numbers and strings only), within the limits."""
    text = meta[key]
    if len(text) > MAX_JSON_CHARS:
        raise InferenceError(f"metadata {key} is {len(text)} characters; at most {MAX_JSON_CHARS}",
                             where)
    try:
        value = json.loads(text)
    except RecursionError:
        raise InferenceError(f"metadata {key} is nested too deeply; a flat JSON list was expected",
                             where) from None
    except ValueError as exc:
        raise InferenceError(f"unreadable metadata {key}={_shown(text)}: not JSON ({exc})",
                             where) from None
    if not isinstance(value, list) or not all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        raise InferenceError(f"metadata {key}={_shown(text)} is not a flat JSON list of "
                             f"{'names' if key == 'labels' else 'numbers'}", where)
    return value


def _finite(value: float, key: str, text: str, where: str | None) -> float:
    if not math.isfinite(value):
        raise InferenceError(f"metadata {key}={_shown(text)} is not a finite number", where)
    return value


@dataclass(frozen=True, eq=False)  # eq would compare arrays
class ModelInfo:
    """The preprocessing recipe of one model (all sizes in pixels; channels 1 or 3)."""
    input_name: str
    output_name: str
    channels: int
    height: int
    width: int
    labels: list[str] = field(default_factory=list)
    channel_order: str = "BGR"                  # "BGR" or "GRAY"
    resize_mode: str = "squash"
    dataset_size: tuple[int, int] | None = None  # H, W the dataset images were stored at
    mean_type: str = "none"                     # "image", "pixel" or "none"
    mean_pixel: tuple[float, ...] = ()
    mean_image: np.ndarray | None = None        # C x H x W float32, channel_order
    scale: float = 1.0
    preprocessing: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # keys we do not interpret

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width

    @property
    def stored_size(self) -> tuple[int, int]:
        """H, W of the dataset images (the input size when the metadata does not say)."""
        return self.dataset_size or (self.height, self.width)

    @property
    def is_digit_model(self) -> bool:
        """A model for drawn digits: its labels are 0-9, or it reads one (gray) channel, or it
        is a string reader's window model that sees its windows' surroundings."""
        return self.labels == DIGIT_LABELS or self.channels == 1 or self.sees_context

    @property
    def sees_context(self) -> bool:
        """A window model (labels 0-9 and "none", scripts/train_string_model.py --context) with
        3 channels: each window comes with the ink beside it (drawing.context_field)."""
        return self.channels == 3 and self.labels == DIGIT_LABELS + [NONE_LABEL]

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else str(index)

    def describe(self) -> dict:
        """A JSON-able summary (what GET /model answers)."""
        return {"input_name": self.input_name, "output_name": self.output_name,
                "input_shape": list(self.input_shape), "labels": self.labels,
                "channel_order": self.channel_order, "resize_mode": self.resize_mode,
                "dataset_size": list(self.stored_size), "mean_type": self.mean_type,
                "mean_pixel": list(self.mean_pixel), "scale": self.scale,
                "preprocessing": self.preprocessing, "digit_model": self.is_digit_model}


def model_info(meta: Mapping[str, str], input_name: str, input_shape: tuple, output_name: str,
               where: str | os.PathLike | None = None) -> ModelInfo:
    """ModelInfo from an ONNX model's metadata_props and its graph's input/output."""
    where = str(where) if where is not None else None
    if len(input_shape) != 4 or not all(isinstance(d, int) for d in input_shape[1:]):
        raise InferenceError(f"the input '{input_name}' has shape {list(input_shape)}; a "
                             "classifier takes N x C x H x W with fixed C, H, W", where)
    channels, height, width = input_shape[1:]
    if "input_shape" in meta:
        declared = _dims(meta["input_shape"], "input_shape", 3, where)
        if declared != (channels, height, width):
            raise InferenceError(f"metadata input_shape {meta['input_shape']} differs from the "
                                 f"graph's input {channels}x{height}x{width}", where)
    if channels not in (1, 3):
        raise InferenceError(f"the input has {channels} channels; images give 1 or 3", where)
    if height > MAX_SIDE or width > MAX_SIDE:
        raise InferenceError(f"the input '{input_name}' is {height}x{width}; at most {MAX_SIDE} "
                             "pixels a side", where)
    labels = [str(v) for v in _json_list(meta, "labels", where)] if "labels" in meta else []
    if len(labels) > MAX_LABELS:
        raise InferenceError(f"metadata labels has {len(labels)} names; at most {MAX_LABELS}", where)
    long = next((i for i, name in enumerate(labels) if len(name) > MAX_LABEL_CHARS), None)
    if long is not None:
        raise InferenceError(f"metadata labels: name {long} is {len(labels[long])} characters; at "
                             f"most {MAX_LABEL_CHARS}", where)
    pixel = ()
    if "mean_pixel" in meta:
        try:
            pixel = tuple(float(v) for v in _json_list(meta, "mean_pixel", where))
        except ValueError:
            raise InferenceError(f"metadata mean_pixel={_shown(meta['mean_pixel'])} is not a list "
                                 "of numbers", where) from None
        if not all(math.isfinite(v) for v in pixel):
            raise InferenceError(f"metadata mean_pixel={_shown(meta['mean_pixel'])} holds a value "
                                 "that is not finite", where)
    text = meta.get("scale", "1")
    try:
        scale = _finite(float(text), "scale", text, where)
    except ValueError:
        raise InferenceError(f"unreadable metadata scale={_shown(text)}: not a number", where) from None
    if scale == 0 or abs(scale) > MAX_SCALE:
        raise InferenceError(f"metadata scale={_shown(text)}: a scale of 0 or beyond "
                             f"{MAX_SCALE:g} makes every input the same or overflows", where)
    dataset_size = None
    if "dataset_image_size" in meta:
        h, w, _ = _dims(meta["dataset_image_size"], "dataset_image_size", 3, where)
        dataset_size = (h, w)
    mean_type = meta.get("mean_type", "none")
    mean_image = None
    if mean_type == "image":
        mean_image = _mean_image(meta, channels, where)
    elif mean_type == "pixel":
        if len(pixel) not in (1, channels):
            raise InferenceError(f"mean_pixel has {len(pixel)} values for {channels} channels", where)
    elif mean_type != "none":
        raise InferenceError(f"mean_type {_shown(mean_type)} is not image, pixel or none", where)
    resize_mode = meta.get("resize_mode", "squash")
    if resize_mode not in ("squash", "crop", "fill", "half_crop"):
        raise InferenceError(f"resize_mode {_shown(resize_mode)} is not squash, crop, fill or "
                             "half_crop", where)
    known = {"labels", "input_name", "output_name", "input_shape", "channel_order", "resize_mode",
             "dataset_image_size", "mean_type", "mean_pixel", "mean_shape", "mean_data", "scale",
             "preprocessing"}
    return ModelInfo(input_name, output_name, channels, height, width, labels,
                     "BGR" if channels == 3 else "GRAY", resize_mode, dataset_size, mean_type,
                     pixel, mean_image, scale, meta.get("preprocessing", ""),
                     {k: v for k, v in meta.items() if k not in known})


def _mean_image(meta: Mapping[str, str], channels: int, where: str | None) -> np.ndarray:
    if "mean_data" not in meta or "mean_shape" not in meta:
        raise InferenceError("mean_type is image but mean_data or mean_shape is missing", where)
    shape = _dims(meta["mean_shape"], "mean_shape", 3, where)
    if shape[0] != channels:
        raise InferenceError(f"metadata mean_shape {meta['mean_shape']} has {shape[0]} channels; "
                             f"the input has {channels}", where)
    expected = math.prod(shape)
    if len(meta["mean_data"]) != 4 * -(-4 * expected // 3):   # base64 of 4-byte floats
        raise InferenceError(f"mean_data holds {len(meta['mean_data'])} base64 characters; "
                             f"mean_shape {meta['mean_shape']} ({expected} float32 values) "
                             f"needs {4 * -(-4 * expected // 3)}", where)
    try:
        data = np.frombuffer(base64.b64decode(meta["mean_data"], validate=True), dtype="<f4")
    except ValueError as exc:
        raise InferenceError(f"mean_data is not base64: {exc}", where) from None
    if data.size != expected:
        raise InferenceError(f"mean_data holds {data.size} values; mean_shape {meta['mean_shape']} "
                             f"with {channels} channels was expected", where)
    if not np.isfinite(data).all():
        raise InferenceError(f"mean_data holds {int((~np.isfinite(data)).sum())} values that are "
                             "not finite (NaN or infinity)", where)
    return data.reshape(shape).astype(np.float32)
