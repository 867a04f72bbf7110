"""Caffe's Data layer: key order, wrap-around, per-batch seeding, workers, processes, force_*."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError
from trainer.data import Batches, BatchMaker, source_spec

from . import tiny


@pytest.fixture
def data(tmp_path, rng):
    arrays = tiny.make_dataset(tmp_path, rng, n_train=11, n_val=5, encoding="png")
    return tmp_path, arrays


def layer(folder, batch=4, transform="", source="train_db", backend="LMDB"):
    from prototxt import parse_text
    return parse_text(f'''name: "d" type: "Data" top: "data" top: "label"
        transform_param {{ {transform} }}
        data_param {{ source: "{folder / source}" batch_size: {batch} backend: {backend} }}''',
                      caffe_pb2.LayerParameter())


def spec(folder, phase=caffe_pb2.TRAIN, seed=3, rank=0, world=1, **kw):
    return source_spec(layer(folder, **kw), phase, seed, "net.prototxt", rank, world)


def test_batches_read_in_key_order_and_wrap_around(data):
    folder, arrays = data
    x, y = arrays["train_db"]
    make = BatchMaker(spec(folder))
    for k in range(5):  # 20 records from 11: wraps twice
        images, labels = make(k)
        idx = [(4 * k + j) % 11 for j in range(4)]
        assert labels.tolist() == y[idx].tolist()
        np.testing.assert_array_equal(images[:, 0], x[idx].astype(np.float32))
        assert labels.dtype == np.int64 and images.dtype == np.float32


def test_processes_take_global_batches_in_turn(data):
    folder, arrays = data
    y = arrays["train_db"][1]
    r0, r1 = (BatchMaker(spec(folder, rank=r, world=2)) for r in (0, 1))
    got = [r0(0)[1], r1(0)[1], r0(1)[1], r1(1)[1]]
    whole = BatchMaker(spec(folder))
    assert np.concatenate(got).tolist() == np.concatenate([whole(k)[1] for k in range(4)]).tolist()
    assert got[0].tolist() == y[:4].tolist()


def test_random_crop_and_mirror_are_reproducible_per_batch(data):
    folder, _ = data
    make = BatchMaker(spec(folder, transform="crop_size: 4 mirror: true"))
    a, b = make(3), make(3)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (4, 1, 4, 4)
    seen = {make(k)[0].tobytes() for k in range(6)}
    assert len(seen) == 6
    other_seed = BatchMaker(spec(folder, seed=4, transform="crop_size: 4 mirror: true"))
    assert not np.array_equal(other_seed(3)[0], a[0])


def test_test_phase_crop_is_centered(data):
    folder, arrays = data
    x = arrays["train_db"][0]
    images, _ = BatchMaker(spec(folder, phase=caffe_pb2.TEST, transform="crop_size: 4"))(0)
    np.testing.assert_array_equal(images[:, 0], x[:4, 1:5, 3:7].astype(np.float32))


def test_worker_processes_make_the_same_batches(data):
    folder, _ = data
    specs = [spec(folder, transform="crop_size: 4 mirror: true"), spec(folder, source="val_db", batch=2)]
    inline, pooled = Batches(specs, workers=0), Batches(specs, workers=2, depth=3)
    try:
        for source in (0, 1):
            a = list(inline.stream(source, 2, 5))
            b = list(pooled.stream(source, 2, 5))
            assert len(a) == len(b) == 5
            for (xa, ya), (xb, yb) in zip(a, b):
                np.testing.assert_array_equal(xa, xb)
                np.testing.assert_array_equal(ya, yb)
    finally:
        inline.close()
        pooled.close()


def test_force_color_and_gray(data):
    folder, arrays = data
    x = arrays["train_db"][0]
    color, _ = BatchMaker(spec(folder, transform="force_color: true"))(0)
    assert color.shape == (4, 3, 6, 10)
    np.testing.assert_array_equal(color[:, 2], x[:4].astype(np.float32))
    maker = BatchMaker(spec(folder, transform="force_color: true"))
    assert maker.output_shape() == (3, 6, 10)


def test_mean_file_is_subtracted(data):
    from lmdb_builder import read_mean
    folder, arrays = data
    x = arrays["train_db"][0]
    images, _ = BatchMaker(spec(folder, transform=f'mean_file: "{folder / "mean.binaryproto"}" scale: 0.5'))(0)
    mean = read_mean(folder / "mean.binaryproto")
    np.testing.assert_allclose(images, (x[:4, None].astype(np.float32) - mean) * 0.5)


def test_missing_lmdb_suggests_dataset(tmp_path):
    with pytest.raises(PrototxtError, match=r"layer 'd': no LMDB at .*--dataset DIR"):
        spec(tmp_path)


def test_missing_mean_file_suggests_dataset(data):
    folder, _ = data
    with pytest.raises(PrototxtError, match="mean_file .* does not exist.*--dataset"):
        spec(folder, transform='mean_file: "/opt/DIGITS/jobs/x/mean.binaryproto"')


def test_leveldb_is_refused(data):
    folder, _ = data
    with pytest.raises(PrototxtError, match="LEVELDB"):
        spec(folder, backend="LEVELDB")


def test_streams_equal_the_numpy_reference_with_and_without_workers(data):
    """uint8 windows through shared memory + the batch transform == BatchMaker's NumPy batches."""
    folder, _ = data
    transform = f'crop_size: 5 mirror: true scale: 0.0125 mean_file: "{folder / "mean.binaryproto"}"'
    specs = [spec(folder, batch=3, transform=transform)]
    reference = BatchMaker(specs[0])
    for workers in (0, 2):
        batches = Batches(specs, workers=workers, depth=2)
        try:
            for k, (x, y) in enumerate(batches.stream(0, 4, 6), start=4):
                xr, yr = reference(k)
                assert x.dtype == torch.float32 and y.dtype == torch.int64
                assert np.array_equal(x.numpy(), xr) and np.array_equal(y.numpy(), yr)
        finally:
            batches.close()


def test_shared_memory_is_released_when_a_stream_ends(data):
    folder, _ = data
    before = set(os.listdir("/dev/shm"))
    batches = Batches([spec(folder)], workers=1, depth=2)
    try:
        stream = batches.stream(0, 0)          # endless: closed early, as the solver does
        next(stream), next(stream)
        assert set(os.listdir("/dev/shm")) - before   # a segment while it runs
        stream.close()
        list(batches.stream(0, 0, 3))          # runs to its end
    finally:
        batches.close()
    assert not set(os.listdir("/dev/shm")) - before


def test_images_of_different_sizes_without_crop_name_the_record(tmp_path, rng):
    from lmdb_builder.datum import encode_datum
    from lmdb_builder.writer import LmdbWriter
    with LmdbWriter(tmp_path / "train_db") as writer:
        for i, (h, w) in enumerate([(6, 10), (6, 10), (7, 10)]):
            writer.put(0, encode_datum(rng.integers(0, 255, (h, w), dtype=np.uint8), 0, "png"))
    batches = Batches([spec(tmp_path, batch=3)])
    try:
        with pytest.raises(PrototxtError, match=r"record 2 gives 1x7x10 .* the batch is 1x6x10"):
            next(batches.stream(0, 0))
    finally:
        batches.close()
