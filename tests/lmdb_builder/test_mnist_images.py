"""MNIST PNG folders as DIGITS' downloader wrote them."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lmdb_builder import load_mnist
from lmdb_builder.__main__ import main
from lmdb_builder.errors import BuilderError
from lmdb_builder.mnist_images import write_mnist_images


def test_test_split_pngs_and_list(tmp_path, mnist_dir):
    mnist = load_mnist(mnist_dir, limit=25)
    listing = write_mnist_images(mnist, tmp_path, "test")
    lines = listing.read_text().splitlines()
    assert len(lines) == 25
    path, label = lines[0].rsplit(" ", 1)
    assert path == str(tmp_path / "test" / label / "00000.png")
    image = np.asarray(Image.open(path))
    assert image.shape == (28, 28) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, mnist.test_images[0])
    assert image[0, 0] == 255  # inverted: white background, as DIGITS' downloader
    assert (tmp_path / "test" / "labels.txt").read_text().split() == [str(d) for d in range(10)]
    with pytest.raises(BuilderError, match="--force"):
        write_mnist_images(mnist, tmp_path, "test")


def test_cli(tmp_path, mnist_dir, capsys):
    assert main(["mnist-images", "--out", str(tmp_path), "--mnist-dir", str(mnist_dir),
                 "--limit", "12", "--split", "train", "test"]) == 0
    assert "wrote 12 train images" in capsys.readouterr().out
    assert len((tmp_path / "train" / "train.txt").read_text().splitlines()) == 12
