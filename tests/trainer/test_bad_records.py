"""Damaged records and labels out of range in a training database (issue 14 defects 4 and 5):
an error naming the record, its key and the database (crossing from worker processes whole), or
with bad_records="skip" the next readable record, each skipped record reported once."""
from __future__ import annotations

import numpy as np
import pytest

from lmdb_builder.datum import encode_datum
from lmdb_builder.writer import LmdbWriter
from prototxt import caffe_pb2
from trainer.__main__ import main
from trainer.data import BatchMaker, Batches, DataError, source_spec
from trainer.labels import LabelRule
from trainer.solver import Options, Solver

from . import tiny
from .test_data import layer

N = 9


def _truncated_png(image, label):
    datum = caffe_pb2.Datum.FromString(encode_datum(image, label, "png"))
    datum.data = datum.data[: len(datum.data) // 2]
    return datum.SerializeToString()


DAMAGE = {"truncated png": _truncated_png, "empty value": lambda image, label: b"",
          "random bytes": lambda image, label: b"\xff\x13random\x00bytes\x97" * 3}


def write_db(path, rng, damage=None, at=(), labels=None):
    """N png records of 1 x 6 x 10; records `at` damaged by `damage`; `labels` overrides."""
    x, y = tiny.images(rng, N)
    if labels is not None:
        y = np.asarray(labels)
    with LmdbWriter(path) as writer:
        for i, (image, label) in enumerate(zip(x, y)):
            value = damage(image, int(label)) if i in at else encode_datum(image, int(label), "png")
            writer.put(int(label) % 10**6 if label >= 0 else 0, value)
    return x, y


def spec(folder, bad_records="stop", batch=4, source="train_db"):
    return source_spec(layer(folder, batch=batch, source=source), caffe_pb2.TRAIN, 3,
                       "net.prototxt", bad_records=bad_records)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_record_stops_with_its_key_and_database(tmp_path, rng, kind):
    write_db(tmp_path / "train_db", rng, DAMAGE[kind], at={5})
    make = BatchMaker(spec(tmp_path))
    out = np.empty(make.batch_shape, np.uint8)
    make.raw(0, out)  # records 0-3 are fine
    with pytest.raises(DataError) as err:
        make.raw(1, out)
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'train_db'}: layer 'd': record 5 (key '00000005_")
    assert "cannot be read" in text and "--bad-records skip" in text


def test_skip_takes_the_next_readable_record_and_reports_each_once(tmp_path, rng):
    x, y = write_db(tmp_path / "train_db", rng, DAMAGE["truncated png"], at={2, 3, 8})
    lines = []
    batches = Batches([spec(tmp_path, "skip", batch=3)], on_skip=lines.append)
    labels = [l.tolist() for _, l in batches.stream(0, 0, 6)]  # 18 records: twice through
    batches.close()
    used = [0, 1, 4, 4, 4, 5, 6, 7, 0]  # 2, 3 -> 4; 8 -> wraps to 0
    assert labels == [y[used[i:i + 3]].tolist() for i in range(0, 9, 3)] * 2
    assert len(lines) == 3 and all("skipping damaged record" in l for l in lines)
    assert "record 8 (key '00000008_" in lines[2] and "record 0 is used instead" in lines[2]
    # the NumPy reference makes the same batch
    images, _ = BatchMaker(spec(tmp_path, "skip", batch=3))(0)
    np.testing.assert_array_equal(images[2, 0], x[4].astype(np.float32))


def test_the_error_crosses_from_a_worker_process_whole(tmp_path, rng):
    write_db(tmp_path / "train_db", rng, DAMAGE["empty value"], at={1})
    batches = Batches([spec(tmp_path)], workers=1)
    try:
        with pytest.raises(DataError) as err:
            next(batches.stream(0, 0))
    finally:
        batches.close()
    assert str(err.value).startswith(f"{tmp_path / 'train_db'}: layer 'd': record 1 (key ")
    assert err.value.path == str(tmp_path / "train_db")


def test_labels_are_checked_against_the_layers_reading_them(tmp_path, rng):
    write_db(tmp_path / "train_db", rng, labels=[0, 1, 2, 1, 0, 99, 1, 2, -1])
    rule = LabelRule("loss", "SoftmaxWithLoss", 3, None, "'ip' 4x3")
    make = BatchMaker(spec(tmp_path))
    out = np.empty(make.batch_shape, np.uint8)
    batches = Batches([spec(tmp_path)])
    batches.bound_labels(0, (rule,))
    assert make.raw(1, out).labels.tolist() == [0, 99, 1, 2]  # no rules: no check
    with pytest.raises(DataError, match=r"record 5 \(key '00000005_99'\) has label 99, but layer "
                                        r"'loss' \(SoftmaxWithLoss\) takes labels 0 to 2 "
                                        r"\(3 classes from bottom 'ip' 4x3\)"):
        list(batches.stream(0, 1, 1))
    with pytest.raises(DataError, match="has label -1"):
        batches.makers[0](2)
    batches.close()
    assert rule._replace(ignore=99).bad(np.array([99, 3, 2])).tolist() == [False, True, False]


def _job(tmp_path, rng, **db):
    tiny.make_dataset(tmp_path / "data", rng, n_train=8, n_val=5)
    import shutil
    shutil.rmtree(tmp_path / "data" / "train_db")
    write_db(tmp_path / "data" / "train_db", rng, **db)
    return tiny.write_job(tmp_path / "job", tmp_path / "data", max_iter=6, test_interval=0,
                          snapshot=0, display=0)


def test_trainer_run_stops_or_skips_as_asked(tmp_path, rng, capsys):
    path = _job(tmp_path, rng, damage=DAMAGE["random bytes"], at={6})
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"error: {tmp_path / 'data' / 'train_db'}: layer 'train-data': "
                          "record 6 (key '00000006_")
    assert main(["run", str(path), "--no-progress", "--bad-records", "skip"]) == 0
    log = (tmp_path / "job" / "caffe_output.log").read_text()
    assert log.count("skipping damaged record 6") == 1  # 6 iterations x 4 = 24 reads: once


def test_trainer_run_label_out_of_range_names_the_loss_layer(tmp_path, rng):
    # before: IndexError "Target 99 is out of bounds" from torch, no record or layer named
    path = _job(tmp_path, rng, labels=[0, 1, 2, 1, 0, 1, 99, 2, 0])
    solver = Solver(path, Options(log_file=None, echo=False, progress=False))
    with pytest.raises(DataError, match=r"record 6 \(key '00000006_99'\) has label 99, but layer "
                                        r"'loss' \(SoftmaxWithLoss\) takes labels 0 to 2"):
        solver.solve()


def test_a_mean_that_does_not_fit_names_the_mean_file(tmp_path, rng):
    # issue 14: "<string>: the mean is 1x4x4 but the data is 1x6x10" named no file
    from lmdb_builder.mean import write_mean
    from trainer.data import source_spec
    write_db(tmp_path / "train_db", rng)
    write_mean(np.zeros((4, 4), np.uint8), tmp_path / "mean.binaryproto")
    lay = layer(tmp_path, transform=f'mean_file: "{tmp_path / "mean.binaryproto"}"')
    make = BatchMaker(source_spec(lay, caffe_pb2.TRAIN, 3, "net.prototxt"))
    with pytest.raises(DataError) as err:
        make.raw(0, np.empty(make.batch_shape, np.uint8))
    assert str(err.value).startswith(f"{tmp_path / 'mean.binaryproto'}: layer 'd' transform_param: "
                                     "the mean is 1x4x4 but the data is 1x6x10")
