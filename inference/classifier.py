"""`Classifier`: an exported model (model.onnx) with its preprocessing, ready to classify.

    from inference import Classifier
    clf = Classifier("model.onnx")                 # TensorRT / CUDA when they work, else CPU
    clf.provider                                   # "cpu"
    clf.classify_one("digit.png")                  # [Prediction(label='7', probability=0.99, index=7), ...]
    clf.classify(["a.png", pil_image, array], top=5)
    clf.classify_drawing(canvas_png_bytes)         # MNIST-style normalization first (drawing.py)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from PIL import Image

from .drawing import drawing_background, normalize_drawing
from .errors import InferenceError
from .images import ImageInput
from .metadata import ModelInfo, model_info
from .preprocess import Preprocessor
from .providers import open_session


class Prediction(NamedTuple):
    label: str
    probability: float
    index: int

    def percent(self) -> float:
        """DIGITS' display value: round(100 p, 2)."""
        return round(100 * self.probability, 2)


def top_k(probabilities: np.ndarray, info: ModelInfo, k: int = 5) -> list[Prediction]:
    """DIGITS' top-k: scores sorted high to low, classes without a label dropped, first k."""
    order = np.argsort(-probabilities, kind="stable")
    if info.labels:
        order = order[order < len(info.labels)]
    return [Prediction(info.label(int(i)), float(probabilities[i]), int(i)) for i in order[:k]]


class Classifier:
    """An ONNX classifier exported by `python -m converter onnx`, with DIGITS' preprocessing.

    `provider`: None picks TensorRT, CUDA or CPU (the first that works); "cpu", "cuda" or
    "tensorrt" insists. `crop`: "resize" (DIGITS' Classify One) or "center" (Caffe's TEST
    crop, what validation saw); see preprocess.py. `max_batch` bounds one ONNX Runtime run.
    """

    def __init__(self, path: str | os.PathLike, provider: str | None = None, crop: str = "resize",
                 max_batch: int = 64, threads: int | None = None, spin: bool = True, seed: int = 0):
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise InferenceError(f"cannot read the model: {exc.strerror or exc}", path) from None
        self.max_batch = max(1, int(max_batch))
        opened = open_session(data, provider, threads, self.max_batch, spin, str(path))
        self.session, self.provider, self.providers_tried = opened.session, opened.provider, opened.tried
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise InferenceError(f"a classifier has one input; this model has {len(inputs)}", path)
        meta = self.session.get_modelmeta().custom_metadata_map
        output = meta.get("output_name", outputs[-1].name)  # DIGITS takes the last output
        if output not in {o.name for o in outputs}:
            raise InferenceError(f"metadata output_name {output!r} is not an output of the graph", path)
        self.info = model_info(meta, inputs[0].name, tuple(inputs[0].shape), output, path)
        self.preprocessor = Preprocessor(self.info, crop, seed)

    @property
    def labels(self) -> list[str]:
        return self.info.labels

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def drawing_background(self) -> str:
        return drawing_background(self.info)

    # -- the network ---------------------------------------------------------------------------
    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Run preprocessed N x C x H x W input (any N; split into runs of `max_batch`)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != self.info.input_shape:
            raise InferenceError(f"expected N x {'x'.join(map(str, self.info.input_shape))} input, "
                                 f"got {list(batch.shape)}", self.path)
        output, name = [self.info.output_name], self.info.input_name
        parts = [self.session.run(output, {name: batch[i:i + self.max_batch]})[0]
                 for i in range(0, len(batch), self.max_batch)]
        if not parts:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(parts).reshape(len(batch), -1)

    # -- images --------------------------------------------------------------------------------
    def preprocess(self, image: ImageInput, drawing: bool = False) -> np.ndarray:
        """One image as the C x H x W float32 input (after MNIST-style normalization if `drawing`)."""
        if drawing:
            image = normalize_drawing(image, self.drawing_background, self.info.sees_context)
        return self.preprocessor(image)

    def classify(self, images: Sequence[ImageInput], top: int = 5,
                 drawing: bool = False) -> list[list[Prediction]]:
        """Top-`top` predictions for each image, in batches of `max_batch`. A single image
        (a path, bytes, a PIL image or one array) counts as a list of one."""
        if isinstance(images, (str, os.PathLike, bytes, bytearray, np.ndarray, Image.Image)):
            images = [images]
        results: list[list[Prediction]] = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start:start + self.max_batch]
            batch = np.stack([self.preprocess(image, drawing) for image in chunk])
            results += [top_k(p, self.info, top) for p in self.probabilities(batch)]
        return results

    def classify_one(self, image: ImageInput, top: int = 5, drawing: bool = False) -> list[Prediction]:
        return self.classify([image], top, drawing)[0]

    def classify_drawing(self, image: ImageInput, top: int = 5) -> list[Prediction]:
        """A drawn digit: normalize_drawing (drawing.py), then the model's own preprocessing."""
        return self.classify_one(image, top, drawing=True)

