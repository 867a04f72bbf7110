"""MNIST idx files, where they are looked for, the md5-checked download (never the network here),
and DIGITS' MNIST split."""
from __future__ import annotations

import gzip
import hashlib
import io

import numpy as np
import pytest

from lmdb_builder import mnist as mnist_mod
from lmdb_builder.errors import BuilderError
from lmdb_builder.mnist import download_mnist, find_mnist_dir, load_mnist, plan_mnist, read_idx

from .test_split import MNIST_TRAIN_COUNTS


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fake_mnist(folder, rng, n_train=40, n_test=20, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for name, array in arrays.items():
        data = _idx(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def test_read_idx_gz_and_plain_non_square(tmp_path, rng):
    images = rng.integers(0, 256, (3, 5, 7), dtype=np.uint8)
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "a").write_bytes(_idx(images))
    assert np.array_equal(read_idx(tmp_path / "a.gz"), images)
    assert np.array_equal(read_idx(tmp_path / "a"), images)


def test_read_idx_errors_name_the_file(tmp_path, rng):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(BuilderError, match="bad: not an unsigned-byte idx file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "cut").write_bytes(_idx(rng.integers(0, 256, (3, 5, 7), dtype=np.uint8))[:-4])
    with pytest.raises(BuilderError, match="truncated"):
        read_idx(tmp_path / "cut")


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIGITS_MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(BuilderError) as info:
        find_mnist_dir(None, download=False)
    text = str(info.value)
    assert str(tmp_path / "cache" / "redigits" / "mnist") in text
    assert "train-images-idx3-ubyte.gz" in text and "--mnist-dir" in text and "REDIGITS_MNIST_DIR" in text
    assert not (tmp_path / "cache").exists()          # nothing created by a failed look-up
    with pytest.raises(BuilderError, match="t10k-labels"):
        (tmp_path / "partial").mkdir()
        (tmp_path / "partial" / "train-images-idx3-ubyte.gz").write_bytes(b"")
        (tmp_path / "partial" / "train-labels-idx1-ubyte.gz").write_bytes(b"")
        (tmp_path / "partial" / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
        find_mnist_dir(tmp_path / "partial")


def test_lookup_order(tmp_path, monkeypatch, rng):
    _write_fake_mnist(tmp_path / "env", rng)
    _write_fake_mnist(tmp_path / "flag", rng, gz=False)
    monkeypatch.setenv("REDIGITS_MNIST_DIR", str(tmp_path / "env"))
    assert find_mnist_dir(None) == tmp_path / "env"
    assert find_mnist_dir(tmp_path / "flag") == tmp_path / "flag"


def test_download_checks_md5_and_tries_the_next_mirror(tmp_path, monkeypatch, rng):
    payloads = {name: gzip.compress(_idx(np.zeros((2, 3), np.uint8) + i))
                for i, name in enumerate(mnist_mod.FILES)}
    monkeypatch.setattr(mnist_mod, "FILES", {n: (hashlib.md5(p).hexdigest(), "") for n, p in payloads.items()})
    calls = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def opener(url, timeout):
        calls.append(url)
        name = url.rsplit("/", 1)[1][:-3]
        if url.startswith("https://bad/"):
            return Response(b"corrupted" + payloads[name])
        if url.startswith("https://down/"):
            raise OSError("unreachable")
        return Response(payloads[name])

    dest = tmp_path / "cache"
    download_mnist(dest, mirrors=("https://down/", "https://bad/", "https://good/"), opener=opener)
    for name, payload in payloads.items():
        assert (dest / f"{name}.gz").read_bytes() == payload
    assert len(calls) == 12
    with pytest.raises(BuilderError, match="md5"):
        download_mnist(tmp_path / "other", mirrors=("https://bad/",), opener=opener)
    assert not any((tmp_path / "other").glob("*.gz"))


def test_fake_mnist_loads_inverted(tmp_path, rng):
    arrays = _write_fake_mnist(tmp_path, rng)
    data = load_mnist(tmp_path)
    assert np.array_equal(data.train_images, 255 - arrays["train-images-idx3-ubyte"])
    raw = load_mnist(str(tmp_path), invert=False, limit=5)       # a str is a folder too
    assert np.array_equal(raw.test_images, arrays["t10k-images-idx3-ubyte"][:5])


def test_real_mnist_counts_and_polarity(mnist_dir):
    data = load_mnist(mnist_dir)
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert np.bincount(data.train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert data.train_images[:, 0, 0].min() == 255          # inverted: white background


def test_digits_defaults_split_45002_14998(mnist_dir):
    data = load_mnist(mnist_dir)
    plan = plan_mnist(data)
    assert (len(plan.splits["train"]), len(plan.splits["val"])) == (45002, 14998)
    assert plan.labels == [str(d) for d in range(10)]
    entry = plan.splits["train"][0]
    assert entry.name.startswith("train/0/") and entry.name.endswith(".png") and entry.label == 0
    index = int(entry.name[-9:-4])
    assert np.array_equal(entry.source, data.train_images[index])
    other = plan_mnist(data, test_as_val=True)
    assert (len(other.splits["train"]), len(other.splits["val"])) == (60000, 10000)
    assert other.splits["val"][0].name.startswith("test/0/")
    assert [e.name for e in plan_mnist(data, seed=0).splits["val"]] == [e.name for e in plan.splits["val"]]
    assert [e.name for e in plan_mnist(data, seed=1).splits["val"]] != [e.name for e in plan.splits["val"]]
