"""Pieces the standard networks share: DIGITS' stage rules, data layers, LRN, pooling, outputs.

DIGITS keeps train, val and deploy in one file and picks layers by stage: the data layers are
`include`d in "train" or "val", losses are `exclude`d from "deploy", accuracies run in "val" only
and the final Softmax in "deploy" only (see ../shared/facts/digits.md §1, §6).
"""
from __future__ import annotations

from typing import Any

from prototxt.netspec import Net

VAL = [dict(stage="val")]
DEPLOY = [dict(stage="deploy")]


def data_layers(net: Net, train_batch: int, val_batch: int, train_transform: dict | None = None,
                val_transform: dict | None = None) -> str:
    """The "train-data" and "val-data" layers (tops data and label); DIGITS adds the sources."""
    for stage, batch, transform in (("train", train_batch, train_transform),
                                    ("val", val_batch, val_transform)):
        net.layer(f"{stage}-data", "Data", top=["data", "label"], transform_param=transform,
                  data_param=dict(batch_size=batch), include=[dict(stage=stage)])
    return "data"


def lrn(net: Net, name: str, bottom: str) -> str:
    """Local response normalisation across 5 channels, as in AlexNet and GoogLeNet."""
    return net.layer(name, "LRN", bottom, lrn_param=dict(local_size=5, alpha=0.0001, beta=0.75))


def pool(net: Net, name: str, bottom: str, method: str, kernel: int, stride: int,
         pad: int | None = None, **extra: Any) -> str:
    """A Pooling layer (`method` "MAX" or "AVE"; Caffe rounds output sizes up)."""
    return net.layer(name, "Pooling", bottom, pooling_param=dict(
        pool=method, kernel_size=kernel, stride=stride, pad=pad), **extra)


def accuracy_loss_softmax(net: Net, scores: str) -> str:
    """LeNet's and AlexNet's outputs: accuracy (val), loss (train and val), softmax (deploy)."""
    net.layer("accuracy", "Accuracy", [scores, "label"], include=VAL)
    net.layer("loss", "SoftmaxWithLoss", [scores, "label"], exclude=DEPLOY)
    return net.layer("softmax", "Softmax", scores, include=DEPLOY)
