"""Command-line messages name the file at fault (issue 14, smaller items): a 16-bit image among
several in `classify` (with and without --drawing: one rule, DIGITS' modes), a binary list
file in `classify-many`."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference.__main__ import main

from .tiny_models import tiny_onnx


@pytest.fixture
def model(tmp_path):
    return tiny_onnx(tmp_path / "tiny.onnx")


@pytest.mark.parametrize("drawing", [[], ["--drawing"]])
def test_16bit_image_among_several_is_named(model, tmp_path, capsys, drawing):
    fine = tmp_path / "fine.png"
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(fine)
    Image.fromarray(np.full((28, 28), 40000, np.uint16)).save(deep)
    assert main(["classify", "--provider", "cpu", str(model), str(fine), str(deep), *drawing]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {deep}: image mode \"I;16\" not supported")


def test_binary_list_file_is_named(model, tmp_path, capsys):
    listing = tmp_path / "val.txt"
    listing.write_bytes(b"a.png 0\n\xff\xfe\x00\x01 b.png 1\n")
    assert main(["classify-many", "--provider", "cpu", str(model), str(listing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {listing}: not a text list file (byte 0xFF at offset 8")
