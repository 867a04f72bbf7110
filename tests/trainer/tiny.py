"""A tiny learnable dataset folder and nets for solver tests: 1 x 6 x 10 gray images (non-square)
of 3 classes, each class a bright band at its own rows plus noise, in DIGITS' folder layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lmdb_builder.datum import encode_datum
from lmdb_builder.mean import write_mean
from lmdb_builder.writer import LmdbWriter
from prototxt import caffe_pb2, parse_text, write_text

H, W, CLASSES = 6, 10, 3


def images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, CLASSES, n)
    x = rng.integers(0, 90, (n, H, W)).astype(np.uint8)
    for i, label in enumerate(labels):
        x[i, 2 * label:2 * label + 2, :] += 120
    return x, labels


def make_dataset(folder: Path, rng: np.random.Generator, n_train: int = 40, n_val: int = 14,
                 encoding: str = "none") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write train_db, val_db, mean.binaryproto and labels.txt; return the arrays (key order)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train_db", n_train), ("val_db", n_val)):
        x, y = images(rng, n)
        with LmdbWriter(folder / name) as writer:
            for image, label in zip(x, y):
                writer.put(int(label), encode_datum(image, int(label), encoding))
        out[name] = (x, y)
    write_mean(np.rint(out["train_db"][0].mean(axis=0)).astype(np.uint8), folder / "mean.binaryproto")
    (folder / "labels.txt").write_text("".join(f"class{i}\n" for i in range(CLASSES)))
    return out


def data_layers(folder: Path, train_batch: int, val_batch: int, transform: str = "scale: 0.01") -> str:
    return "\n".join(
        f'''layer {{ name: "{phase.lower()}-data" type: "Data" top: "data" top: "label"
  include {{ phase: {phase} }}
  transform_param {{ {transform} }}
  data_param {{ source: "{folder / db}" batch_size: {batch} backend: LMDB }} }}'''
        for phase, db, batch in (("TRAIN", "train_db", train_batch), ("TEST", "val_db", val_batch)))


LINEAR = '''
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 }
                        bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include { phase: TEST } }
'''

CONV = '''
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" dropout_param { dropout_ratio: 0.3 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include { phase: TEST } }
'''


def write_job(folder: Path, dataset: Path, body: str = LINEAR, train_batch: int = 4,
              val_batch: int = 5, transform: str = "scale: 0.01", **solver_fields) -> Path:
    """train_val.prototxt + solver.prototxt in `folder`; returns the solver path."""
    folder.mkdir(parents=True, exist_ok=True)
    net = f'name: "tiny"\n{data_layers(dataset, train_batch, val_batch, transform)}\n{body}'
    (folder / "train_val.prototxt").write_text(net)
    fields = dict(net="train_val.prototxt", base_lr=0.05, lr_policy="step", gamma=0.5, stepsize=8,
                  momentum=0.9, weight_decay=0.01, max_iter=20, display=5, test_iter=3,
                  test_interval=10, snapshot=10, snapshot_prefix="snapshot", random_seed=7)
    fields.update(solver_fields)
    if not fields["test_interval"] and "test_iter" not in solver_fields:
        del fields["test_iter"]  # no tests: Caffe refuses test_iter without test_interval > 0
    solver = caffe_pb2.SolverParameter()
    for key, value in fields.items():
        if key in ("test_iter", "stepvalue") and not isinstance(value, list):
            value = [value]
        if isinstance(value, list):
            getattr(solver, key).extend(value)
        else:
            setattr(solver, key, value)
    path = folder / "solver.prototxt"
    write_text(solver, path)
    return path


def read_net_text(text: str) -> caffe_pb2.NetParameter:
    return parse_text(text, caffe_pb2.NetParameter())
