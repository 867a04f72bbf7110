"""prototxt split refuses what makes an unusable net (issue 14): a 0-pixel image, 0 classes
(flag or empty labels.txt), crop or batch size 0; DIGITS' own checks name the network file."""
from __future__ import annotations

import pytest

from prototxt import DatasetFacts, DigitsError, build_network, digits_split
from prototxt.__main__ import main


@pytest.mark.parametrize("flags,message", [
    (["--image", "0x0x1", "--classes", "10"], "--image must be HxWxC with H, W at least 1"),
    (["--image", "28x0x1", "--classes", "10"], "--image must be HxWxC"),
    (["--image", "28x28x1", "--classes", "0"], "argument --classes: must be a whole number of at least 1"),
    (["--image", "28x28x1", "--classes", "10", "--crop", "0"], "argument --crop"),
    (["--image", "28x28x1", "--classes", "10", "--batch-size", "0"], "argument --batch-size"),
])
def test_unusable_sizes_are_refused(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        main(["split", "lenet", *flags, "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_empty_labels_file_is_named(tmp_path, capsys):
    (tmp_path / "labels.txt").write_text("\n\n")
    assert main(["split", "lenet", "--image", "28x28x1", "--dataset", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'labels.txt'}: labels.txt "
                                              "names no class")
    assert not (tmp_path / "o").exists()


def test_digits_checks_name_the_network(tmp_path, capsys):
    assert main(["split", "lenet", "--image", "8x8x1", "--classes", "3", "--crop", "20",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "<string>" not in err and "lenet.prototxt: crop_size is larger" in err


@pytest.mark.parametrize("facts,message", [
    (dict(num_classes=0), "at least 1 class"), (dict(height=0), "at least 1x1"),
    (dict(channels=2), "1 or 3 channels"),
])
def test_library_refuses_empty_facts(facts, message):
    given = dict(num_classes=10, height=28, width=28, channels=1, dataset_dir="/d")
    with pytest.raises(DigitsError, match=message):
        digits_split(build_network("lenet"), DatasetFacts(**{**given, **facts}))


def test_pixel_mean_that_does_not_fit_names_the_mean_file(tmp_path, capsys):
    from prototxt import caffe_pb2, write_binary
    blob = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[1, 1, 4, 4]), data=[1.0] * 16)
    write_binary(blob, tmp_path / "mean.binaryproto")
    assert main(["split", "lenet", "--image", "28x28x1", "--classes", "3", "--mean", "pixel",
                 "--dataset", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'mean.binaryproto'}: mean blob has 16 values")
