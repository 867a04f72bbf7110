"""Element-wise neurons (neuron layers, in place allowed):

    ReLU     y = max(x, 0) + negative_slope min(x, 0)     nn.ReLU / nn.LeakyReLU
    PReLU    y = max(x, 0) + a_c min(x, 0)                a per channel (axis 1) or shared
    ELU      y = x if x > 0 else alpha (exp(x) - 1)       nn.ELU
    Sigmoid  y = 1 / (1 + exp(-x))                        nn.Sigmoid
    TanH     y = tanh(x)                                  nn.Tanh
    AbsVal   y = |x|
    BNLL     y = x + log(1 + exp(-x)) if x > 0 else log(1 + exp(x))  = relu(x) + log1p(exp(-|x|))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..fillers import constant_filler
from ..registry import Blob, Built, LayerContext, layer


class AbsVal(nn.Module):
    """Caffe's AbsVal: y = |x|."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)


class BNLL(nn.Module):
    """Caffe's BNLL: y = relu(x) + log1p(exp(-|x|)) (= log(1 + exp(x)), computed stably)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) + torch.log1p(torch.exp(-torch.abs(x)))


class CaffePReLU(nn.Module):
    """Caffe's PReLU: y = max(x, 0) + a min(x, 0); blob `weight` of shape (C,) or () if shared."""

    def __init__(self, channels: int | None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(() if channels is None else (channels,)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(x, self.weight.reshape(-1))


@layer("ReLU", bottoms=1, tops=1, in_place=True)
def relu(ctx: LayerContext) -> Built:
    """Rectifier with negative_slope (leaky ReLU)."""
    slope = ctx.layer.relu_param.negative_slope
    return Built(nn.LeakyReLU(slope) if slope else nn.ReLU())


@layer("PReLU", bottoms=1, tops=1, in_place=True)
def prelu(ctx: LayerContext) -> Built:
    """Parametric ReLU, per channel or channel_shared; filler default constant 0.25."""
    p = ctx.layer.prelu_param
    ctx.check(len(ctx.bottoms[0]) >= 2, "the bottom must have at least 2 axes")
    filler = p.filler if p.HasField("filler") else constant_filler(0.25)
    module = CaffePReLU(None if p.channel_shared else ctx.bottoms[0][1])
    return Built(module, (Blob("weight", filler),))


@layer("ELU", bottoms=1, tops=1, in_place=True)
def elu(ctx: LayerContext) -> Built:
    """Exponential linear unit with alpha."""
    return Built(nn.ELU(ctx.layer.elu_param.alpha))


@layer("Sigmoid", bottoms=1, tops=1, in_place=True)
def sigmoid(ctx: LayerContext) -> Built:
    """Logistic sigmoid."""
    return Built(nn.Sigmoid())


@layer("TanH", bottoms=1, tops=1, in_place=True)
def tanh(ctx: LayerContext) -> Built:
    """Hyperbolic tangent."""
    return Built(nn.Tanh())


@layer("AbsVal", bottoms=1, tops=1, in_place=True)
def absval(ctx: LayerContext) -> Built:
    """Absolute value."""
    return Built(AbsVal())


@layer("BNLL", bottoms=1, tops=1, in_place=True)
def bnll(ctx: LayerContext) -> Built:
    """Binomial normal log likelihood, log(1 + exp(x))."""
    return Built(BNLL())
