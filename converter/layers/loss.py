"""EuclideanLoss and SigmoidCrossEntropyLoss (BVLC master semantics).

    EuclideanLoss            loss = sum (a - b)^2 / (2 N),   N = bottom 0's shape[0]
    SigmoidCrossEntropyLoss  loss = -sum_{valid i} [x_i (t_i - [x_i >= 0])
                                     - log(1 + exp(x_i - 2 x_i [x_i >= 0]))] / max(1, normalizer)
                             (= cross entropy of sigmoid(x) and t, computed stably); gradient
                             (sigmoid(x) - t) / normalizer. Normalization as SoftmaxWithLoss with
                             outer count = shape[0]; default VALID = non-ignored elements.
                             (BVLC before 2017, and NVIDIA Caffe 0.15, divided by N instead:
                             set loss_param { normalize: false } for that.) No gradient
                             reaches the targets (Caffe refuses to backpropagate to them).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import Built, LayerContext, layer
from .softmax import normalization_mode, normalizer


class EuclideanLoss(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b.reshape(a.shape)).pow(2).sum() / (2 * a.shape[0])


class SigmoidCrossEntropyLoss(nn.Module):
    def __init__(self, ignore_label: int | None, mode: int):
        super().__init__()
        self.ignore_label, self.mode = ignore_label, mode

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.detach()  # Caffe: "cannot backpropagate to label inputs"
        t = target.reshape(x.shape).to(x.dtype)
        positive = (x >= 0).to(x.dtype)
        terms = x * (t - positive) - torch.log1p(torch.exp(x - 2 * x * positive))
        if self.ignore_label is not None:
            valid = target.reshape(x.shape).to(torch.int64) != self.ignore_label
        else:
            valid = torch.ones_like(x, dtype=torch.bool)
        return -(terms * valid).sum() / normalizer(self.mode, valid, x.shape[0])


def _same_count(ctx: LayerContext) -> None:
    a, b = ctx.bottoms
    ctx.check(math.prod(a) == math.prod(b), f"both bottoms need the same count; shapes {list(a)} "
                                            f"and {list(b)}")


@layer("EuclideanLoss", bottoms=2, tops=1, loss=True)
def euclidean_loss(ctx: LayerContext) -> Built:
    """Sum of squares / (2 N)."""
    _same_count(ctx)
    return Built(EuclideanLoss())


@layer("SigmoidCrossEntropyLoss", bottoms=2, tops=1, loss=True)
def sigmoid_cross_entropy_loss(ctx: LayerContext) -> Built:
    """Cross entropy of sigmoid(x) and targets; normalization, ignore_label."""
    _same_count(ctx)
    p = ctx.layer.loss_param
    ignore = p.ignore_label if p.HasField("ignore_label") else None
    return Built(SigmoidCrossEntropyLoss(ignore, normalization_mode(ctx)))
