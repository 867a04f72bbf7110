"""Eltwise (eltwise_layer.cpp) over bottoms of one shape:

    PROD  y = x_1 x_2 ... x_n
    SUM   y = sum_i coeff_i x_i          (coeff default 1 each; one per bottom when given)
    MAX   y = max_i x_i                  (ties go to the earlier bottom, as Caffe's mask)
"""
from __future__ import annotations

import torch
from torch import nn

from prototxt import caffe_pb2
from ..registry import Built, LayerContext, layer

E = caffe_pb2.EltwiseParameter


class Eltwise(nn.Module):
    def __init__(self, operation: int, coeff: list[float]):
        super().__init__()
        self.operation, self.coeff = operation, coeff

    def extra_repr(self) -> str:
        return f"{E.EltwiseOp.Name(self.operation)}" + (f", coeff={self.coeff}" if self.coeff else "")

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.operation == E.PROD:
            y = xs[0]
            for x in xs[1:]:
                y = y * x
            return y
        if self.operation == E.MAX:
            y = xs[0]
            for x in xs[1:]:
                y = torch.where(x > y, x, y)
            return y
        coeff = self.coeff or [1.0] * len(xs)
        y = xs[0] * coeff[0] if coeff[0] != 1 else xs[0]
        for c, x in zip(coeff[1:], xs[1:]):
            y = y + (x * c if c != 1 else x)
        return y


@layer("Eltwise", bottoms=(2, None), tops=1)
def eltwise(ctx: LayerContext) -> Built:
    """Element-wise PROD, SUM (with coeff) or MAX of 2+ bottoms."""
    p = ctx.layer.eltwise_param
    coeff = list(p.coeff)
    ctx.check(not coeff or len(coeff) == len(ctx.bottoms),
              f"Eltwise takes one coefficient per bottom ({len(ctx.bottoms)}), not {len(coeff)}")
    ctx.check(not coeff or p.operation == E.SUM, "Eltwise only takes coefficients for SUM")
    for i, shape in enumerate(ctx.bottoms[1:], 1):
        ctx.check(shape == ctx.bottoms[0], f"bottom {i} has shape {list(shape)}, bottom 0 "
                                           f"{list(ctx.bottoms[0])}; they must be equal")
    return Built(Eltwise(p.operation, coeff))
