"""Caffe's DataTransformer: crop, mirror, mean file / mean values, scale."""
from __future__ import annotations

import numpy as np
import pytest

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError
from trainer.transform import DataTransformer

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def _reference(x, mean, scale, h_off, w_off, crop, mirror):
    """Caffe's index arithmetic, element by element in float64."""
    c_, h_, w_ = x.shape
    out = np.zeros((c_, crop, crop))
    for c in range(c_):
        for h in range(crop):
            for w in range(crop):
                top_w = crop - 1 - w if mirror else w
                out[c, h, top_w] = (float(x[c, h_off + h, w_off + w]) - mean[c, h_off + h, w_off + w]) * scale
    return out


def test_test_phase_center_crop_with_mean_file(rng):
    x = rng.integers(0, 256, (3, 9, 12), dtype=np.uint8)
    mean = rng.uniform(0, 255, (3, 9, 12)).round()
    param = caffe_pb2.TransformationParameter(crop_size=5, mean_file="m", scale=0.0125, mirror=True)
    out = DataTransformer(param, TEST, mean=mean)(x)  # no mirror in TEST
    expected = _reference(x, mean, np.float32(0.0125), (9 - 5) // 2, (12 - 5) // 2, 5, False)
    assert out.dtype == np.float32 and out.shape == (3, 5, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_train_phase_random_crop_and_mirror_cover_all_offsets(rng):
    x = np.arange(2 * 6 * 7, dtype=np.uint8).reshape(2, 6, 7)
    param = caffe_pb2.TransformationParameter(crop_size=4, mirror=True)
    tf = DataTransformer(param, TRAIN, seed=5)
    seen = set()
    for _ in range(400):
        out = tf(x)
        for h_off in range(3):
            for w_off in range(4):
                for mirror in (False, True):
                    if np.array_equal(out, _reference(x, np.zeros(x.shape), 1.0, h_off, w_off, 4, mirror)):
                        seen.add((h_off, w_off, mirror))
    assert len(seen) == 3 * 4 * 2  # Rand(H - crop + 1) x Rand(W - crop + 1) x Rand(2)


def test_mean_values_one_or_per_channel(rng):
    x = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    one = DataTransformer(caffe_pb2.TransformationParameter(mean_value=[10]), TEST)(x)
    np.testing.assert_array_equal(one, x.astype(np.float32) - 10)
    per = DataTransformer(caffe_pb2.TransformationParameter(mean_value=[1, 2, 3]), TEST)(x)
    np.testing.assert_array_equal(per, x.astype(np.float32) - np.array([1, 2, 3], np.float32)[:, None, None])
    with pytest.raises(PrototxtError, match="2 mean_value"):
        DataTransformer(caffe_pb2.TransformationParameter(mean_value=[1, 2]), TEST, where="data")(x)


def test_errors_name_the_layer(rng):
    x = rng.integers(0, 256, (1, 4, 6), dtype=np.uint8)
    with pytest.raises(PrototxtError, match="larger than the data") as info:
        DataTransformer(caffe_pb2.TransformationParameter(crop_size=5), TEST, where="val-data")(x)
    assert info.value.field == "val-data"
    with pytest.raises(PrototxtError, match="must match"):
        DataTransformer(caffe_pb2.TransformationParameter(mean_file="m"), TEST, mean=np.zeros((1, 4, 5)))(x)
    with pytest.raises(PrototxtError, match="either mean_file or mean_value"):
        DataTransformer(caffe_pb2.TransformationParameter(mean_file="m", mean_value=[1]), TEST, mean=np.zeros(1))
