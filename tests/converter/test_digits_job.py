"""A model job folder as it sits in a DIGITS server's jobs folder: snapshots beside
caffe_output.log, no labels.txt, the dataset job found through train_val.prototxt's sources (as
a sibling folder, as written, or by --dataset), --snapshot, and status.pickle never read."""
from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import shutil
import sys

import numpy as np
import onnx
import pytest

from converter import ConverterError, build_model
from converter.__main__ import main
from converter.caffemodel import array_blob, save_caffemodel
from converter.digits_job import find_job
from converter.onnx_export import export_job, ort_session
from prototxt import write_binary

MODEL_ID = "20240229-101500-a1b2"
DATASET_ID = "20240229-100000-d4e5"
SERVER_JOBS = "/var/lib/digits/jobs"  # where the files say the jobs were; absent here
LABELS = ["zero", "one", "two", "three", "four"]
SHAPE = (3, 9, 7)  # C x H x W: the dataset images, and the deploy input (no crop)

LAYERS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
"""
DEPLOY = ('input: "data" input_shape { dim: 1 dim: 3 dim: 9 dim: 7 }\n' + LAYERS
          + 'layer { name: "softmax" type: "Softmax" bottom: "fc" top: "softmax" }\n')


def train_val(dataset: str, transform: str = None) -> str:
    transform = f'mean_file: "{dataset}/mean.binaryproto"' if transform is None else transform
    data = "".join(f"""
layer {{ name: "{phase.lower()}-data" type: "Data" top: "data" top: "label"
        include {{ phase: {phase} }} transform_param {{ {transform} }}
        data_param {{ source: "{dataset}/{db}" batch_size: {batch} backend: LMDB }} }}"""
                   for phase, db, batch in (("TRAIN", "train_db", 8), ("TEST", "val_db", 4)))
    return data + LAYERS + """
