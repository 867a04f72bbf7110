"""The device half of the DataTransformer: uint8 windows + draws -> float32, bit for bit equal to
the NumPy reference (DataTransformer.__call__) for every transform_param combination."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prototxt import caffe_pb2
from trainer.batch_transform import BatchTransform
from trainer.transform import DataTransformer

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST

CASES = {
    "mean file, crop, mirror, scale": (dict(crop_size=5, mirror=True, scale=0.00390625, mean_file="m"), TRAIN),
    "mean file, odd scale": (dict(crop_size=4, mirror=True, scale=0.0125, mean_file="m"), TRAIN),
    "mean file, test crop": (dict(crop_size=5, mirror=True, mean_file="m"), TEST),
    "mean values per channel, mirror only": (dict(mirror=True, mean_value=[104.5, 117.25, 123.0]), TRAIN),
    "one mean value, crop": (dict(crop_size=3, mean_value=[127.5], scale=0.017), TRAIN),
    "nothing": (dict(), TRAIN),
}


@pytest.mark.parametrize("name", CASES)
def test_device_half_equals_the_numpy_reference_bit_for_bit(name, rng):
    fields, phase = CASES[name]
    images = rng.integers(0, 256, (7, 3, 9, 12), dtype=np.uint8)   # B, C, H, W all differ
    mean = rng.uniform(0, 255, (3, 9, 12)).astype(np.float32)
    param = caffe_pb2.TransformationParameter(**fields)
    uses_mean = "mean_file" in fields
    reference = DataTransformer(param, phase, mean=mean if uses_mean else None, seed=11)
    split = DataTransformer(param, phase, mean=mean if uses_mean else None, seed=11)
    expected = np.stack([reference(x) for x in images])

    windows, draws = [], []
    for x in images:
        draw = split.draw(9, 12)
        windows.append(split.crop_uint8(x, draw))
        draws.append(draw)
    mirror, h_off, w_off = (torch.tensor(v) for v in zip(*draws))
    got = BatchTransform(split, "cpu")(torch.from_numpy(np.stack(windows)), h_off, w_off,
                                       mirror.bool())
    assert got.dtype == torch.float32
    assert got.shape == expected.shape
    assert np.array_equal(got.numpy(), expected)  # exactly, not approximately
    if fields.get("mirror") and phase == TRAIN:
        assert 0 < int(mirror.sum()) < len(images)  # both branches were exercised


def test_the_mean_is_taken_at_each_images_own_window(rng):
    mean = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    param = caffe_pb2.TransformationParameter(crop_size=3, mean_file="m")
    tf = BatchTransform(DataTransformer(param, TRAIN, mean=mean), "cpu")
    zeros = torch.zeros((2, 2, 3, 3), dtype=torch.uint8)
    out = tf(zeros, torch.tensor([0, 2]), torch.tensor([4, 1]), torch.tensor([False, True]))
    assert torch.equal(out[0], -torch.from_numpy(mean[:, 0:3, 4:7]))
    assert torch.equal(out[1], -torch.from_numpy(mean[:, 2:5, 1:4][:, :, ::-1].copy()))
