"""Reading and writing Caffe files: every reference file reads; errors say where; writes are atomic."""
from __future__ import annotations

import os

import numpy as np
import pytest

from prototxt import caffe_pb2, io
from prototxt.errors import PrototxtError


def _net_with_blobs(rng) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="tiny")
    layer = net.layer.add(name="conv1", type="Convolution", bottom=["data"], top=["conv1"])
    for shape in ((5, 3, 7, 4), (5,)):
        blob = layer.blobs.add()
        blob.shape.dim.extend(shape)
        blob.data.extend(rng.standard_normal(int(np.prod(shape))).astype(np.float32).tolist())
    return net


def test_every_reference_file_reads(reference_dir):
    files = sorted(reference_dir.glob("*/*.prototxt"))
    assert len(files) >= 7
    for path in files:
        if path.name == "solver.prototxt":
            assert io.read_solver(path).type == "SGD"  # written as solver_type: SGD, upgraded
        else:
            assert len(io.read_net(path).layer) > 10, path


def test_seed_mean_blob(seed_job):
    blob = io.read_blob(seed_job / "mean.binaryproto")
    assert io.blob_shape(blob) == (1, 3, 256, 256)
    data = np.asarray(blob.data, dtype=np.float32)
    assert np.all(data == np.round(data)) and 0 <= data.min() and data.max() <= 255  # DIGITS rounds


def test_text_round_trip(tmp_path, seed_job):
    net = io.read_net(seed_job / "train_val.prototxt")
    out = io.write_text(net, tmp_path / "sub" / "copy.prototxt")
    assert io.read_net(out) == net


def test_binary_round_trip_and_detection(tmp_path, rng):
    net = _net_with_blobs(rng)
    path = io.write_binary(net, tmp_path / "w.caffemodel")
    assert io.read_caffemodel(path) == net
    # read_net tells binary from text by content too, not only by suffix
    other = io.write_binary(net, tmp_path / "weights.bin")
    assert io.read_net(other) == net


def test_typo_reports_path_line_column_and_field(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  nmae: "conv1"\n  type: "Convolution"\n}\n')
    with pytest.raises(PrototxtError) as info:
        io.read_net(path)
    err = info.value
    assert (err.path, err.line, err.column, err.field) == (str(path), 3, 3, "nmae")
    assert str(err).startswith(f"{path}:3:3: ")


