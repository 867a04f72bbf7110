"""Softmax and SoftmaxWithLoss (softmax_layer.cpp, softmax_loss_layer.cpp).

    Softmax          p = exp(x - max) / sum exp(x - max) along axis (default 1) = nn.Softmax
    SoftmaxWithLoss  loss = -sum_{valid i} log(max(p_i,label_i, FLT_MIN)) / max(1, normalizer)

Labels are truncated to integers (Caffe's static_cast<int>); i runs over outer x inner positions
(N x H x W for axis 1); positions whose label is ignore_label are skipped. normalizer by
loss_param.normalization: FULL = all positions, VALID (default) = non-ignored positions,
BATCH_SIZE = outer count, NONE = 1; the legacy `normalize: false` means BATCH_SIZE (true:
VALID). The gradient is Caffe's (p - onehot) / normalizer, also where the FLT_MIN clamp
applies. An optional second top is the probability blob (loss weight 0; Caffe's Backward reads
only the loss top's diff, so a loss on the probabilities does not reach the scores: here the
prob top carries no gradient).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from prototxt import caffe_pb2
from ..registry import Built, LayerContext, layer

LossParameter = caffe_pb2.LossParameter
LOG_FLT_MIN = math.log(1.1754943508222875e-38)


def normalization_mode(ctx: LayerContext) -> int:
    p = ctx.layer.loss_param
    if p.HasField("normalize"):
        return LossParameter.VALID if p.normalize else LossParameter.BATCH_SIZE
    return p.normalization


def normalizer(mode: int, valid: torch.Tensor, outer: int) -> torch.Tensor | float:
    """Caffe's LossLayer::GetNormalizer, at least 1."""
    if mode == LossParameter.FULL:
        return float(max(1, valid.numel()))
    if mode == LossParameter.VALID:
        return valid.sum().clamp(min=1)
    if mode == LossParameter.BATCH_SIZE:
        return float(max(1, outer))
    return 1.0


def flatten_scores(scores: torch.Tensor, label: torch.Tensor, axis: int, ignore: int | None):
    """(M, C) scores, (M,) integer labels (ignored ones replaced by 0), (M,) valid mask."""
    classes = scores.shape[axis]
    flat = scores.movedim(axis, -1).reshape(-1, classes)
    label = label.reshape(-1).to(torch.int64)
    valid = label != ignore if ignore is not None else torch.ones_like(label, dtype=torch.bool)
    return flat, torch.where(valid, label, torch.zeros_like(label)), valid


def check_labels(ctx: LayerContext, axis: int) -> None:
    scores, labels = ctx.bottoms
    positions = math.prod(scores[:axis]) * math.prod(scores[axis + 1:])
    ctx.check(math.prod(labels) == positions,
              f"the number of labels ({math.prod(labels)}, shape {list(labels)}) must match "
              f"the number of predictions ({positions}: prediction shape {list(scores)} "
              f"without axis {axis})")


class SoftmaxWithLoss(nn.Module):
    """Caffe's SoftmaxWithLoss (formula in the module docstring); returns (loss[, prob])."""

    def __init__(self, axis: int, ignore_label: int | None, mode: int, with_prob: bool):
        super().__init__()
        self.axis, self.ignore_label, self.mode, self.with_prob = axis, ignore_label, mode, with_prob

    def extra_repr(self) -> str:
        return (f"axis={self.axis}, ignore_label={self.ignore_label}, "
                f"normalization={LossParameter.NormalizationMode.Name(self.mode)}")

    def forward(self, scores: torch.Tensor, label: torch.Tensor):
        logp = F.log_softmax(scores, self.axis)
        flat, label, valid = flatten_scores(logp, label, self.axis, self.ignore_label)
        picked = flat.gather(1, label[:, None])[:, 0]
        # Clamp the value at log(FLT_MIN) as Caffe does, keep Caffe's unclamped gradient.
        picked = picked + (picked.clamp(min=LOG_FLT_MIN) - picked).detach()
        outer = math.prod(scores.shape[:self.axis])
        loss = -(picked * valid).sum() / normalizer(self.mode, valid, outer)  # keeps the dtype
        return (loss, logp.detach().exp()) if self.with_prob else loss  # Caffe: prob has no diff


@layer("Softmax", bottoms=1, tops=1)
def softmax(ctx: LayerContext) -> Built:
    """Softmax along axis (default 1)."""
    return Built(nn.Softmax(ctx.axis(ctx.layer.softmax_param.axis)))


@layer("SoftmaxWithLoss", bottoms=2, tops=(1, 2), loss=True)
def softmax_with_loss(ctx: LayerContext) -> Built:
    """Softmax + multinomial logistic loss; normalization modes, ignore_label."""
    axis = ctx.axis(ctx.layer.softmax_param.axis)
    check_labels(ctx, axis)
    p = ctx.layer.loss_param
    ignore = p.ignore_label if p.HasField("ignore_label") else None
    with_prob = len(ctx.layer.top) > 1
    tops = ((), tuple(ctx.bottoms[0])) if with_prob else ((),)  # the loss, the probabilities
    return Built(SoftmaxWithLoss(axis, ignore, normalization_mode(ctx), with_prob), tops=tops)
