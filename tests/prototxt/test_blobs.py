"""Blob values in every storage: BVLC float data and double_data, NVIDIA Caffe 0.16+ raw FLOAT,
FLOAT16 and DOUBLE, through blob_array and the mean, weights and solver-state readers."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from lmdb_builder import read_mean
from prototxt import BlobError, blob_array, blob_storage, caffe_pb2, describe_storage, io
from prototxt.blobs import blob_shape
from prototxt.digits import mean_pixel_from_blob

SHAPE = (3, 5, 2, 7)  # N != C != H != W
RAW = {"FLOAT": "<f4", "FLOAT16": "<f2", "DOUBLE": "<f8"}


def reference(seed=7, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * 3  # float64


def stored(values: np.ndarray, storage: str) -> np.ndarray:
    """What a writer of `storage` keeps of float64 `values`, back in float64."""
    kind = {"data": "<f4", "double_data": "<f8"}.get(storage) or RAW[storage]
    return values.astype(kind).astype(np.float64)


def make_blob(values: np.ndarray, storage: str, legacy: bool = False) -> caffe_pb2.BlobProto:
    """A BlobProto as each writer makes it: BVLC `data`/`double_data`, NVCaffe raw bytes."""
    blob = caffe_pb2.BlobProto()
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = values.shape
    else:
        blob.shape.dim.extend(values.shape)
    if storage == "data":
        blob.data.extend(values.astype(np.float32).ravel().tolist())
    elif storage == "double_data":
        blob.double_data.extend(values.ravel().tolist())
    else:
        blob.raw_data_type = getattr(caffe_pb2, storage)
        blob.raw_data = values.astype(RAW[storage]).tobytes()
    return blob


def test_field_numbers_and_enum_values_are_nvcaffes():
    # NVIDIA/caffe src/caffe/proto/caffe.proto, v0.16.1 to v0.17.4
    fields = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name
    assert {n: fields[n].number for n in ("raw_data_type", "raw_diff_type", "raw_data", "raw_diff")} \
        == {"raw_data_type": 10, "raw_diff_type": 11, "raw_data": 12, "raw_diff": 13}
    assert fields["raw_data_type"].enum_type.name == "Type"
    assert dict(caffe_pb2.Type.items()) == {"DOUBLE": 0, "FLOAT": 1, "FLOAT16": 2, "INT": 3,
                                            "UINT": 4, "BOOL": 5}
    assert caffe_pb2.BatchNormParameter.DESCRIPTOR.fields_by_name["scale_bias"].number == 7


def test_wire_bytes_written_by_hand_read_back():
    # the bytes NVCaffe's Blob::ToProto produces, encoded here without our schema:
    # shape (7) {dim (1) packed}, raw_data_type (10) = FLOAT16, raw_data (12)
    values = reference(shape=(2, 3))
    raw = values.astype("<f2").tobytes()
    dims = bytes([0x0A, 2, 2, 3])  # BlobShape.dim packed: field 1, length 2, values 2 and 3
    wire = bytes([0x3A, len(dims)]) + dims + bytes([0x50, 2]) + bytes([0x62, len(raw)]) + raw
    blob = caffe_pb2.BlobProto.FromString(wire)
    assert blob_storage(blob) == "raw FLOAT16"
    np.testing.assert_array_equal(blob_array(blob, dtype=np.float64), stored(values, "FLOAT16"))


@pytest.mark.parametrize("storage", ["data", "double_data", "FLOAT", "FLOAT16", "DOUBLE"])
@pytest.mark.parametrize("legacy", [False, True])
def test_every_storage_reads_exactly(storage, legacy):
    values = reference()
    blob = make_blob(values, storage, legacy)
    got = blob_array(blob, dtype=np.float64)
    assert got.shape == SHAPE == blob_shape(blob)
    np.testing.assert_array_equal(got, stored(values, storage))
    f32 = blob_array(blob)
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(f32, stored(values, storage).astype(np.float32))


def test_shapeless_raw_blob_takes_its_count_from_the_bytes():
    blob = caffe_pb2.BlobProto(raw_data_type=caffe_pb2.DOUBLE, raw_data=np.arange(5.0).tobytes())
    np.testing.assert_array_equal(blob_array(blob), np.arange(5, dtype=np.float32))


def test_precedence_is_nvcaffes_double_then_data_then_raw():
    values = reference(shape=(4,))
    blob = make_blob(values, "FLOAT")
    blob.data.extend([1.0, 2.0, 3.0, 4.0])
    assert blob_storage(blob) == "float data"
    np.testing.assert_array_equal(blob_array(blob), [1, 2, 3, 4])
    blob.double_data.extend([5.0, 6.0, 7.0, 8.0])
    assert blob_storage(blob) == "double data"
    np.testing.assert_array_equal(blob_array(blob), [5, 6, 7, 8])


@pytest.mark.parametrize("storage,cut", [("FLOAT", 4), ("FLOAT16", 1), ("DOUBLE", -8)])
def test_damaged_raw_data_names_layer_blob_and_sizes(storage, cut):
    blob = make_blob(reference(), storage)
    size = len(blob.raw_data)
    blob.raw_data = blob.raw_data[:-cut] if cut > 0 else blob.raw_data + bytes(-cut)
    with pytest.raises(BlobError) as info:
        blob_array(blob, "w.caffemodel", layer="conv2", index=1)
    err = info.value
    assert (err.layer, err.index, err.expected, err.found) == ("conv2", 1, size, size - cut)
    assert str(err) == (f"w.caffemodel: layer 'conv2' blob 1: its shape [3, 5, 2, 7] needs 210 "
                        f"{storage} values = {size} bytes of raw_data but the file holds "
                        f"{size - cut} bytes")


def test_raw_data_without_usable_type_and_empty_blobs():
    blob = caffe_pb2.BlobProto(raw_data=bytes(8))
    blob.shape.dim.append(2)
    with pytest.raises(BlobError, match="blob: raw_data without raw_data_type"):
        blob_array(blob)
    blob.raw_data_type = caffe_pb2.INT
    with pytest.raises(BlobError, match="raw_data of type INT: blob values are DOUBLE, FLOAT or FLOAT16"):
        blob_array(blob)
    empty = caffe_pb2.BlobProto()
    empty.shape.dim.extend([2, 3])
    with pytest.raises(BlobError, match=r"layer 'fc' blob 0: its shape \[2, 3\] needs 6 values but "
                                        r"the file holds none"):
        blob_array(empty, layer="fc", index=0)
    empty.shape.dim[1] = 0
    assert blob_array(empty).shape == (2, 0)


def test_describe_storage():
    values = reference(shape=(3,))
    assert describe_storage([make_blob(values, "FLOAT16")] * 2) == "NVIDIA Caffe raw FLOAT16 blobs"
    assert describe_storage([make_blob(values, "data")]) == "BVLC float data blobs"
    assert describe_storage([make_blob(values, "FLOAT")] * 2 + [make_blob(values, "data")]) == \
        "mixed: NVIDIA Caffe raw FLOAT (2 blobs), BVLC float data (1 blob)"
    assert describe_storage([]) == "no blob values"


@pytest.mark.parametrize("storage", ["data", "FLOAT", "FLOAT16"])
def test_mean_binaryproto_in_any_storage(storage, tmp_path, caplog):
    # DIGITS writes 1 x C x H x W with the legacy fields; an NVCaffe tool may write raw_data
    mean = np.round(np.random.default_rng(3).uniform(0, 255, (1, 3, 4, 6)))
    path = io.write_binary(make_blob(mean, storage, legacy=True), tmp_path / "mean.binaryproto")
    with caplog.at_level(logging.INFO, logger="prototxt.io"):
        blob = io.read_blob(path)
    kind = "BVLC float data" if storage == "data" else f"NVIDIA Caffe raw {storage}"
    assert f"mean.binaryproto: blob: {kind} blobs" in caplog.text
    np.testing.assert_array_equal(read_mean(path), mean[0].astype(np.float32))
    assert mean_pixel_from_blob(blob, 3, 4, 6) == pytest.approx(mean[0].mean((1, 2)), rel=1e-12)


def test_truncated_raw_mean_is_refused(tmp_path):
    blob = make_blob(reference(shape=(1, 3, 4, 6)), "FLOAT16", legacy=True)
    blob.raw_data = blob.raw_data[:-2]
    path = io.write_binary(blob, tmp_path / "mean.binaryproto")
    with pytest.raises(BlobError, match=r"mean.binaryproto: blob: .* needs 72 FLOAT16 values = 144 "
                                        r"bytes of raw_data but the file holds 142 bytes"):
        io.read_blob(path)


def test_solverstate_history_in_raw_storage(tmp_path, caplog):
    from trainer.snapshot import read_snapshot_state

    io.write_binary(caffe_pb2.NetParameter(name="n"), tmp_path / "s_iter_5.caffemodel")
    state = caffe_pb2.SolverState(iter=5, learned_net="s_iter_5.caffemodel", current_step=0)
    histories = [reference(1, (4, 3)), reference(2, (4,))]
    state.history.extend(make_blob(h, "FLOAT") for h in histories)
    path = io.write_binary(state, tmp_path / "s_iter_5.solverstate")
    with caplog.at_level(logging.INFO, logger="prototxt.io"):
        restored = read_snapshot_state(path)
    assert "history: NVIDIA Caffe raw FLOAT blobs" in caplog.text
    for got, want in zip(restored.history, histories):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    state.history[1].raw_data = state.history[1].raw_data[:-4]
    io.write_binary(state, path)
    with pytest.raises(BlobError, match=r"blob 1: .* needs 4 FLOAT values = 16 bytes .* holds 12"):
        read_snapshot_state(path)
