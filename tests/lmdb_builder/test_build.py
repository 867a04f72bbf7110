"""Whole dataset folders: DIGITS' layout and counts, determinism across workers, MNIST arrays
equal to the folder method on DIGITS' PNGs, bad images, and atomic output."""
from __future__ import annotations

import json
import logging

import lmdb
import numpy as np
import pytest
from PIL import Image

from lmdb_builder import writer as writer_mod
from lmdb_builder.datum import parse_datum
from lmdb_builder.build import BuildOptions, build_dataset
from lmdb_builder.errors import BuilderError, LoadImageError
from lmdb_builder.folders import plan_folder
from lmdb_builder.mean import compute_mean, read_mean
from lmdb_builder.mnist import load_mnist, plan_mnist
from lmdb_builder.plan import ImageSettings
from lmdb_builder.reader import DatumDB
from prototxt import io as pio


def _items(db_path) -> list[tuple[bytes, bytes]]:
    env = lmdb.open(str(db_path), readonly=True, lock=False)
    with env.begin() as txn:
        items = list(txn.cursor())
    env.close()
    return items


def _no_leftovers(parent, name):
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def _image_tree(root, rng, classes=("bird", "red_fox"), per_class=7, size=(32, 24)):
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / c / f"{i:02d}.png")
    return root


def test_whole_mnist_28x28_grayscale_as_digits(mnist_dir, tmp_path):
    plan = plan_mnist(load_mnist(mnist_dir))
    result = build_dataset(plan, tmp_path / "mnist", ImageSettings(28, 28, 1), BuildOptions(workers=2))
    out = result.out
    assert {k: r.records for k, r in result.dbs.items()} == {"train_db": 45002, "val_db": 14998}
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "train_db", "val_db", "labels.txt", "train.txt", "val.txt", "mean.binaryproto", "mean.jpg",
        "summary.json", "create_train_db.log", "create_val_db.log"])
    assert (out / "labels.txt").read_text() == "".join(f"{d}\n" for d in range(10))
    assert len((out / "train.txt").read_text().splitlines()) == 45002
    items = _items(out / "train_db")
    assert len(items) == 45002
    for i in (0, 1, 2, 45001):
        key, value = items[i]
        assert key == b"%08d_%d" % (i, parse_datum(value).label)      # DIGITS' `%08d_%d`
    with DatumDB(out / "val_db") as db:
        image, label = db[0]
        assert image.shape == (1, 28, 28) and image.dtype == np.uint8 and 0 <= label <= 9
    blob = pio.read_blob(out / "mean.binaryproto")
    assert pio.blob_shape(blob) == (1, 1, 28, 28)
    mean = read_mean(out / "mean.binaryproto")
    assert mean[0, 0, 0] == 255                                  # inverted digits: white corners
    assert np.array_equal(compute_mean(out / "train_db"), mean.astype(np.uint8))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["databases"]["train_db"]["per_class"]["1"] == 5057
    assert summary["mean"]["shape"] == [1, 1, 28, 28] and summary["image"]["encoding"] == "png"
    assert "45002 images written to database" in (out / "create_train_db.log").read_text()
    assert not _no_leftovers(tmp_path, "mnist")


def test_same_bytes_for_one_or_two_workers(mnist_dir, tmp_path):
    plan = plan_mnist(load_mnist(mnist_dir, limit=700))
    image = ImageSettings(24, 32, 3, "fill", "png")                # noise comes from the seed
    one = build_dataset(plan, tmp_path / "one", image, BuildOptions(workers=1, seed=0))
    two = build_dataset(plan, tmp_path / "two", image, BuildOptions(workers=2, seed=0))
    for db in ("train_db", "val_db"):
        assert _items(one.out / db) == _items(two.out / db)
    assert (one.out / "mean.binaryproto").read_bytes() == (two.out / "mean.binaryproto").read_bytes()
    other = build_dataset(plan, tmp_path / "other", image, BuildOptions(workers=1, seed=1))
    assert _items(other.out / "train_db") != _items(one.out / "train_db")


