"""Scale and Bias (scale_layer.cpp, bias_layer.cpp).

Scale: y = x gamma (+ beta), gamma over axes [axis, axis + num_axes) of x (num_axes -1: to the
    end, 0: a scalar), a learned blob (filler default constant 1) or bottom 1; beta is the bias
    blob (bias_term, bias_filler default constant 0).
Bias:  y = x + beta, beta learned (filler default constant 0) or bottom 1, same axes.
"""
from __future__ import annotations

import torch
from torch import nn

from ..fillers import constant_filler
from ..registry import Blob, Built, LayerContext, layer


class Scale(nn.Module):
    """y = x gamma (+ beta), gamma/beta broadcast over axes [axis, axis + gamma.dim())."""

    def __init__(self, axis: int, shape: tuple[int, ...] | None, bias_shape: tuple[int, ...] | None):
        super().__init__()
        self.axis = axis
        self.weight = nn.Parameter(torch.empty(shape)) if shape is not None else None
        self.bias = nn.Parameter(torch.empty(bias_shape)) if bias_shape is not None else None

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def _expand(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.reshape(tuple(t.shape) + (1,) * (x.dim() - self.axis - t.dim()))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor | None = None) -> torch.Tensor:
        gamma = self.weight if gamma is None else gamma
        y = x * self._expand(gamma, x)
        return y + self._expand(self.bias, x) if self.bias is not None else y


class Bias(Scale):
    """y = x + beta, beta broadcast over axes [axis, axis + beta.dim())."""

    def forward(self, x: torch.Tensor, beta: torch.Tensor | None = None) -> torch.Tensor:
        beta = self.bias if beta is None else beta
        return x + self._expand(beta, x)


def _param_shape(ctx: LayerContext, param) -> tuple[int, tuple[int, ...]]:
    """Caffe's axis and the shape of the learned (or bottom 1) factor."""
    x = ctx.bottoms[0]
    if len(ctx.bottoms) > 1:
        other = tuple(ctx.bottoms[1])
        axis = 0 if not other else ctx.axis(param.axis)
        ctx.check(tuple(x[axis:axis + len(other)]) == other,
                  f"bottom 1 {list(other)} must match bottom 0 {list(x)} from axis {axis}")
        return axis, other
    ctx.check(param.num_axes >= -1, f"num_axes must be >= -1, not {param.num_axes}")
    axis = 0 if param.num_axes == 0 else ctx.axis(param.axis)
    end = len(x) if param.num_axes == -1 else axis + param.num_axes
    ctx.check(end <= len(x), f"axis {axis} + num_axes {param.num_axes} exceeds the bottom's "
                             f"{len(x)} axes")
    return axis, tuple(x[axis:end])


@layer("Scale", bottoms=(1, 2), tops=1, in_place=True)
def scale(ctx: LayerContext) -> Built:
    """Per-channel (axis, num_axes) product with a learned or bottom factor, optional bias_term."""
    p = ctx.layer.scale_param
    axis, shape = _param_shape(ctx, p)
    learned = len(ctx.bottoms) == 1
    module = Scale(axis, shape if learned else None, shape if p.bias_term else None)
    blobs = (Blob("weight", p.filler if p.HasField("filler") else constant_filler(1.0)),) \
        if learned else ()
    if p.bias_term:
        blobs += (Blob("bias", p.bias_filler),)
    return Built(module, blobs)


@layer("Bias", bottoms=(1, 2), tops=1, in_place=True)
def bias(ctx: LayerContext) -> Built:
    """Adds a learned or bottom bias over axes (axis, num_axes)."""
    p = ctx.layer.bias_param
    axis, shape = _param_shape(ctx, p)
    learned = len(ctx.bottoms) == 1
    return Built(Bias(axis, None, shape if learned else None),
                 (Blob("bias", p.filler),) if learned else ())
