"""The fast encode path (issue 12): records decode to the pixels of the previous encoder (PIL's
PNG of DIGITS' resized RGB/L array), grey images in colour datasets kept HxW until the PNG, the
mean summed without HxWx3 copies, the same bytes for any number of workers, and --png-level."""
from __future__ import annotations

import io
import json

import lmdb
import numpy as np
import pytest
from PIL import Image

from lmdb_builder.__main__ import main
from lmdb_builder.build import BuildOptions, build_dataset
from lmdb_builder.datum import encode_datum, read_datum
from lmdb_builder.encode import EncodeJob, encode_chunk, encode_one
from lmdb_builder.folders import plan_folder
from lmdb_builder.images import RESIZE_MODES, load_image, resize_image
from lmdb_builder.mean import read_mean
from lmdb_builder.plan import Entry, ImageSettings


def _previous_record(path, settings: ImageSettings, rng) -> bytes:
    """What the builder wrote before issue 12: the expanded array, PIL's PNG at its defaults."""
    array = resize_image(load_image(path), settings.height, settings.width, settings.channels,
                         settings.resize_mode, rng)
    from prototxt import caffe_pb2
    datum = caffe_pb2.Datum(channels=array.shape[2] if array.ndim == 3 else 1, height=array.shape[0],
                            width=array.shape[1], label=3, encoded=True)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    datum.data = buf.getvalue()
    return datum.SerializeToString()


def _tree(root, rng):
    """Grey, RGB and palette PNGs of odd sizes in two classes."""
    files = []
    for c in ("ant", "bee"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            size = (11 + 2 * i, 17 - i)
            if i % 3 == 0:
                image = Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8), "L")
            elif i % 3 == 1:
                image = Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8), "RGB")
            else:
                image = Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).convert("P")
            image.save(root / c / f"{i}.png")
            files.append(root / c / f"{i}.png")
    return files


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("channels", (1, 3))
def test_records_decode_to_the_previous_pixels(tmp_path, rng, mode, channels):
    settings = ImageSettings(19, 13, channels, mode, "png")
    for position, path in enumerate(_tree(tmp_path / "imgs", rng)):
        job = EncodeJob(settings, seed=5, db_id=0, want_sum=False)
        array, value = encode_one(Entry(str(path), str(path), 3), position, job)
        noise = np.random.default_rng([5, 0, position]) if mode in ("fill", "half_crop") else None
        before = _previous_record(path, settings, noise)
        new_pixels, label = read_datum(value)
        old_pixels, _ = read_datum(before)
        assert label == 3 and new_pixels.shape == (channels, 19, 13)
        assert np.array_equal(new_pixels, old_pixels), (path, mode)
        assert value != before                       # other PNG bytes, same pixels


def test_grey_in_colour_stays_hxw_and_pads_in_colour(rng):
    grey = Image.fromarray(rng.integers(0, 256, (9, 20), dtype=np.uint8), "L")
    kept = resize_image(grey, 12, 16, 3, "squash", keep_gray=True)
    assert kept.shape == (12, 16)
    assert np.array_equal(np.repeat(kept[:, :, np.newaxis], 3, axis=2), resize_image(grey, 12, 16, 3, "squash"))
    padded = resize_image(grey, 12, 16, 3, "fill", np.random.default_rng(1), keep_gray=True)
    assert padded.shape == (12, 16, 3)              # the noise has three different channels
    assert np.array_equal(padded, resize_image(grey, 12, 16, 3, "fill", np.random.default_rng(1)))


@pytest.mark.parametrize("encoding", ("none", "jpg"))
def test_grey_as_rgb_same_bytes_as_the_expanded_array(rng, encoding):
    grey = rng.integers(0, 256, (14, 9), dtype=np.uint8)
    expanded = np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    assert encode_datum(grey, 4, encoding, gray_as_rgb=True) == encode_datum(expanded, 4, encoding)


def test_chunk_mean_of_grey_and_colour_images(tmp_path, rng):
    files = _tree(tmp_path / "imgs", rng)
    settings = ImageSettings(10, 7, 3, "crop", "png")
    result = encode_chunk(EncodeJob(settings, 0, 0, want_sum=True), list(enumerate(
        Entry(str(p), str(p), 0) for p in files)))
    expected = sum(resize_image(load_image(p), 10, 7, 3, "crop").astype(np.int64) for p in files)
    assert result.count == len(files) and result.total.dtype == np.int64
    assert np.array_equal(result.total, expected)


def test_grey_into_colour_same_bytes_for_one_or_two_workers(tmp_path, rng):
    for c in ("zero", "one", "two"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(rng.integers(0, 256, (15, 21), dtype=np.uint8), "L").save(tmp_path / "imgs" / c / f"{i}.png")
    plan = plan_folder(tmp_path / "imgs", seed=3)
    settings = ImageSettings(33, 26, 3, "squash", "png")
    one = build_dataset(plan, tmp_path / "one", settings, BuildOptions(workers=1, seed=3, progress=False))
    two = build_dataset(plan, tmp_path / "two", settings, BuildOptions(workers=2, seed=3, progress=False))
    records = {}
    for name, result in (("one", one), ("two", two)):
        env = lmdb.open(str(result.out / "train_db"), readonly=True, lock=False)
        with env.begin() as txn:
            records[name] = list(txn.cursor())
        env.close()
    assert records["one"] == records["two"] and len(records["one"]) == one.dbs["train_db"].records
    assert (one.out / "mean.binaryproto").read_bytes() == (two.out / "mean.binaryproto").read_bytes()
    # the mean of the records as Caffe reads them (BGR, three equal channels here)
    pixels = np.stack([read_datum(value)[0] for _, value in records["one"]]).astype(np.float64)
    assert np.array_equal(read_mean(one.out / "mean.binaryproto"), np.around(pixels.mean(axis=0)))
    assert json.loads((one.out / "summary.json").read_text())["image"]["png_level"] == 1


def test_png_level_option(tmp_path, rng, capsys):
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(4):
            ramp = np.add.outer(np.arange(20), np.arange(30) * (i + 1)).astype(np.uint8)
            Image.fromarray(ramp, "L").save(tmp_path / "imgs" / c / f"{i}.png")
    sizes = {}
    for level in (0, 9):
        out = tmp_path / f"level{level}"
        assert main(["folder", str(tmp_path / "imgs"), "--out", str(out), "--image-size", "40x24",
                     "--png-level", str(level), "--workers", "1"]) == 0
        assert f"(40x24x3 png level {level}, squash)" in capsys.readouterr().out
        assert json.loads((out / "summary.json").read_text())["image"]["png_level"] == level
        sizes[level] = (out / "train_db" / "data.mdb").stat().st_size
    assert sizes[9] < sizes[0]
    with pytest.raises(SystemExit) as exc:
        main(["folder", str(tmp_path / "imgs"), "--out", str(tmp_path / "x"), "--png-level", "10"])
    assert exc.value.code == 2 and "--png-level" in capsys.readouterr().err
    with pytest.raises(ValueError, match="png_level"):
        ImageSettings(png_level=-1)
