"""InnerProduct (inner_product_layer.cpp): flatten axes [axis, end) in C order, then

    y = x W^T + b      W: (num_output, K)        (transpose: false, the default)
    y = x W + b        W: (K, num_output)        (transpose: true)

top shape = bottom.shape[:axis] + (num_output,). Blobs: weight as above, bias (num_output,).
Legacy V1 caffemodels store them as (1, 1, N, K) and (1, 1, 1, N) (reshaped when loading).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Blob, Built, LayerContext, layer


class InnerProduct(nn.Module):
    """Caffe's InnerProduct: F.linear on x.flatten(axis) (Flatten + Gemm in ONNX)."""

    def __init__(self, in_features: int, num_output: int, axis: int, transpose: bool, bias: bool):
        super().__init__()
        self.axis, self.transpose = axis, transpose
        shape = (in_features, num_output) if transpose else (num_output, in_features)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(num_output)) if bias else None

    def extra_repr(self) -> str:
        return (f"weight={tuple(self.weight.shape)}, axis={self.axis}, "
                f"transpose={self.transpose}, bias={self.bias is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.axis + 1:
            x = x.flatten(self.axis)
        weight = self.weight.t() if self.transpose else self.weight
        return F.linear(x, weight, self.bias)


@layer("InnerProduct", bottoms=1, tops=1)
def inner_product(ctx: LayerContext) -> Built:
    """Fully connected layer with axis, transpose, bias_term."""
    p = ctx.layer.inner_product_param
    ctx.check(p.num_output > 0, "num_output is not set (DIGITS sets it to the number of classes "
                                "for the last classifier; set it in the prototxt)")
    axis = ctx.axis(p.axis)
    features = math.prod(ctx.bottoms[0][axis:])
    blobs = (Blob("weight", p.weight_filler),)
    if p.bias_term:
        blobs += (Blob("bias", p.bias_filler),)
    top = (*ctx.bottoms[0][:axis], p.num_output)
    return Built(InnerProduct(features, p.num_output, axis, p.transpose, p.bias_term), blobs,
                 (top,))
