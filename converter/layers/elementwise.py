"""Element-wise neurons of Caffe's later layers (in place allowed):

    Threshold  y = 1 if x > threshold else 0     strict: x == threshold gives 0 (default 0)
    Clip       y = max(min, min(x, max))         min and max required; min > max gives min
    Swish      y = x sigmoid(beta x)             beta default 1 (BVLC master, #6002)

Gradients: Threshold has none (Caffe's Backward is NOT_IMPLEMENTED; the comparison carries no
gradient here). Clip passes dy where min <= x <= max, both ends inclusive (clip_layer.cpp;
torch.clamp's gradient is the same). Swish: dy (beta y + sigmoid(beta x) (1 - beta y)), the
exact derivative, so autograd gives it.

Clip and Swish are on BVLC master only (not in Caffe 1.0 or NVIDIA Caffe). OpenCV's Swish
ignores beta (it computes x sigmoid(x)).

ONNX: Threshold as Greater + Cast, Clip as Clip (Min then Max when min > max), Swish as
Mul + Sigmoid + Mul.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Built, LayerContext, layer


class Threshold(nn.Module):
    """Caffe's Threshold: y = (x > threshold) as 0/1 in x's dtype; no gradient."""

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class Clip(nn.Module):
    """Caffe's Clip: y = max(min, min(x, max))."""

    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = low, high

    def extra_repr(self) -> str:
        return f"min={self.low}, max={self.high}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.low <= self.high:
            return torch.clamp(x, self.low, self.high)
        # torch.clamp gives max when min > max; Caffe's order gives min (and zero gradient)
        return torch.clamp(torch.clamp(x, max=self.high), min=self.low)


class Swish(nn.Module):
    """Caffe's Swish: y = x sigmoid(beta x)."""

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def extra_repr(self) -> str:
        return f"beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x * self.beta if self.beta != 1 else x)


@layer("Threshold", bottoms=1, tops=1, in_place=True, gradient=False)
def threshold(ctx: LayerContext) -> Built:
    """1 where x > threshold, else 0 (strict); no gradient."""
    return Built(Threshold(ctx.layer.threshold_param.threshold))


@layer("Clip", bottoms=1, tops=1, in_place=True)
def clip(ctx: LayerContext) -> Built:
    """Clamp to [min, max], both required (BVLC master)."""
    p = ctx.layer.clip_param
    ctx.check(p.HasField("min") and p.HasField("max"),
              "clip_param needs both min and max (both are required in Caffe's schema)")
    return Built(Clip(p.min, p.max))


@layer("Swish", bottoms=1, tops=1, in_place=True)
def swish(ctx: LayerContext) -> Built:
    """Swish, x sigmoid(beta x) (BVLC master)."""
    return Built(Swish(ctx.layer.swish_param.beta))
