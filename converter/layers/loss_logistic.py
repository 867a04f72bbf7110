"""InfogainLoss and MultinomialLogisticLoss (BVLC 1.0 / master semantics).

    InfogainLoss  p = softmax(x) along infogain_loss_param.axis (default 1);
                  loss = -sum_{valid i} sum_l H[y_i, l] log(max(p_i,l, 1e-20)) / max(1, normalizer)
                  gradient (Caffe's): (p_i,l sum_m H[y_i, m] - H[y_i, l]) / normalizer, also
                  where the 1e-20 clamp applies (as SoftmaxWithLoss's)
    MultinomialLogisticLoss  x holds probabilities; with x flattened to N x D,
                  loss = -sum_i log(max(x[i, y_i], 1e-20)) / N
                  gradient (Caffe's): -1 / (N max(x[i, y_i], 1e-20)) at the label, 0 elsewhere
                  (autograd of the clamp would give 0 below 1e-20; Caffe's is reproduced)

Labels are truncated to integers (static_cast<int>). InfogainLoss: H is C x C (any shape of
C*C values), read from `infogain_loss_param.source` (a .binaryproto, as Caffe reads it: a path
relative to the working folder, else relative to the prototxt's folder) or taken from a third
bottom (no gradient reaches H or the labels: Caffe refuses to backpropagate to them). With
H = identity it is SoftmaxWithLoss. Positions labelled ignore_label are skipped;
loss_param.normalization as SoftmaxWithLoss (FULL, VALID (default), BATCH_SIZE, NONE), but the
deprecated `normalize` is an error, as in Caffe. An optional second top is the softmax (loss
weight 0; Caffe's backward ignores its diff, so here it carries no gradient).
BVLC before 2017 and NVIDIA Caffe 0.15 had an InfogainLoss without the softmax (bottom 0 held
probabilities, loss divided by N): a net written for that Caffe computes differently here.

MultinomialLogisticLoss ignores loss_param (always / N), and the label blob must be N x 1 x 1 x 1
(or (N,)); the label indexes bottom 0 flattened per item (Caffe's i * dim + label).
Both are plain arithmetic (LogSoftmax, Gather, Mul, ReduceSum) in ONNX; they belong to
train/val nets, so export_onnx (one image input) does not reach them, but they export.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prototxt import PrototxtError, blob_array, caffe_pb2, read_blob
from ..registry import Built, LayerContext, layer
from .softmax import flatten_scores, normalizer

LOG_THRESHOLD = struct.unpack("f", struct.pack("f", 1e-20))[0]  # Caffe's float kLOG_THRESHOLD
LOG_LOG_THRESHOLD = math.log(LOG_THRESHOLD)
LossParameter = caffe_pb2.LossParameter


def _straight_through_clamp(value: torch.Tensor, low: float) -> torch.Tensor:
    """max(value, low) whose gradient is 1 everywhere (Caffe differentiates the unclamped value)."""
    return value + (value.clamp(min=low) - value).detach()


class InfogainLoss(nn.Module):
    """Caffe's InfogainLoss (formula in the module docstring); returns (loss[, prob])."""

    def __init__(self, axis: int, ignore_label: int | None, mode: int, h: np.ndarray | None,
                 with_prob: bool):
        super().__init__()
        self.axis, self.ignore_label, self.mode, self.with_prob = axis, ignore_label, mode, with_prob
        self.h = h  # a constant C x C array (no Caffe blob: a caffemodel does not hold it)

    def extra_repr(self) -> str:
        return (f"axis={self.axis}, ignore_label={self.ignore_label}, "
                f"normalization={LossParameter.NormalizationMode.Name(self.mode)}, "
                f"H={'bottom 2' if self.h is None else 'source'}")

    def forward(self, scores: torch.Tensor, label: torch.Tensor, h: torch.Tensor | None = None):
        classes = scores.shape[self.axis]
        h = torch.from_numpy(self.h) if h is None else h.detach()
        h = h.to(dtype=scores.dtype, device=scores.device).reshape(classes, classes)
        logp = F.log_softmax(scores, self.axis)
        flat, label, valid = flatten_scores(logp, label.detach(), self.axis, self.ignore_label)
        rows = h.index_select(0, label)  # H[y_i, :]
        terms = (rows * _straight_through_clamp(flat, LOG_LOG_THRESHOLD)).sum(1)
        outer = math.prod(scores.shape[:self.axis])
        loss = -(terms * valid).sum() / normalizer(self.mode, valid, outer)
        return (loss, logp.detach().exp()) if self.with_prob else loss


