"""Which label values a net can take: for a label blob, each classification layer reading it as
bottom 1 and the classes it has, so that a label outside [0, classes) in the database is an error
naming the record, the layer and the value, found on the CPU while the batch is made
(trainer.data), instead of torch's "index 99 is out of bounds" (or a device-side assert on a GPU).

    layer                     classes                                     ignore_label
    SoftmaxWithLoss           scores.shape[softmax_param.axis]            loss_param
    Accuracy                  scores.shape[accuracy_param.axis]           accuracy_param
    InfogainLoss              scores.shape[infogain_loss_param.axis]      loss_param
    MultinomialLogisticLoss   count of scores per item (Caffe's i * dim + label)
    HingeLoss                 count of scores per item

A label equal to the layer's ignore_label is allowed (Caffe skips those positions).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from converter.net import CaffeNet

# Layers that read an integer label as bottom 1: the parameter message whose `axis` is the class
# axis, or None where the label indexes each item's scores flattened (Caffe's i * dim + label).
LABEL_READERS = {"SoftmaxWithLoss": "softmax_param", "Accuracy": "accuracy_param",
                 "InfogainLoss": "infogain_loss_param", "MultinomialLogisticLoss": None,
                 "HingeLoss": None}
_IGNORE = {"SoftmaxWithLoss": "loss_param", "InfogainLoss": "loss_param",
           "Accuracy": "accuracy_param"}


class LabelRule(NamedTuple):
    """Labels layer `layer` accepts: 0 <= label < classes, or label == ignore."""
    layer: str
    type: str
    classes: int
    ignore: int | None
    scores: str          # the bottom giving the classes, e.g. "ip" 4x3

    def bad(self, labels: np.ndarray) -> np.ndarray:
        """Mask of the labels this layer cannot take."""
        out = (labels < 0) | (labels >= self.classes)
        if self.ignore is not None:
            out &= labels != self.ignore
        return out

    def describe(self) -> str:
        ignore = f", ignore_label {self.ignore}" if self.ignore is not None else ""
        return (f"layer '{self.layer}' ({self.type}) takes labels 0 to {self.classes - 1} "
                f"({self.classes} classes from bottom {self.scores}{ignore})")


def label_rules(model: CaffeNet, blob: str) -> tuple[LabelRule, ...]:
    """The classification layers of `model` reading `blob` as their labels."""
    shapes = model.blob_shapes()
    layers = {layer.name: layer for layer in model.net.layer}
    rules = []
    for step in model.steps:
        if step.type not in LABEL_READERS or len(step.bottoms) < 2 or step.bottoms[1] != blob:
            continue
        scores = shapes[step.bottoms[0]]
        layer = layers[step.layer]
        param = LABEL_READERS[step.type]
        if param is None:
            classes = math.prod(scores[1:])
        else:
            classes = scores[getattr(layer, param).axis % len(scores)]
        ignore = None
        if step.type in _IGNORE and getattr(layer, _IGNORE[step.type]).HasField("ignore_label"):
            ignore = int(getattr(layer, _IGNORE[step.type]).ignore_label)
        rules.append(LabelRule(step.layer, step.type, int(classes), ignore,
                               f"'{step.bottoms[0]}' {'x'.join(map(str, scores))}"))
    return tuple(rules)


def label_classes(model: CaffeNet) -> dict[str, int]:
    """Input name -> number of classes, for inputs that a classification layer reads as labels
    (the smallest where several do)."""
    classes: dict[str, int] = {}
    for name in model.input_names:
        rules = label_rules(model, name)
        if rules:
            classes[name] = min(r.classes for r in rules)
    return classes
