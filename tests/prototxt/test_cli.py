"""python -m prototxt: check, split, upgrade; and every package answers --help."""
from __future__ import annotations

import subprocess
import sys

import pytest

from prototxt import io
from prototxt.__main__ import main

SEED_DATASET = "/opt/DIGITS/digits/jobs/20190317-025154-2525"


def test_check_every_reference_prototxt(reference_dir, capsys):
    files = [str(p) for p in sorted(reference_dir.glob("*/*.prototxt"))]
    assert main(["check", *files]) == 0
    out = capsys.readouterr().out
    assert "net 'GoogleNet', 167 layers" in out and "solver type SGD" in out
    assert "unsupported" not in out


def test_check_binary_files(seed_job, tmp_path, capsys):
    net = io.read_net(seed_job / "deploy.prototxt")
    net.layer[0].blobs.add().shape.dim.extend([64, 3, 7, 7])
    model = io.write_binary(net, tmp_path / "snapshot_iter_3.caffemodel")
    assert main(["check", str(seed_job / "mean.binaryproto"), str(model)]) == 0
    out = capsys.readouterr().out
    assert "blob 1x3x256x256" in out and "[64x3x7x7]" in out


def test_check_reports_typo_with_place(tmp_path, capsys):
    bad = tmp_path / "net.prototxt"
    bad.write_text('layer {\n  name: "a"\n  type: "ReLU"\n  botom: "x"\n}\n')
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}:4:3:" in err and "botom" in err


def test_check_lists_unknown_types_as_unsupported(tmp_path, capsys):
    net = tmp_path / "custom.prototxt"
    net.write_text('layer { name: "in" type: "Input" top: "x" }\n'
                   'layer { name: "odd" type: "Convolutoin" bottom: "x" top: "y" }\n')
    assert main(["check", str(net)]) == 0
    out = capsys.readouterr().out
    assert "<- unsupported" in out and "unsupported layer types: 'Convolutoin' (odd)" in out


def test_split_reproduces_the_seed_job(seed_job, tmp_path, capsys):
    out = tmp_path / "job"
    assert main(["split", str(seed_job / "original.prototxt"), "--classes", "10",
                 "--image", "256x256x3", "--dataset", SEED_DATASET, "--out", str(out)]) == 0
    for name in ("original", "train_val", "deploy"):
        assert io.read_net(out / f"{name}.prototxt") == io.read_net(seed_job / f"{name}.prototxt"), name
    assert "input 1x3x224x224" in capsys.readouterr().out


def test_split_standard_network_with_labels_file(tmp_path, capsys):
    dataset = tmp_path / "mnist"
    (dataset / "train_db").mkdir(parents=True)  # no val_db: DIGITS drops the val data layer
    (dataset / "labels.txt").write_text("\n".join(str(i) for i in range(10)) + "\n\n")
    out = tmp_path / "model"
    assert main(["split", "lenet", "--image", "28x32x1", "--dataset", str(dataset), "--out", str(out)]) == 0
    train_val = io.read_net(out / "train_val.prototxt")
    data = [l for l in train_val.layer if l.type == "Data"]
    assert len(data) == 1 and data[0].data_param.source == str(dataset / "train_db")
    ip2 = next(l for l in train_val.layer if l.name == "ip2")
    assert ip2.inner_product_param.num_output == 10
    assert list(io.read_net(out / "deploy.prototxt").input_shape[0].dim) == [1, 1, 28, 32]


def test_split_errors_are_one_line(tmp_path, capsys):
    assert main(["split", "googlenet", "--classes", "10", "--image", "28x30x1", "--crop", "29",
                 "--dataset", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "crop_size is larger than the image size" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_split_bad_image_argument(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["split", "lenet", "--image", "28x28", "--out", str(tmp_path)])
    assert "HxWxC" in capsys.readouterr().err


def test_upgrade_v1_net(tmp_path, capsys):
    old = tmp_path / "old.prototxt"
    old.write_text('layers { name: "c" type: CONVOLUTION bottom: "d" top: "c" blobs_lr: 1 }\n'
                   'input: "d" input_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28\n')
    new = tmp_path / "new.prototxt"
    assert main(["upgrade", str(old), str(new)]) == 0
    net = io.read_net(new, upgrade=False)
    assert net.layer[0].type == "Convolution" and net.layer[0].param[0].lr_mult == 1
    assert list(net.input_shape[0].dim) == [1, 1, 28, 28] and not len(net.layers)
    assert "V1 layers" in capsys.readouterr().out


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="no such file"):
        main(["--debug", "check", str(tmp_path / "missing.prototxt")])


@pytest.mark.parametrize("package", ["prototxt", "converter", "lmdb_builder", "trainer", "inference"])
def test_every_package_runs_with_help(package):
    proc = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m {package}")
