"""The trainer's view: random access and Caffe's wrapping cursor, BGR CHW uint8, for raw and
encoded records, DIGITS' and convert_imageset's keys."""
from __future__ import annotations

import io
import pickle

import lmdb
import numpy as np
import pytest
from PIL import Image

from lmdb_builder.datum import encode_datum
from lmdb_builder.errors import BuilderError
from lmdb_builder.reader import DatumDB
from lmdb_builder.writer import LmdbWriter
from prototxt import caffe_pb2


@pytest.fixture
def written(tmp_path, rng):
    """7 colour 24x32 images in a DB, alternating raw / png, with what Caffe should see."""
    images = rng.integers(0, 256, (7, 24, 32, 3), dtype=np.uint8)
    labels = [3, 1, 4, 1, 5, 9, 2]
    with LmdbWriter(tmp_path / "db") as writer:
        for i, (image, label) in enumerate(zip(images, labels)):
            writer.put(label, encode_datum(image, label, "none" if i % 2 else "png"))
    expected = [image.transpose(2, 0, 1)[::-1] for image in images]
    return tmp_path / "db", expected, labels


def test_random_access_reads_back_bgr(written):
    path, expected, labels = written
    with DatumDB(path) as db:
        assert len(db) == 7
        for i in range(7):
            array, label = db[i]
            assert array.dtype == np.uint8 and array.shape == (3, 24, 32)
            assert np.array_equal(array, expected[i]) and label == labels[i]
        assert np.array_equal(db[-1][0], expected[6])
        assert db.get("00000004_5")[1] == 5
        with pytest.raises(IndexError):
            db[7]
        with pytest.raises(KeyError):
            db.get("00000099_0")
        assert [label for _, label in db] == labels
        assert db.keys[0] == b"00000000_3"


def test_cursor_wraps_around_like_caffe(written):
    path, expected, labels = written
    with DatumDB(path) as db:
        cursor = db.cursor()
        seen = [next(cursor)[1] for _ in range(16)]
        assert seen == labels + labels + labels[:2]
        assert cursor.epoch == 2 and cursor.key == b"00000001_1"
        late = db.cursor(start=5)
        assert [next(late)[1] for _ in range(3)] == [9, 2, 3]
        cursor.close()
        late.close()


def test_datumdb_pickles_for_worker_processes(written):
    path, expected, _ = written
    db = DatumDB(path)
    db[0]
    clone = pickle.loads(pickle.dumps(db))
    assert np.array_equal(clone[3][0], expected[3])
    db.close()
    clone.close()


def test_convert_imageset_keys_and_headers(tmp_path, rng):
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG")
    env = lmdb.open(str(tmp_path / "db"))
    with env.begin(write=True) as txn:
        txn.put(b"00000000_img/b.png", caffe_pb2.Datum(data=buf.getvalue(), label=2, encoded=True).SerializeToString())
        txn.put(b"00000001_img/a.png", caffe_pb2.Datum(channels=1, height=24, width=32, data=gray.tobytes(),
                                                         label=0).SerializeToString())
    env.close()
    with DatumDB(tmp_path / "db") as db:
        (a, la), (b, lb) = db[0], db[1]
        assert (la, lb) == (2, 0) and np.array_equal(a[0], gray) and np.array_equal(b[0], gray)


def test_not_an_lmdb(tmp_path):
    with pytest.raises(BuilderError, match="no LMDB"):
        DatumDB(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuilderError, match="no data.mdb"):
        DatumDB(tmp_path / "empty")
    LmdbWriter(tmp_path / "zero").close()
    with DatumDB(tmp_path / "zero") as db:
        assert len(db) == 0
        with pytest.raises(BuilderError, match="empty"):
            db.cursor()
