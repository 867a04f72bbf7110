"""A DIGITS model job folder, as DIGITS' model form made it: original, train_val, deploy and
solver .prototxt, plus labels.txt, mean.binaryproto and info.json (the files DIGITS' "Download
Model" bundles), written into a temporary folder and renamed when complete."""
from __future__ import annotations

import getpass
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prototxt import DatasetFacts, atomic_folder, caffe_pb2, digits_split, write_split, write_text
from prototxt.errors import PrototxtError

from .dataset_info import DatasetInfo
from .solver_gen import ModelForm, make_solver

REDIGITS_VERSION = "0.1.0"


@dataclass(frozen=True)
class ModelJob:
    path: Path
    solver: caffe_pb2.SolverParameter
    train_val: caffe_pb2.NetParameter
    deploy: caffe_pb2.NetParameter


def _batch(net: caffe_pb2.NetParameter, phase: int) -> int | None:
    for layer in net.layer:
        if layer.type == "Data" and any(rule.phase == phase for rule in layer.include):
            return layer.data_param.batch_size
    return None


def new_model_job(dataset: DatasetInfo, network: caffe_pb2.NetParameter, out: str | Path,
                  form: ModelForm, crop_size: int | None = None, use_mean: str = "image",
                  name: str | None = None, force: bool = False,
                  no_mirror: bool = False) -> ModelJob:
    """Write the model job folder `out` for `network` trained on `dataset` with `form`.
    `no_mirror`: the network's data layers do not flip images left-right, as if the user had
    edited its transform_param in DIGITS' custom-network box (original.prototxt says so too)."""
    out = Path(out).absolute()
    if out.exists() and not force:
        raise PrototxtError("the output folder exists; choose another or pass --force", out)
    if no_mirror:
        network = without_mirror(network)
    facts = DatasetFacts(num_classes=dataset.num_classes, height=dataset.height,
                         width=dataset.width, channels=dataset.channels,
                         dataset_dir=str(dataset.path), mean_file=str(dataset.mean_file),
                         has_val_set=dataset.n_val > 0)
    split = digits_split(network, facts, crop_size=crop_size, use_mean=use_mean,
                         batch_size=form.batch_size)
    solver = make_solver(form, dataset.n_train, dataset.n_val, _batch(split.train_val, caffe_pb2.TRAIN),
                         _batch(split.train_val, caffe_pb2.TEST))
    with atomic_folder(out) as tmp:
        write_split(split, tmp)
        write_text(solver, tmp / "solver.prototxt")
        shutil.copyfile(dataset.path / "labels.txt", tmp / "labels.txt")
        if dataset.mean_file.is_file():
            shutil.copyfile(dataset.mean_file, tmp / "mean.binaryproto")
        info = _info(out, dataset, use_mean, name)
        (tmp / "info.json").write_text(json.dumps(info, indent=4, sort_keys=True) + "\n")
    return ModelJob(out, solver, split.train_val, split.deploy)


def without_mirror(network: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of `network` with `mirror: false` wherever a layer's transform_param had it true.
    DIGITS' ImageNet networks (AlexNet, GoogLeNet) flip training images, which suits photos;
    a flipped digit or letter is no longer one."""
    copy = caffe_pb2.NetParameter()
    copy.CopyFrom(network)
    for layer in copy.layer:
        if layer.transform_param.mirror:      # reading it leaves an absent field absent
            layer.transform_param.mirror = False
    return copy


def _info(out: Path, dataset: DatasetInfo, use_mean: str, name: str | None) -> dict:
    """DIGITS' info.json keys (digits/model/job.py json_dict), plus where the dataset is."""
    return {
        "id": out.name, "job id": out.name, "name": name or out.name, "status": "Initialized",
        "dataset_id": dataset.path.name, "dataset path": str(dataset.path),
        "creation time": str(datetime.now()), "username": getpass.getuser(),
        "image dimensions": [dataset.height, dataset.width, dataset.channels],
        "image resize mode": dataset.resize_mode, "mean file": "mean.binaryproto",
        "mean subtraction": use_mean, "labels file": "labels.txt", "model file": "original.prototxt",
        "solver file": "solver.prototxt", "train_val file": "train_val.prototxt",
        "deploy file": "deploy.prototxt", "snapshot file": None, "framework": "caffe",
        "caffe flavor": "redigits", "caffe version": REDIGITS_VERSION,
        "digits version": f"6.1.1 files, written by redigits {REDIGITS_VERSION}",
    }