layer { name: "accuracy" type: "Accuracy" bottom: "fc" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


class _Trap:
    """Unpickling this creates `marker`: a status.pickle that proves it was never loaded."""
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


_OPENED: list[str] | None = None


def _audit(event, args):
    if event == "open" and _OPENED is not None and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened():
    """Every file path opened while the test runs (Python's "open" audit event)."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


@pytest.fixture(scope="module")
def models():
    """Two trained states of the deploy net: snapshots at iterations 10 and 20."""
    return {10: build_model(_parse(DEPLOY), seed=1).eval(), 20: build_model(_parse(DEPLOY), seed=2).eval()}


def _parse(text):
    from google.protobuf import text_format
    from prototxt import caffe_pb2
    return text_format.Parse(text, caffe_pb2.NetParameter())


def make_jobs(root, models, rng, dataset_path: str | None = None, transform: str = None,
              sibling: bool = True):
    """A DIGITS server's jobs folder under root: the model job and (as its sibling, unless
    `sibling` is False) the dataset job. `dataset_path` is the folder train_val.prototxt names."""
    jobs = root / "jobs"
    model_dir, dataset_dir = jobs / MODEL_ID, (jobs if sibling else root / "elsewhere") / DATASET_ID
    model_dir.mkdir(parents=True)
    dataset_dir.mkdir(parents=True)
    (model_dir / "deploy.prototxt").write_text(DEPLOY)
    (model_dir / "train_val.prototxt").write_text(
        train_val(dataset_path or f"{SERVER_JOBS}/{DATASET_ID}", transform))
    (model_dir / "original.prototxt").write_text(LAYERS)
    (model_dir / "solver.prototxt").write_text('net: "train_val.prototxt" base_lr: 0.01 max_iter: 20 '
                                               'snapshot: 10 snapshot_prefix: "snapshot"\n')
    (model_dir / "caffe_output.log").write_text("I0229 10:15:00 solver.cpp:] Iteration 20\n")
    for it, model in models.items():
        save_caffemodel(model, model_dir / f"snapshot_iter_{it}.caffemodel")
    (model_dir / "snapshot_iter_20.solverstate").write_bytes(b"")
    (dataset_dir / "labels.txt").write_text("\n".join(LABELS) + "\n")
    mean = rng.uniform(0, 255, (1, *SHAPE)).astype(np.float32)
    write_binary(array_blob(mean), dataset_dir / "mean.binaryproto")
    for db in ("train_db", "val_db"):
        (dataset_dir / db).mkdir()
    for folder in (model_dir, dataset_dir):
        (folder / "status.pickle").write_bytes(pickle.dumps(_Trap(root / "UNPICKLED")))
    return model_dir, dataset_dir, mean[0]


def test_the_trap_works(tmp_path):
    pickle.loads(pickle.dumps(_Trap(tmp_path / "UNPICKLED")))
    assert (tmp_path / "UNPICKLED").exists()


def test_server_job_with_its_dataset_as_sibling(tmp_path, models, rng, opened, caplog):
    model_dir, dataset_dir, mean = make_jobs(tmp_path, models, rng)
    opened.clear()  # from here on
    with caplog.at_level(logging.INFO, logger="converter"):
        report = export_job(tmp_path / "m.onnx", job=model_dir)
    assert not any("status.pickle" in p for p in opened)
    assert not (tmp_path / "UNPICKLED").exists()
    assert any(str(model_dir / "snapshot_iter_20.caffemodel") == p for p in opened)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"dataset job {dataset_dir}" in messages and "squash" in messages
    proto = onnx.load(tmp_path / "m.onnx")
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["labels"]) == LABELS
    assert meta["mean_type"] == "image" and meta["mean_shape"] == "3x9x7"
    assert np.array_equal(np.frombuffer(base64.b64decode(meta["mean_data"]), "<f4").reshape(SHAPE), mean)
    assert meta["dataset_image_size"] == "9x7x3" and meta["resize_mode"] == "squash"
    assert meta["input_shape"] == "3x9x7" and meta["channel_order"] == "BGR"
    # the newest snapshot's weights went into the graph
    x = rng.normal(0, 50, (2, *SHAPE)).astype(np.float32)
    (got,) = ort_session(proto.SerializeToString()).run(None, {"data": x})
    import torch
    with torch.no_grad():
        new, old = (models[it](torch.from_numpy(x))["softmax"].numpy() for it in (20, 10))
    assert np.abs(got - new).max() < 1e-5 and np.abs(got - old).max() > 1e-3
    assert report.differences["random batch 3"] < 1e-5


def test_snapshot_is_the_iteration_in_the_file_name(tmp_path, models, rng, capsys):
    model_dir, *_ = make_jobs(tmp_path, models, rng)
    assert find_job(model_dir).weights.name == "snapshot_iter_20.caffemodel"
    assert find_job(model_dir, snapshot=10).weights.name == "snapshot_iter_10.caffemodel"
    assert main(["onnx", "--job", str(model_dir), "--snapshot", "10", "--out", str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["onnx", "--job", str(model_dir), "--snapshot", "15", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "snapshot_iter_15.caffemodel" in err and "10, 20" in err
    assert main(["onnx", "--model", str(model_dir / "deploy.prototxt"), "--weights",
                 str(model_dir / "snapshot_iter_10.caffemodel"), "--snapshot", "10",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    assert "go with --job" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "UNPICKLED").exists()


def test_dataset_elsewhere_needs_dataset_flag(tmp_path, models, rng, capsys, opened):
    model_dir, dataset_dir, _ = make_jobs(tmp_path, models, rng, sibling=False)
    opened.clear()  # from here on
    out = str(tmp_path / "m.onnx")
    assert main(["onnx", "--job", str(model_dir), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "its dataset job was not found" in err and "--dataset" in err
    assert str(tmp_path / "jobs" / DATASET_ID) in err  # the sibling looked for
    assert f"{SERVER_JOBS}/{DATASET_ID}" in err        # and the path as written
    assert main(["onnx", "--job", str(model_dir), "--dataset", str(dataset_dir), "--out", out]) == 0
    files = find_job(model_dir, dataset=dataset_dir)
    assert files.labels == dataset_dir / "labels.txt" and files.mean == dataset_dir / "mean.binaryproto"
    assert main(["onnx", "--job", str(model_dir), "--dataset", str(tmp_path), "--out", out]) == 2
    assert "has no labels.txt" in capsys.readouterr().err
    # explicit files need no dataset job
    assert main(["onnx", "--job", str(model_dir), "--labels", str(dataset_dir / "labels.txt"),
                 "--mean", str(dataset_dir / "mean.binaryproto"), "--out", out]) == 0
    assert not any("status.pickle" in p for p in opened) and not (tmp_path / "UNPICKLED").exists()


def test_dataset_path_as_written_when_no_sibling(tmp_path, models, rng):
    real = tmp_path / "elsewhere" / DATASET_ID
    model_dir, dataset_dir, _ = make_jobs(tmp_path, models, rng, dataset_path=str(real), sibling=False)
    assert dataset_dir == real
    files = find_job(model_dir)
    assert files.dataset == real and files.labels == real / "labels.txt"


@pytest.mark.parametrize("transform,kind", [('mean_value: 10 mean_value: 20 mean_value: 30', "pixel"),
                                            ("", "none")])
def test_mean_subtraction_from_train_val(tmp_path, models, rng, transform, kind):
    model_dir, dataset_dir, _ = make_jobs(tmp_path, models, rng, transform=transform)
    files = find_job(model_dir)
    assert files.info["mean subtraction"] == kind and files.labels == dataset_dir / "labels.txt"
    export_job(tmp_path / "m.onnx", job=model_dir)
    meta = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert meta["mean_type"] == kind and "mean_data" not in meta
    if kind == "pixel":
        assert json.loads(meta["mean_pixel"]) == [10, 20, 30]


def test_missing_mean_in_the_dataset_job_is_an_error(tmp_path, models, rng):
    model_dir, dataset_dir, _ = make_jobs(tmp_path, models, rng)
    (dataset_dir / "mean.binaryproto").unlink()
    with pytest.raises(ConverterError, match="has mean.binaryproto; give --mean"):
        find_job(model_dir)


def test_our_own_job_folders_are_unchanged(tmp_path, models, rng):
    """labels.txt, mean.binaryproto and info.json in the model folder: no lookup at all, even
    though train_val.prototxt names a dataset folder that does not exist."""
    model_dir, dataset_dir, _ = make_jobs(tmp_path, models, rng)
    shutil.copy(dataset_dir / "labels.txt", model_dir)
    shutil.copy(dataset_dir / "mean.binaryproto", model_dir)
    (model_dir / "info.json").write_text(json.dumps({"image resize mode": "crop", "mean subtraction": "image"}))
    shutil.rmtree(dataset_dir)
    files = find_job(model_dir)
    assert files.dataset is None and files.labels == model_dir / "labels.txt"
    assert files.info == {"image resize mode": "crop", "mean subtraction": "image"}


def test_seed_job_as_on_its_server(tmp_path, seed_job):
    """The seed job's own files, laid out as in DIGITS' jobs folder: the dataset job is found
    from its train_val.prototxt's /opt/DIGITS/digits/jobs/<id>/train_db paths."""
    info = json.loads((seed_job / "info.json").read_text())
    model_dir = tmp_path / "jobs" / info["job id"]
    dataset_dir = tmp_path / "jobs" / info["dataset_id"]
    model_dir.mkdir(parents=True)
    dataset_dir.mkdir()
    for name in ("deploy.prototxt", "train_val.prototxt", "solver.prototxt", "original.prototxt"):
        shutil.copy(seed_job / name, model_dir / name)
    for name in ("labels.txt", "mean.binaryproto"):
        shutil.copy(seed_job / name, dataset_dir / name)
    (model_dir / "snapshot_iter_2814.caffemodel").write_bytes(b"")  # found, not read here
    files = find_job(model_dir)
    assert files.dataset == dataset_dir and files.weights.name == "snapshot_iter_2814.caffemodel"
    assert files.labels == dataset_dir / "labels.txt" and files.mean == dataset_dir / "mean.binaryproto"
    assert files.info == {"mean subtraction": "image", "image dimensions": info["image dimensions"]}
