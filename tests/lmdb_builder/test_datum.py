"""Caffe Datum records: DIGITS' byte layout when writing, Caffe's BGR view when reading."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lmdb_builder.datum import (array_to_datum, datum_encoding, datum_to_array, encode_datum,
                                parse_datum, read_datum)
from lmdb_builder.errors import BuilderError
from prototxt import caffe_pb2


@pytest.fixture
def rgb(rng) -> np.ndarray:
    return rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)


def _bgr_chw(rgb: np.ndarray) -> np.ndarray:
    return rgb.transpose(2, 0, 1)[::-1]


def test_raw_colour_is_bgr_chw_like_caffe_io_array_to_datum(rgb):
    datum = array_to_datum(rgb, 0, "none")
    # what caffe.io.array_to_datum(image_chw_bgr, label) serializes
    expected = caffe_pb2.Datum(channels=3, height=24, width=32,
                               data=np.ascontiguousarray(_bgr_chw(rgb)).tobytes(), label=0)
    assert datum.SerializeToString() == expected.SerializeToString()
    assert not datum.HasField("encoded") and len(datum.float_data) == 0
    assert datum.HasField("label")                   # label 0 is written, as pycaffe does
    assert np.array_equal(datum_to_array(datum), _bgr_chw(rgb))


def test_raw_grayscale(rng):
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    datum = array_to_datum(gray, 7, "none")
    assert (datum.channels, datum.height, datum.width, datum.label) == (1, 24, 32, 7)
    assert datum.data == gray.tobytes()
    assert np.array_equal(read_datum(datum.SerializeToString())[0], gray[np.newaxis])


def test_png_stores_a_png_of_the_rgb_array_and_reads_back_bgr(rgb):
    value = encode_datum(rgb, 4, "png")
    datum = parse_datum(value)
    assert (datum.channels, datum.height, datum.width, datum.label, datum.encoded) == (3, 24, 32, 4, True)
    decoded = Image.open(io.BytesIO(datum.data))      # DIGITS stored PIL's PNG: same pixels, other bytes
    assert decoded.mode == "RGB" and np.array_equal(np.asarray(decoded), rgb)
    assert datum_encoding(datum) == "png"
    array, label = read_datum(value)
    assert label == 4 and array.dtype == np.uint8
    assert np.array_equal(array, _bgr_chw(rgb))


def test_jpg_quality_90(rgb):
    datum = array_to_datum(rgb, 1, "jpg")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    assert datum.data == buf.getvalue() and datum_encoding(datum) == "jpg"
    decoded = datum_to_array(datum)
    assert decoded.shape == (3, 24, 32)
    smooth = np.tile(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (24, 1, 3))
    back = datum_to_array(array_to_datum(smooth, 1, "jpg"))
    assert np.abs(back.astype(int) - _bgr_chw(smooth)).mean() < 2


def test_grayscale_png_stays_one_channel(rng):
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    array, _ = read_datum(encode_datum(gray, 2, "png"))
    assert array.shape == (1, 24, 32) and np.array_equal(array[0], gray)


def test_convert_imageset_style_records(rng):
    """Encoded with a 0x0x0 header (convert_imageset), RGBA dropped to BGR like imdecode."""
    rgba = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    datum = caffe_pb2.Datum(data=buf.getvalue(), label=3, encoded=True)
    array = datum_to_array(datum)
    assert np.array_equal(array, _bgr_chw(rgba[..., :3]))


def test_float_data_datum():
    datum = caffe_pb2.Datum(channels=1, height=2, width=3, float_data=[0.5] * 6, label=1)
    array = datum_to_array(datum)
    assert array.dtype == np.float32 and array.shape == (1, 2, 3)


def test_corrupt_records_raise_with_the_key(rgb):
    with pytest.raises(BuilderError, match="00000003_1"):
        parse_datum(b"\xff\xff\xff\xff", "00000003_1")
    short = caffe_pb2.Datum(channels=3, height=24, width=32, data=b"\x00" * 10)
    with pytest.raises(BuilderError, match="10 bytes"):
        datum_to_array(short, "k")
    bad = caffe_pb2.Datum(channels=3, height=24, width=32, data=b"\x89PNG garbage", encoded=True)
    with pytest.raises(BuilderError, match="cannot be decoded"):
        datum_to_array(bad, "k")
    with pytest.raises(ValueError):
        array_to_datum(rgb.astype(np.float32), 0)
    with pytest.raises(ValueError):
        array_to_datum(rgb, 0, "webp")