def test_mnist_arrays_equal_the_folder_method_on_digits_pngs(mnist_dir, tmp_path):
    """DIGITS saved each inverted digit as train/<label>/<index:05d>.png and parsed that folder;
    building from the arrays must give the same databases."""
    data = load_mnist(mnist_dir, limit=400)
    for index, (image, label) in enumerate(zip(data.train_images, data.train_labels)):
        path = tmp_path / "digits" / "train" / str(label) / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    settings, options = ImageSettings(28, 28, 1), BuildOptions(workers=1, seed=11)
    arrays = build_dataset(plan_mnist(data, seed=11), tmp_path / "arrays", settings, options)
    folder = build_dataset(plan_folder(tmp_path / "digits" / "train", seed=11), tmp_path / "folder",
                           settings, options)
    for db in ("train_db", "val_db"):
        assert _items(arrays.out / db) == _items(folder.out / db)
    assert (arrays.out / "mean.binaryproto").read_bytes() == (folder.out / "mean.binaryproto").read_bytes()
    assert (arrays.out / "labels.txt").read_text() == (folder.out / "labels.txt").read_text()
    names = [line.split()[0] for line in (folder.out / "train.txt").read_text().splitlines()]
    assert [n.split("digits/")[1] for n in names] == \
        [line.split()[0] for line in (arrays.out / "train.txt").read_text().splitlines()]


def test_raw_colour_records_are_bgr_of_the_resized_image(tmp_path, rng):
    root = _image_tree(tmp_path / "imgs", rng)
    plan = plan_folder(root, pct_val=0, seed=2)
    result = build_dataset(plan, tmp_path / "raw", ImageSettings(24, 32, 3, "squash", "none"),
                           BuildOptions(workers=1, shuffle=False))
    with DatumDB(result.out / "train_db") as db:
        for i, entry in enumerate(plan.splits["train"]):
            array, label = db[i]
            source = np.asarray(Image.open(entry.source))            # 24x32 already: no resize
            assert label == entry.label and np.array_equal(array, source.transpose(2, 0, 1)[::-1])


def test_corrupt_image_is_skipped_with_a_warning_or_stops_with_strict(tmp_path, rng, caplog):
    root = _image_tree(tmp_path / "imgs", rng)
    bad = root / "bird" / "03.png"
    bad.write_bytes(bad.read_bytes()[:100])
    (root / "bird" / "notes.txt").write_text("ignored, not an image")
    plan = plan_folder(root, pct_val=0, seed=0)
    with caplog.at_level(logging.WARNING):
        result = build_dataset(plan, tmp_path / "out", ImageSettings(16, 16, 3), BuildOptions(workers=1))
    assert result.dbs["train_db"].records == 13
    assert result.dbs["train_db"].skipped[0]["name"] == str(bad)
    assert str(bad) in caplog.text and "LoadImageError" in caplog.text
    assert str(bad) in (result.out / "create_train_db.log").read_text()
    summary = json.loads((result.out / "summary.json").read_text())
    assert len(summary["databases"]["train_db"]["skipped"]) == 1
    with pytest.raises(LoadImageError, match="03.png"):
        build_dataset(plan, tmp_path / "strict", ImageSettings(16, 16, 3),
                      BuildOptions(workers=2, strict=True))
    assert not (tmp_path / "strict").exists() and not _no_leftovers(tmp_path, "strict")


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_build_leaves_nothing(tmp_path, rng, monkeypatch, workers):
    root = _image_tree(tmp_path / "imgs", rng, per_class=80)
    plan = plan_folder(root, seed=0)
    real_put, calls = writer_mod.LmdbWriter.put, []

    def put(self, label, value):
        calls.append(1)
        if len(calls) == 120:                                        # after one transaction
            raise KeyboardInterrupt
        real_put(self, label, value)

    monkeypatch.setattr(writer_mod.LmdbWriter, "put", put)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(plan, tmp_path / "out", ImageSettings(16, 16, 3), BuildOptions(workers=workers))
    assert not (tmp_path / "out").exists() and not _no_leftovers(tmp_path, "out")


def test_full_disk_leaves_nothing_and_says_so(tmp_path, rng, monkeypatch):
    root = _image_tree(tmp_path / "imgs", rng)

    def put(self, label, value):
        raise lmdb.DiskError("mdb_put: No space left on device")

    monkeypatch.setattr(writer_mod.LmdbWriter, "put", put)
    with pytest.raises(BuilderError, match="disk full"):
        build_dataset(plan_folder(root), tmp_path / "out", ImageSettings(16, 16, 3), BuildOptions(workers=1))
    assert not (tmp_path / "out").exists() and not _no_leftovers(tmp_path, "out")


