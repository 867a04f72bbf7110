"""Axpy of SENet (hujie-frank/SENet's axpy_layer.cpp, shipped in NVIDIA Caffe 0.17): the
squeeze-and-excitation scale and the residual sum in one layer. Bottoms a, X, Y; no parameters.

    F[n, c, ...] = a[n, c] X[n, c, ...] + Y[n, c, ...]
    da[n, c] = sum_... dF X,   dX = a dF,   dY = dF

a is N x C or N x C x 1 x 1 (Caffe checks the first two axes against X and, for a 4-axis a,
that the last two are 1); Y has X's shape, and so has the top. In SE-ResNet the bottoms are the
sigmoid gate, the residual branch and the shortcut, in that order.

OpenCV's importer rewrites Axpy as Scale(bottom 2 by bottom 0) + Eltwise(with bottom 1), so it
computes a Y + X instead of a X + Y, and OpenCV 4.x refuses a batch above 1 there
(tests/converter/test_axpy.py shows both).
ONNX: Reshape + Mul + Add.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Built, LayerContext, layer


class Axpy(nn.Module):
    """SENet's Axpy: a X + Y with a broadcast over X's spatial axes."""

    def forward(self, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gate = a.reshape(a.shape[0], a.shape[1], *([1] * (x.dim() - 2)))
        return gate * x + y


@layer("Axpy", bottoms=3, tops=1)
def axpy(ctx: LayerContext) -> Built:
    """a X + Y with a per (sample, channel) scale a (SENet; NVIDIA Caffe 0.17)."""
    a, x, y = (list(s) for s in ctx.bottoms)
    ctx.check(len(x) >= 2 and len(a) >= 2 and a[:2] == x[:2],
              f"bottom 0 (the scale a) {a} must be N x C of bottom 1 {x}")
    ctx.check(all(d == 1 for d in a[2:]), f"bottom 0 (the scale a) {a} must be N x C or "
                                          f"N x C x 1 x 1")
    ctx.check(x == y, f"bottom 2 {y} must have the shape of bottom 1 {x}")
    return Built(Axpy())
