"""ModelInfo from metadata_props: every key the converter writes, defaults, and bad values."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from inference import InferenceError, model_info


def meta(**over):
    mean = np.arange(3 * 4 * 5, dtype="<f4").reshape(3, 4, 5)
    values = {"labels": json.dumps(["cat", "dog"]), "input_shape": "3x4x5", "channel_order": "BGR",
              "resize_mode": "crop", "dataset_image_size": "6x7x3", "mean_type": "image",
              "mean_pixel": "[1, 2, 3]", "mean_shape": "3x4x5",
              "mean_data": base64.b64encode(mean.tobytes()).decode(), "scale": "0.5",
              "preprocessing": "words", "other": "kept"}
    values.update(over)
    return {k: v for k, v in values.items() if v is not None}


def test_reads_every_key():
    info = model_info(meta(), "data", ("batch", 3, 4, 5), "prob")
    assert info.input_shape == (3, 4, 5) and info.labels == ["cat", "dog"]
    assert info.resize_mode == "crop" and info.dataset_size == (6, 7) and info.stored_size == (6, 7)
    assert info.mean_type == "image" and info.mean_image.shape == (3, 4, 5)
    assert info.mean_image[2, 3, 4] == 59 and info.mean_pixel == (1, 2, 3) and info.scale == 0.5
    assert info.extra == {"other": "kept"} and info.channel_order == "BGR"
    assert not info.is_digit_model and info.label(1) == "dog" and info.label(7) == "7"


def test_a_model_without_metadata_gets_defaults():
    info = model_info({}, "x", (None, 1, 28, 28), "y")
    assert info.labels == [] and info.mean_type == "none" and info.scale == 1.0
    assert info.resize_mode == "squash" and info.stored_size == (28, 28) and info.is_digit_model
    assert info.describe()["input_shape"] == [1, 28, 28]


@pytest.mark.parametrize("channels, labels, context, digits", [
    (3, [*map(str, range(10)), "none"], True, True),     # the reader's window model, --context
    (1, [*map(str, range(10)), "none"], False, True),    # the grey window model
    (3, [*map(str, range(10))], False, True),
    (3, [*map(str, range(9)), "none"], False, False),
])
def test_a_colour_window_model_sees_context(channels, labels, context, digits):
    info = model_info({"labels": json.dumps(labels)}, "x", (None, channels, 28, 28), "y")
    assert info.sees_context is context and info.is_digit_model is digits


@pytest.mark.parametrize("over, words", [
    ({"input_shape": "3x4x6"}, "differs"),
    ({"resize_mode": "stretch"}, "resize_mode"),
    ({"mean_type": "median"}, "mean_type"),
    ({"mean_data": None}, "mean_data"),
    ({"mean_shape": "3x4x4"}, "mean_data holds"),
    ({"labels": "not json"}, "unreadable"),
    ({"dataset_image_size": "6x7"}, "dataset_image_size"),
])
def test_bad_metadata_names_the_key_and_the_file(over, words):
    with pytest.raises(InferenceError, match=words) as info:
        model_info(meta(**over), "data", (1, 3, 4, 5), "prob", where="m.onnx")
    assert str(info.value).startswith("m.onnx: ")


def test_input_must_be_image_like():
    with pytest.raises(InferenceError, match="N x C x H x W"):
        model_info({}, "x", (1, 10), "y")
    with pytest.raises(InferenceError, match="4 channels"):
        model_info({}, "x", (1, 4, 8, 8), "y")