def test_bad_enum_value_names_the_field(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('layer {\n  name: "p"\n  type: "Pooling"\n  pooling_param {\n    pool: MEAN\n  }\n}\n')
    with pytest.raises(PrototxtError) as info:
        io.read_net(path)
    assert (info.value.line, info.value.field) == (5, "pool")
    assert "MEAN" in str(info.value)


def test_unknown_layer_type_is_kept(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('layer { name: "w" type: "MyWeirdLayer" bottom: "a" top: "b" }')
    assert io.read_net(path).layer[0].type == "MyWeirdLayer"


@pytest.mark.parametrize("cut", [9, 120, 0.5])
def test_truncated_caffemodel_reports_offset(tmp_path, rng, cut):
    data = _net_with_blobs(rng).SerializeToString()
    n = int(len(data) * cut) if isinstance(cut, float) else cut
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[:n])
    with pytest.raises(PrototxtError) as info:
        io.read_caffemodel(path)
    err = info.value
    assert err.path == str(path) and err.offset is not None and 0 <= err.offset < n
    assert err.field.startswith("layer")
    assert "truncated" in str(err) and f"(byte {err.offset})" in str(err)


def test_truncated_binaryproto(tmp_path, seed_job):
    data = (seed_job / "mean.binaryproto").read_bytes()
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(data[:4097])
    with pytest.raises(PrototxtError, match=r"mean.binaryproto \(byte 10\).*field data.*truncated"):
        io.read_blob(path)


def test_blob_with_too_few_values(tmp_path):
    blob = caffe_pb2.BlobProto(num=1, channels=3, height=2, width=5)
    blob.data.extend([1.0] * 29)
    path = io.write_binary(blob, tmp_path / "m.binaryproto")
    with pytest.raises(PrototxtError, match="needs 30 values but the file holds 29"):
        io.read_blob(path)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(PrototxtError, match="empty"):
        io.read_caffemodel(empty)
    with pytest.raises(PrototxtError, match="no such file"):
        io.read_net(tmp_path / "missing.prototxt")


def test_solverstate_round_trip(tmp_path, rng):
    state = caffe_pb2.SolverState(iter=1407, learned_net="snapshot_iter_1407.caffemodel", current_step=1)
    state.history.add().data.extend(rng.standard_normal(11).astype(np.float32).tolist())
    path = io.write_binary(state, tmp_path / "snapshot_iter_1407.solverstate")
    assert io.read_solverstate(path) == state


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "net.prototxt"
    path.write_text('name: "old"\n')

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        io.write_text(caffe_pb2.NetParameter(name="new"), path)
    assert path.read_text() == 'name: "old"\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.prototxt"]


def test_written_files_get_the_umask_modes_not_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        path = io.write_text(caffe_pb2.NetParameter(name="n"), tmp_path / "net.prototxt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_atomic_folder_swaps_in_with_normal_modes_and_keeps_the_old_on_error(tmp_path):
    import os
    from prototxt import atomic_folder
    final = tmp_path / "job"
    with atomic_folder(final) as tmp:
        (tmp / "a.txt").write_text("one")
        assert not final.exists()
    umask = os.umask(0)
    os.umask(umask)
    assert (final.stat().st_mode & 0o777) == 0o777 & ~umask
    assert ((final / "a.txt").stat().st_mode & 0o777) == 0o666 & ~umask
    with pytest.raises(RuntimeError):
        with atomic_folder(final) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("crash")
    assert (final / "a.txt").read_text() == "one"
    with atomic_folder(final) as tmp:
        (tmp / "b.txt").write_text("three")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]


# ---------------------------------------------------------------- hostile text (issue 14, defect 1)

LENET_HEAD = b'name: "LeNet"\nlayer { name: "data" type: "Input" top: "data"\n  input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }\n'


def _padded(tail: bytes) -> bytes:
    """A net whose first 64 KB are clean UTF-8 (so it is taken for text) followed by `tail`."""
    return LENET_HEAD + b"# padding\n" * 7000 + tail


def test_invalid_utf8_after_64kb_names_file_line_and_column(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_bytes(_padded(b'layer { name: "caf\xe9" type: "ReLU" bottom: "data" top: "data" }\n'))
    with pytest.raises(PrototxtError) as info:
        io.read_net(path)
    err = info.value
    assert err.path == str(path) and err.line == 7004 and err.column == 19
    assert "0xE9" in str(err) and "UTF-8" in str(err)


def test_invalid_utf8_in_a_comment_is_replaced_with_a_warning(tmp_path, caplog):
    path = tmp_path / "net.prototxt"
    path.write_bytes(_padded(b'# (c) caf\xe9 "quoted # not a comment\xff\n'
                             b'layer { name: "a#b" type: "ReLU" bottom: "data" top: "data" } # \xff\n'))
    net = io.read_net(path)
    assert [layer.name for layer in net.layer] == ["data", "a#b"]
    assert "not UTF-8" in caplog.text and "7004" in caplog.text
    solver = tmp_path / "solver.prototxt"
    solver.write_bytes(b'# \xe9t\xe9\nbase_lr: 0.01\nnet: "n\xe9t.prototxt"\n')
    with pytest.raises(PrototxtError, match=r"solver.prototxt:3:8: byte 0xE9"):
        io.read_solver(solver)


def test_cli_names_the_file_for_invalid_utf8(tmp_path, capsys):
    from prototxt.__main__ import main

    path = tmp_path / "net.prototxt"
    path.write_bytes(_padded(b'layer { name: "\xff" }\n'))
    assert main(["check", str(path)]) == 2
    assert f"error: {path}:7004:16: byte 0xFF" in capsys.readouterr().err


@pytest.mark.parametrize("line", [
    b'layer { name: ' + b"a" * 200_000 + b' }',  # an unquoted 200 KB token
    b'layer { name: "' + b"a" * 200_000,  # a string that never ends
    b'layer { ' + b"a" * 200_000 + b': 1 }',  # a 200 KB field name
    b'name: "' + b"a" * 200_000 + b'{" }',  # a long word before a brace (regex backtracking)
])
def test_parse_error_on_a_200kb_line_is_cut(tmp_path, line):
    import time

    path = tmp_path / "net.prototxt"
    path.write_bytes(b'name: "x"\n' + line + b"\n")
    start = time.perf_counter()
    with pytest.raises(PrototxtError) as info:
        io.read_net(path)
    assert time.perf_counter() - start < 5
    assert str(info.value).startswith(f"{path}:")
    assert len(str(info.value)) < 1200 and (info.value.field is None or len(info.value.field) < 500)
    assert "characters" in str(info.value)


def test_long_file_paths_are_quoted_whole(tmp_path):
    """Cutting long tokens must not cut the paths messages name (deep job folders)."""
    deep = tmp_path / ("jobs-" + "x" * 60) / ("20190317-025154-" + "y" * 60) / "train_db"
    error = PrototxtError(f"no LMDB at {deep}", "net.prototxt")
    assert str(deep) in str(error)


def test_errors_pickle_whole_whatever_their_constructor():
    """Worker processes send them back to the trainer: every field must survive."""
    import pickle

    from prototxt.blobs import BlobError
    for error in (PrototxtError("bad token", "net.prototxt", 3, 7, field="layer"),
                  BlobError("12 bytes, expected 16", "w.caffemodel", layer="conv1", index=1,
                            expected=16, found=12)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.__dict__ == error.__dict__
