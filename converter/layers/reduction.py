"""Reductions: ArgMax (argmax_layer.cpp) and Reduction (reduction_layer.cpp).

ArgMax    the top_k largest values of each slice, ordered as Caffe's std::partial_sort with
          std::greater<pair<value, index>>: by value descending, *ties by index descending*
          (the highest index first; torch.argmax and ONNX ArgMax/TopK take the lowest).
          Indices are written as floats.
          no axis: each sample flattened (count(1) values); the top has max(ndim, 3) axes,
                   N x 1 x K (x 1 ...), or N x 2 x K (x 1 ...) with out_max_val: row 0 the
                   indices, row 1 the values
          axis a:  the bottom's shape with dim a = K; the indices, or with out_max_val the
                   values only
          No gradient: Caffe's Backward is NOT_IMPLEMENTED (here the top is detached).
Reduction the tail from `axis` on (all of it, flattened) reduced to one number per position of
          the axes before it; the top shape is bottom.shape[:axis] (axis 0: a scalar)
              SUM    coeff sum x        ASUM  coeff sum |x|
              SUMSQ  coeff sum x^2      MEAN  (coeff / count) sum x
          Gradients (autograd = Caffe's Backward): coeff dy, coeff sign(x) dy (0 at x = 0),
          2 coeff x dy, coeff / count dy.

ONNX: ArgMax as Slice (reversed axis) + TopK + Sub + Cast, so TopK's lowest-index tie rule on the
reversed axis gives Caffe's highest-index rule; Reduction as ReduceSum (after Abs or Mul) or
ReduceMean, then Mul by coeff.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from prototxt import caffe_pb2
from ..registry import Built, LayerContext, layer

R = caffe_pb2.ReductionParameter


def caffe_topk(x: torch.Tensor, k: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the k largest along `dim`, ties to the highest index (Caffe)."""
    flipped = x.flip(dim)
    if torch.onnx.is_in_onnx_export():  # ONNX TopK: ties to the lowest index, by definition
        values, index = torch.topk(flipped, k, dim, largest=True, sorted=True)
    else:  # torch.topk leaves its tie order unspecified; a stable sort does not
        values, index = torch.sort(flipped, stable=True, dim=dim, descending=True)
        values, index = values.narrow(dim, 0, k), index.narrow(dim, 0, k)
    return values, (x.shape[dim] - 1) - index


class ArgMax(nn.Module):
    """Caffe's ArgMax (formulas in the module docstring); axis None = per flattened sample."""

    def __init__(self, top_k: int, out_max_val: bool, axis: int | None):
        super().__init__()
        self.top_k, self.out_max_val, self.axis = top_k, out_max_val, axis

    def extra_repr(self) -> str:
        return f"top_k={self.top_k}, out_max_val={self.out_max_val}, axis={self.axis}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        if self.axis is not None:
            values, index = caffe_topk(x, self.top_k, self.axis)
            return values if self.out_max_val else index.to(x.dtype)
        values, index = caffe_topk(x.reshape(x.shape[0], -1), self.top_k, 1)
        y = index.to(x.dtype).unsqueeze(1)  # N x 1 x K
        if self.out_max_val:
            y = torch.cat([y, values.unsqueeze(1)], 1)  # N x 2 x K
        for _ in range(max(x.dim(), 3) - 3):
            y = y.unsqueeze(-1)
        return y


class Reduction(nn.Module):
    """Caffe's Reduction over axes [axis, end) (formulas in the module docstring)."""

    def __init__(self, operation: int, axis: int, coeff: float):
        super().__init__()
        self.operation, self.axis, self.coeff = operation, axis, coeff

    def extra_repr(self) -> str:
        return f"{R.ReductionOp.Name(self.operation)}, axis={self.axis}, coeff={self.coeff}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(self.axis, x.dim()))
        if self.operation == R.ASUM:
            x = x.abs()
        elif self.operation == R.SUMSQ:
            x = x * x
        # MEAN as a mean (ReduceMean), not sum * (coeff / count): with axis 0 the count
        # includes the batch, which stays dynamic in an exported model
        y = x.mean(dims) if self.operation == R.MEAN else x.sum(dims)
        return y * self.coeff if self.coeff != 1 else y


@layer("ArgMax", bottoms=1, tops=1, gradient=False)
def argmax(ctx: LayerContext) -> Built:
    """Top-k indices (or values) per sample or along axis, Caffe's tie order; no gradient."""
    p = ctx.layer.argmax_param
    shape = ctx.bottoms[0]
    ctx.check(p.top_k >= 1, "top_k must not be less than 1")
    if p.HasField("axis"):
        axis = ctx.axis(p.axis)
        ctx.check(p.top_k <= shape[axis], f"top_k ({p.top_k}) must be less than or equal to the "
                                          f"dimension of axis {axis} ({shape[axis]})")
    else:
        axis = None
        ctx.check(len(shape) >= 1, "the bottom needs at least 1 axis")
        per_sample = math.prod(shape[1:])
        ctx.check(p.top_k <= per_sample, f"top_k ({p.top_k}) must be less than or equal to the "
                                         f"flattened size per sample ({per_sample})")
    return Built(ArgMax(p.top_k, p.out_max_val, axis))


@layer("Reduction", bottoms=1, tops=1)
def reduction(ctx: LayerContext) -> Built:
    """SUM, ASUM, SUMSQ or MEAN of all axes from axis on, times coeff."""
    p = ctx.layer.reduction_param
    ctx.check(p.operation in (R.SUM, R.ASUM, R.SUMSQ, R.MEAN),
              f"unknown reduction operation {p.operation}")
    return Built(Reduction(p.operation, ctx.axis(p.axis), p.coeff))
