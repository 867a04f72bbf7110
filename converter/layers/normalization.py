"""MVN, mean-variance normalization (mvn_layer.cpp).

The bottom is read as Caffe's legacy 4-D blob (num, channels, height, width; at most 4 axes,
missing trailing axes are 1) and **the top is always 4-D** (a N x D bottom gives N x D x 1 x 1).
Statistics over each (n, c) slice, or over each sample with across_channels (D values each):

    m = mean(x)                          y = x - m                (normalize_variance false)
    s = sqrt(mean((x - m)^2)) + eps      y = (x - m) / s          (eps added to the std, not
                                                                   the variance; default 1e-9)

Backward is Caffe's Backward_cpu, which differentiates as if eps were 0 but divides by s:

    dx = (dy - mean(dy) - y mean(y dy)) / s

(the exact derivative multiplies the last term by s / (s - eps); the two agree as eps -> 0,
and for the default 1e-9 to float precision). Without
normalize_variance dx = dy - mean(dy), the exact one. OpenCV's MVN instead divides by
sqrt(var + eps), which differs from Caffe for large eps.

ONNX: ReduceMean, Sub, Mul, Sqrt, Add, Div (the standard MeanVarianceNormalization op has no
eps attribute and no across-sample choice, so it is not used).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import Built, LayerContext, layer


class _CaffeMVNGrad(torch.autograd.Function):
    """y = (x - m) / s forward, Caffe's MVN Backward_cpu backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dims: tuple[int, ...], eps: float) -> torch.Tensor:
        y, s = _normalize(x, dims, eps)
        ctx.save_for_backward(y, s)
        ctx.dims = dims
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        y, s = ctx.saved_tensors
        dims = ctx.dims
        count = math.prod(y.shape[d] for d in dims)
        both = y * (y * dy).sum(dims, keepdim=True) + dy.sum(dims, keepdim=True)
        return (dy - both / count) / s, None, None


def _normalize(x: torch.Tensor, dims: tuple[int, ...], eps: float):
    centered = x - x.mean(dims, keepdim=True)
    std = (centered * centered).mean(dims, keepdim=True).sqrt() + eps
    return centered / std, std


class MVN(nn.Module):
    """Caffe's MVN (formulas in the module docstring)."""

    def __init__(self, normalize_variance: bool, across_channels: bool, eps: float):
        super().__init__()
        self.normalize_variance, self.across_channels, self.eps = \
            normalize_variance, across_channels, eps

    def extra_repr(self) -> str:
        return (f"normalize_variance={self.normalize_variance}, "
                f"across_channels={self.across_channels}, eps={self.eps:g}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while x.dim() < 4:  # Caffe's legacy num/channels/height/width view
            x = x.unsqueeze(-1)
        dtype = x.dtype  # statistics in at least float32 (bf16/fp16 under autocast)
        if dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        dims = (1, 2, 3) if self.across_channels else (2, 3)
        if not self.normalize_variance:
            y = x - x.mean(dims, keepdim=True)
        elif torch.is_grad_enabled() and x.requires_grad:
            y = _CaffeMVNGrad.apply(x, dims, self.eps)
        else:
            y = _normalize(x, dims, self.eps)[0]
        return y.to(dtype)


@layer("MVN", bottoms=1, tops=1, in_place=True)
def mvn(ctx: LayerContext) -> Built:
    """Mean (and variance) normalization per channel or per sample, eps added to the std."""
    p = ctx.layer.mvn_param
    shape = ctx.bottoms[0]
    ctx.check(1 <= len(shape) <= 4, f"the bottom must have 1 to 4 axes (Caffe's num, channels, "
                                    f"height, width), not shape {list(shape)}")
    top = (*shape, *(1,) * (4 - len(shape)))  # Caffe reshapes the top to num x channels x h x w
    return Built(MVN(p.normalize_variance, p.across_channels, p.eps), tops=(top,))
