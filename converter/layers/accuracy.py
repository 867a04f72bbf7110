"""Accuracy (accuracy_layer.cpp): a position i counts as correct when fewer than top_k *other*
classes score >= the true class's score (ties count against: all-equal scores give 0, unlike an
argmax). accuracy = correct / valid positions (0 when there are none); positions whose label is
ignore_label are skipped. Optional top 1: per-class accuracy (C,), 0 for classes never seen.
No gradient (Caffe's Backward is not implemented).
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Built, LayerContext, layer
from .softmax import check_labels, flatten_scores


class Accuracy(nn.Module):
    def __init__(self, axis: int, top_k: int, ignore_label: int | None, per_class: bool):
        super().__init__()
        self.axis, self.top_k, self.ignore_label, self.per_class = axis, top_k, ignore_label, per_class

    def extra_repr(self) -> str:
        return f"top_k={self.top_k}, axis={self.axis}, ignore_label={self.ignore_label}"

    def forward(self, scores: torch.Tensor, label: torch.Tensor):
        scores = scores.detach()
        flat, label, valid = flatten_scores(scores, label, self.axis, self.ignore_label)
        true = flat.gather(1, label[:, None])
        others_better = (flat >= true).sum(1) - 1  # Caffe starts at -1: the true class counts
        correct = (others_better < self.top_k) & valid
        count = valid.sum()
        accuracy = correct.sum().to(scores.dtype) / count.clamp(min=1).to(scores.dtype)
        if not self.per_class:
            return accuracy
        classes = torch.arange(flat.shape[1], device=label.device)
        onehot = (label[:, None] == classes[None, :]).to(scores.dtype)
        seen = (onehot * valid[:, None]).sum(0)
        hits = (onehot * correct[:, None]).sum(0)
        return accuracy, hits / seen.clamp(min=1)


@layer("Accuracy", bottoms=2, tops=(1, 2), gradient=False)
def accuracy(ctx: LayerContext) -> Built:
    """Top-k accuracy with Caffe's tie rule, ignore_label, optional per-class top."""
    p = ctx.layer.accuracy_param
    axis = ctx.axis(p.axis)
    check_labels(ctx, axis)
    classes = ctx.bottoms[0][axis]
    ctx.check(p.top_k <= classes, f"top_k ({p.top_k}) must be less than or equal to the number "
                                  f"of classes ({classes})")
    ignore = p.ignore_label if p.HasField("ignore_label") else None
    per_class = len(ctx.layer.top) > 1
    tops = ((), (classes,)) if per_class else ((),)  # Caffe: a 0-axis blob, then (C,)
    return Built(Accuracy(axis, p.top_k, ignore, per_class), tops=tops)
