"""Crafted ONNX metadata (issue 14, defect 8): checked with limits when the model is loaded,
each error naming the model file and the field, never a RecursionError, a MemoryError or a
"nan %" printed with exit 0."""
from __future__ import annotations

import base64
import json
import resource
import time

import numpy as np
import pytest
from PIL import Image

from inference import Classifier, InferenceError
from inference.__main__ import main

from .tiny_models import tiny_onnx


@pytest.fixture
def digit(tmp_path):
    path = tmp_path / "digit.png"
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(path)
    return path


def test_a_tiny_model_with_sound_metadata_classifies(tmp_path, digit):
    model = tiny_onnx(tmp_path / "m.onnx", {"labels": json.dumps([str(d) for d in range(10)]),
                                            "dataset_image_size": "28x28x1", "scale": "0.5"})
    predictions = Classifier(model, provider="cpu").classify_one(digit)
    assert len(predictions) == 5 and all(np.isfinite(p.probability) for p in predictions)


@pytest.mark.parametrize("meta, field, words", [
    ({"labels": "[" * 100_000 + "]" * 100_000}, "labels", "nested too deeply"),
    ({"labels": json.dumps([["0"], ["1"]])}, "labels", "flat JSON list"),
    ({"labels": json.dumps({"0": "zero"})}, "labels", "flat JSON list"),
    ({"labels": json.dumps([str(i) for i in range(200_000)])}, "labels", "at most 100000"),
    ({"labels": json.dumps(["x" * 5000])}, "labels", "5000 characters"),
    ({"mean_type": "pixel", "mean_pixel": "[" * 50_000 + "]" * 50_000}, "mean_pixel", "nested"),
    ({"mean_type": "pixel", "mean_pixel": "[NaN]"}, "mean_pixel", "not finite"),
    ({"dataset_image_size": "60000x60000x1"}, "dataset_image_size", "at most 4096 pixels a side"),
    ({"dataset_image_size": "9" * 5000 + "x1x1"}, "dataset_image_size", "positive sizes"),
    ({"scale": "nan"}, "scale", "not a finite number"),
    ({"scale": "inf"}, "scale", "not a finite number"),
    ({"scale": "0"}, "scale", "a scale of 0"),
    ({"scale": "lots"}, "scale", "not a number"),
    ({"mean_type": "image", "mean_shape": "1x28x28",
      "mean_data": base64.b64encode(np.full(784, np.nan, "<f4").tobytes()).decode()},
     "mean_data", "not finite"),
    ({"mean_type": "image", "mean_shape": "1x4096x4096", "mean_data": "AAAAAA=="},
     "mean_data", "base64 characters"),
])
def test_crafted_metadata_is_refused_naming_file_and_field(tmp_path, meta, field, words):
    model = tiny_onnx(tmp_path / "crafted.onnx", meta)
    start = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InferenceError) as info:
        Classifier(model, provider="cpu")
    message = str(info.value)
    assert message.startswith(f"{model}: ") and field in message and words in message
    assert len(message) < 500
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000  # KiB


def test_cli_refuses_nan_scale_instead_of_printing_nan_percent(tmp_path, digit, capsys):
    model = tiny_onnx(tmp_path / "nan.onnx", {"scale": "nan"})
    assert main(["classify", "--provider", "cpu", str(model), str(digit)]) == 2
    out, err = capsys.readouterr()
    assert "nan" not in out and err.startswith(f"error: {model}: metadata scale='nan'")


def test_cli_refuses_huge_dataset_size_and_deep_labels(tmp_path, digit, capsys):
    for meta in ({"dataset_image_size": "60000x60000x1"}, {"labels": "[" * 100_000}):
        model = tiny_onnx(tmp_path / "crafted.onnx", meta)
        assert main(["classify", "--provider", "cpu", str(model), str(digit)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {model}: ") and "Traceback" not in err