def test_existing_output_needs_force_and_force_spares_other_folders(tmp_path, rng):
    root = _image_tree(tmp_path / "imgs", rng)
    plan = plan_folder(root)
    image = ImageSettings(16, 16, 1)
    first = build_dataset(plan, tmp_path / "out", image, BuildOptions(workers=1))
    with pytest.raises(BuilderError, match="already exists.*--force"):
        build_dataset(plan, tmp_path / "out", image, BuildOptions(workers=1))
    again = build_dataset(plan, tmp_path / "out", ImageSettings(8, 8, 1), BuildOptions(workers=1, force=True))
    assert again.mean_shape == (1, 8, 8) and first.out == again.out
    assert not _no_leftovers(tmp_path, "out")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("years of work")
    with pytest.raises(BuilderError, match="not a dataset folder"):
        build_dataset(plan, tmp_path / "precious", image, BuildOptions(workers=1, force=True))
    assert (tmp_path / "precious" / "thesis.tex").exists()


def test_test_split_gets_its_own_db(tmp_path, rng):
    root = _image_tree(tmp_path / "imgs", rng, per_class=10)
    result = build_dataset(plan_folder(root, pct_val=20, pct_test=20), tmp_path / "out",
                           ImageSettings(16, 16, 3), BuildOptions(workers=1))
    assert {k: r.records for k, r in result.dbs.items()} == {"train_db": 12, "val_db": 4, "test_db": 4}
    assert (result.out / "test.txt").is_file() and (result.out / "create_test_db.log").is_file()


@pytest.mark.slow
def test_mnist_256x256x3_mean_matches_the_seed_job(mnist_dir, seed_job, tmp_path):
    """DIGITS' defaults on MNIST (the seed job's dataset): only the random split differs."""
    plan = plan_mnist(load_mnist(mnist_dir))
    result = build_dataset(plan, tmp_path / "mnist256", ImageSettings(256, 256, 3, "squash", "png"),
                           BuildOptions())
    assert {k: r.records for k, r in result.dbs.items()} == {"train_db": 45002, "val_db": 14998}
    ours, seed = pio.read_blob(result.out / "mean.binaryproto"), pio.read_blob(seed_job / "mean.binaryproto")
    assert pio.blob_shape(ours) == pio.blob_shape(seed) == (1, 3, 256, 256)
    assert not ours.HasField("shape") and not seed.HasField("shape")
    a, b = np.asarray(ours.data), np.asarray(seed.data)
    diff = np.abs(a - b)
    assert diff.mean() < 0.5 and diff.max() <= 3, (diff.mean(), diff.max())
    head = (seed_job / "mean.binaryproto").read_bytes()[:16]
    assert (result.out / "mean.binaryproto").read_bytes()[:16] == head       # same field layout
    with DatumDB(result.out / "train_db") as db:
        image, _ = db[0]
        assert image.shape == (3, 256, 256)
        assert np.array_equal(image[0], image[2])                             # gray digits


def test_workers_fork_only_while_single_threaded():
    import threading

    from lmdb_builder.encode import chunk_size, start_method
    assert start_method() == "fork", threading.enumerate()   # pytest: the main thread only
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert start_method() in ("forkserver", "spawn")
    finally:
        stop.set()
        thread.join()
    assert chunk_size(45002, 2) == 256 and chunk_size(100, 2) == 16


def test_an_image_that_cannot_be_resized_is_skipped_too(tmp_path, rng):
    root = _image_tree(tmp_path / "imgs", rng)
    Image.new("RGB", (200, 1)).save(root / "bird" / "strip.png")    # fill: 16 x round2(1/12.5) = 0 rows
    result = build_dataset(plan_folder(root, pct_val=0), tmp_path / "out", ImageSettings(16, 16, 3, "fill"),
                           BuildOptions(workers=1))
    assert result.dbs["train_db"].records == 14
    assert "strip.png" in result.dbs["train_db"].skipped[0]["name"]
    assert "cannot resize" in result.dbs["train_db"].skipped[0]["error"]
