"""python -m trainer new: a DIGITS model job folder, checked against the seed job."""
from __future__ import annotations

import json
import shutil

import lmdb
import pytest

from prototxt import caffe_pb2, parse_text, read_net, read_text
from trainer.__main__ import main
from trainer.dataset_info import read_dataset_info


def _fake_db(path, count, channels, height, width):
    """An LMDB with `count` tiny records (only the entry count and first datum matter here)."""
    env = lmdb.open(str(path), map_size=1 << 26)
    datum = caffe_pb2.Datum(channels=channels, height=height, width=width, label=0, data=b"\x00")
    value = datum.SerializeToString()
    with env.begin(write=True) as txn:
        for i in range(count):
            txn.put(b"%08d_%d" % (i, i % 10), value)
    env.close()


@pytest.fixture(scope="module")
def seed_like_dataset(tmp_path_factory, seed_job):
    """The seed's dataset as far as a model job sees it: counts, labels, 256x256x3 mean."""
    folder = tmp_path_factory.mktemp("20190317-025154-2525")
    _fake_db(folder / "train_db", 45002, 3, 256, 256)
    _fake_db(folder / "val_db", 14998, 3, 256, 256)
    shutil.copyfile(seed_job / "labels.txt", folder / "labels.txt")
    shutil.copyfile(seed_job / "mean.binaryproto", folder / "mean.binaryproto")
    return folder


def test_dataset_info(seed_like_dataset):
    info = read_dataset_info(seed_like_dataset)
    assert (info.num_classes, info.n_train, info.n_val) == (10, 45002, 14998)
    assert (info.height, info.width, info.channels) == (256, 256, 3)


def test_new_reproduces_the_seed_job(seed_like_dataset, seed_job, tmp_path, capsys):
    out = tmp_path / "20190317-030015-54e2"
    assert main(["new", "--dataset", str(seed_like_dataset), "--network", "googlenet",
                 "--out", str(out), "--epochs", "2", "--lr", "0.01"]) == 0
    solver = read_text(out / "solver.prototxt", caffe_pb2.SolverParameter())
    seed_solver = read_text(seed_job / "solver.prototxt", caffe_pb2.SolverParameter())
    solver.ClearField("solver_mode")
    seed_solver.ClearField("solver_mode")
    assert solver == seed_solver
    # train_val equals the seed's once the dataset folder is the seed's
    ours = (out / "train_val.prototxt").read_text().replace(
        str(seed_like_dataset), "/opt/DIGITS/digits/jobs/20190317-025154-2525")
    theirs = read_net(seed_job / "train_val.prototxt")
    assert parse_text(ours, caffe_pb2.NetParameter()) == theirs
    assert read_net(out / "deploy.prototxt") == read_net(seed_job / "deploy.prototxt")
    info = json.loads((out / "info.json").read_text())
    assert info["image dimensions"] == [256, 256, 3] and info["mean subtraction"] == "image"
    assert (out / "labels.txt").read_text() == (seed_job / "labels.txt").read_text()
    assert "max_iter 2814" in capsys.readouterr().out


def test_no_mirror_changes_only_the_flips(seed_like_dataset, seed_job, tmp_path):
    out = tmp_path / "job"
    assert main(["new", "--dataset", str(seed_like_dataset), "--network", "googlenet",
                 "--out", str(out), "--epochs", "2", "--lr", "0.01", "--no-mirror"]) == 0
    ours = parse_text((out / "train_val.prototxt").read_text().replace(
        str(seed_like_dataset), "/opt/DIGITS/digits/jobs/20190317-025154-2525"),
        caffe_pb2.NetParameter())
    flipped = [layer.name for layer in read_net(seed_job / "train_val.prototxt").layer
               if layer.transform_param.mirror]
    assert flipped == ["train-data"]
    assert not any(layer.transform_param.mirror for layer in ours.layer)
    assert not any(layer.transform_param.mirror
                   for layer in read_net(out / "original.prototxt").layer)
    for layer in ours.layer:          # flipping again gives the seed's train_val exactly
        if layer.name in flipped:
            layer.transform_param.mirror = True
    assert ours == read_net(seed_job / "train_val.prototxt")


def test_existing_output_is_refused(seed_like_dataset, tmp_path, capsys):
    out = tmp_path / "job"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["new", "--dataset", str(seed_like_dataset), "--network", "lenet",
                 "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


def test_failed_job_leaves_nothing(seed_like_dataset, tmp_path, capsys):
    # GoogLeNet crop 300 does not fit 256x256 images: DIGITS' error, and no folder at all
    out = tmp_path / "job"
    assert main(["new", "--dataset", str(seed_like_dataset), "--network", "googlenet",
                 "--out", str(out), "--crop-size", "300"]) == 2
    assert "crop_size is larger than the image size" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_not_a_dataset(tmp_path, capsys):
    assert main(["new", "--dataset", str(tmp_path), "--network", "lenet", "--out",
                 str(tmp_path / "o")]) == 2
    assert "labels.txt is missing" in capsys.readouterr().err
