"""Power, Exp and Log (neuron layers, in place allowed):

    Power  y = (shift + scale x)^power
    Exp    y = base^(shift + scale x)            base -1 means e
    Log    y = log_base(shift + scale x)         base -1 means e

Computed as Caffe does: Exp as outer exp(inner x) with inner = ln(base) scale and
outer = base^shift; Log as ln(shift + scale x) / ln(base).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import Built, LayerContext, layer


class CaffePower(nn.Module):
    """Caffe's Power: y = (shift + scale x)^power."""

    def __init__(self, power: float, scale: float, shift: float):
        super().__init__()
        self.power, self.scale, self.shift = power, scale, shift

    def extra_repr(self) -> str:
        return f"power={self.power}, scale={self.scale}, shift={self.shift}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 0 or self.power == 0:
            return x * 0.0 + (self.shift ** self.power if self.power else 1.0)  # zero gradient
        y = x * self.scale if self.scale != 1 else x
        y = y + self.shift if self.shift != 0 else y
        return y if self.power == 1 else torch.pow(y, self.power)


class CaffeExp(nn.Module):
    """Caffe's Exp: y = base^(shift + scale x) = base^shift exp(ln(base) scale x)."""

    def __init__(self, base: float, scale: float, shift: float):
        super().__init__()
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner, self.outer = log_base * scale, 1.0 if shift == 0 else math.exp(log_base * shift)

    def extra_repr(self) -> str:
        return f"inner={self.inner}, outer={self.outer}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.exp(x * self.inner if self.inner != 1 else x)
        return y * self.outer if self.outer != 1 else y


class CaffeLog(nn.Module):
    """Caffe's Log: y = ln(shift + scale x) / ln(base)."""

    def __init__(self, base: float, scale: float, shift: float):
        super().__init__()
        self.base_scale = 1.0 if base == -1 else 1.0 / math.log(base)
        self.scale, self.shift = scale, shift

    def extra_repr(self) -> str:
        return f"base_scale={self.base_scale}, scale={self.scale}, shift={self.shift}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.log(x * self.scale + self.shift)
        return y * self.base_scale if self.base_scale != 1 else y


@layer("Power", bottoms=1, tops=1, in_place=True)
def power(ctx: LayerContext) -> Built:
    """(shift + scale x)^power."""
    p = ctx.layer.power_param
    return Built(CaffePower(p.power, p.scale, p.shift))


def _base(ctx: LayerContext, base: float) -> None:
    ctx.check(base == -1 or base > 0, f"base must be strictly positive (or -1 for e), not {base}")


@layer("Exp", bottoms=1, tops=1, in_place=True)
def exp(ctx: LayerContext) -> Built:
    """base^(shift + scale x), base -1 = e."""
    p = ctx.layer.exp_param
    _base(ctx, p.base)
    return Built(CaffeExp(p.base, p.scale, p.shift))


@layer("Log", bottoms=1, tops=1, in_place=True)
def log(ctx: LayerContext) -> Built:
    """log_base(shift + scale x), base -1 = e."""
    p = ctx.layer.log_param
    _base(ctx, p.base)
    return Built(CaffeLog(p.base, p.scale, p.shift))