class MultinomialLogisticLoss(nn.Module):
    """-mean_i log(max(x[i, y_i], 1e-20)), x flattened per item; Caffe's gradient."""

    def forward(self, prob: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        n = prob.shape[0]
        index = label.detach().reshape(-1).to(torch.int64)
        picked = prob.reshape(n, -1).gather(1, index[:, None])[:, 0]
        return -torch.log(_straight_through_clamp(picked, LOG_THRESHOLD)).sum() / n


def _read_h(ctx: LayerContext, source: str) -> np.ndarray:
    path = Path(source)
    if not path.is_file() and not path.is_absolute() and ctx.source and Path(ctx.source).is_file():
        beside = Path(ctx.source).parent / path
        path = beside if beside.is_file() else path
    if not path.is_file():
        raise ctx.fail(f"the infogain matrix source '{source}' does not exist (Caffe reads it "
                       "relative to the working folder; give an absolute path or a third bottom)")
    try:
        return blob_array(read_blob(path), path, dtype=np.float64).reshape(-1)
    except PrototxtError as exc:
        raise ctx.fail(f"cannot read the infogain matrix '{path}': {exc.message}") from None


@layer("InfogainLoss", bottoms=(2, 3), tops=(1, 2), loss=True)
def infogain_loss(ctx: LayerContext) -> Built:
    """Softmax + infogain-weighted log loss; H from source .binaryproto or bottom 2."""
    p, lp = ctx.layer.infogain_loss_param, ctx.layer.loss_param
    ctx.check(not lp.HasField("normalize"), 'loss_param.normalize is deprecated for '
                                            'InfogainLoss; use "normalization"')
    scores, labels = ctx.bottoms[:2]
    axis = ctx.axis(p.axis)
    ctx.check(scores[0] == labels[0], f"the data {list(scores)} and the label {list(labels)} "
                                      "must have the same first dimension")
    positions = math.prod(scores[:axis]) * math.prod(scores[axis + 1:])
    ctx.check(math.prod(labels) == positions,
              f"the number of labels ({math.prod(labels)}, shape {list(labels)}) must match the "
              f"number of predictions ({positions}: prediction shape {list(scores)} without "
              f"axis {axis})")
    classes = scores[axis]
    if len(ctx.bottoms) == 3:
        h, count = None, math.prod(ctx.bottoms[2])
    else:
        ctx.check(p.HasField("source"), "the infogain matrix source must be specified (or given "
                                        "as a third bottom)")
        h = _read_h(ctx, p.source)
        count = h.size
    ctx.check(count == classes * classes, f"H must be {classes}x{classes} ({classes * classes} "
                                          f"values); it has {count}")
    ignore = lp.ignore_label if lp.HasField("ignore_label") else None
    return Built(InfogainLoss(axis, ignore, lp.normalization, h, len(ctx.layer.top) > 1))


def legacy_shape(ctx: LayerContext, shape, which: str) -> tuple[int, int, int, int]:
    """Caffe's num(), channels(), height(), width() of a blob of at most 4 axes."""
    ctx.check(len(shape) <= 4, f"{which} {list(shape)} has more than 4 axes (Caffe's legacy "
                               "num/channels/height/width accessors need at most 4)")
    return tuple(shape[i] if i < len(shape) else 1 for i in range(4))


@layer("MultinomialLogisticLoss", bottoms=2, tops=1, loss=True)
def multinomial_logistic_loss(ctx: LayerContext) -> Built:
    """Log loss of given probabilities at the label, / N (1e-20 clamp)."""
    probs, labels = ctx.bottoms
    ctx.check(len(probs) >= 1 and probs[0] == labels[0], f"the data {list(probs)} and the label "
              f"{list(labels)} must have the same first dimension")
    ctx.check(legacy_shape(ctx, labels, "the label")[1:] == (1, 1, 1),
              f"the label must be N x 1 x 1 x 1, not {list(labels)}")
    return Built(MultinomialLogisticLoss())
