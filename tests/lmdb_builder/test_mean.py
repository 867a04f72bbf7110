"""The mean image: float sum, np.around, uint8; BlobProto with legacy dims, BGR CHW."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lmdb_builder.errors import BuilderError
from lmdb_builder.mean import MeanAccumulator, mean_to_blob, read_mean, write_mean
from prototxt import caffe_pb2


def test_mean_rounds_half_to_even():
    acc = MeanAccumulator()
    for value in (0, 1):
        acc.add(np.full((2, 3), value, np.uint8))
    assert acc.mean().tolist() == [[0, 0, 0]] * 2               # 0.5 -> 0
    acc.add(np.full((2, 3), 5, np.uint8))
    assert acc.mean().tolist() == [[2, 2, 2]] * 2               # 6/3 = 2
    other = MeanAccumulator()
    other.add_sum(np.full((2, 3), 3, np.int64), 2)              # 1.5 -> 2
    assert other.mean()[0, 0] == 2


def test_partial_sums_add_up_like_one_sum(rng):
    images = rng.integers(0, 256, (10, 24, 32, 3), dtype=np.uint8)
    whole, parts = MeanAccumulator(), MeanAccumulator()
    for image in images:
        whole.add(image)
    parts.add_sum(images[:3].astype(np.int64).sum(0), 3)
    parts.add_sum(images[3:].astype(np.int64).sum(0), 7)
    expected = np.around(images.astype(np.float64).sum(0) / 10).astype(np.uint8)
    assert np.array_equal(whole.mean(), expected) and np.array_equal(parts.mean(), expected)


def test_empty_mean_is_an_error():
    with pytest.raises(BuilderError):
        MeanAccumulator().mean()


def test_blob_is_bgr_chw_with_legacy_dims(rng):
    mean = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    blob = mean_to_blob(mean)
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 24, 32)
    assert not blob.HasField("shape")
    data = np.asarray(blob.data, np.float32).reshape(3, 24, 32)
    assert np.array_equal(data, mean.transpose(2, 0, 1)[::-1])
    gray = mean_to_blob(mean[..., 0])
    assert (gray.channels, gray.height, gray.width) == (1, 24, 32)


def test_seed_job_mean_is_byte_identical_when_rewritten(seed_job):
    """Our writer gives DIGITS' exact bytes: the seed's mean, read and written again."""
    raw = (seed_job / "mean.binaryproto").read_bytes()
    blob = caffe_pb2.BlobProto.FromString(raw)
    bgr = np.asarray(blob.data, np.float32).reshape(3, 256, 256)
    rgb_hwc = bgr[::-1].transpose(1, 2, 0).astype(np.uint8)
    assert mean_to_blob(rgb_hwc).SerializeToString() == raw


def test_write_and_read_mean_files(tmp_path, rng):
    mean = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    write_mean(mean, tmp_path / "mean.binaryproto", tmp_path / "mean.jpg")
    back = read_mean(tmp_path / "mean.binaryproto")
    assert back.shape == (3, 24, 32) and np.array_equal(back, mean.transpose(2, 0, 1)[::-1])
    jpg = Image.open(tmp_path / "mean.jpg")
    assert jpg.format == "JPEG" and jpg.size == (32, 24) and jpg.mode == "RGB"
