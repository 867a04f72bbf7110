"""Embed (embed_layer.cpp): a lookup table, one learned row per input index.

    y[..., :] = W[int(x[...]), :] (+ b)      W: (input_dim, num_output) = (K, N), b: (N,)

top shape = bottom shape + (num_output,). W is stored K x N, as Caffe stores it ("transposed
from InnerProductLayer for spatial locality"), so a caffemodel's blob loads as it is. Indices
are float blob values cast to int like C++'s static_cast<int> (truncation toward zero); each
must lie in [0, input_dim) (Caffe only DCHECKs it; here an index out of range raises).
Gradients are Caffe's: dW[k] = sum of the top diffs at positions with index k, db = sum of all
top diffs (autograd of the lookup computes exactly that); none reaches the indices (Caffe
refuses to backpropagate to the input). ONNX: Cast to int64 + Gather (+ Add).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Blob, Built, LayerContext, layer


class Embed(nn.Module):
    """Caffe's Embed (formula in the module docstring)."""

    def __init__(self, input_dim: int, num_output: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(input_dim, num_output))
        self.bias = nn.Parameter(torch.empty(num_output)) if bias else None

    def extra_repr(self) -> str:
        return f"input_dim={self.weight.shape[0]}, num_output={self.weight.shape[1]}, " \
               f"bias={self.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = x.detach().to(torch.int64)  # static_cast<int>: truncation toward zero
        y = F.embedding(index, self.weight)
        return y + self.bias if self.bias is not None else y


@layer("Embed", bottoms=1, tops=1)
def embed(ctx: LayerContext) -> Built:
    """Lookup table: input_dim x num_output weights (Caffe's K x N layout), bias_term."""
    p = ctx.layer.embed_param
    ctx.check(p.num_output > 0, "num_output must be positive")
    ctx.check(p.input_dim > 0, "input_dim must be positive")
    blobs = (Blob("weight", p.weight_filler),)
    if p.bias_term:
        blobs += (Blob("bias", p.bias_filler),)
    return Built(Embed(p.input_dim, p.num_output, p.bias_term), blobs)
