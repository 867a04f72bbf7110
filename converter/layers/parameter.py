"""Parameter (parameter_layer.hpp): a learned blob as the layer's only top.

    top = blob 0,   shape = parameter_param.shape (no dims: a scalar blob of one value)

No bottoms. Caffe shares the blob's data and diff with the top, so the blob's gradient is the
top's diff; autograd gives the same. Caffe has no filler for it: a new blob is zeros
(SyncedMemory clears it), so it starts at 0 until a caffemodel is loaded. Exported to ONNX the
top is an initializer (a constant of the trained values).
"""
from __future__ import annotations

import torch
from torch import nn

from ..fillers import constant_filler
from ..registry import Blob, Built, LayerContext, layer


class Parameter(nn.Module):
    """Returns its learned blob (Caffe's ParameterLayer)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(shape))

    def extra_repr(self) -> str:
        return f"shape={tuple(self.weight.shape)}"

    def forward(self) -> torch.Tensor:
        return self.weight


@layer("Parameter", bottoms=0, tops=1)
def parameter(ctx: LayerContext) -> Built:
    """A learned blob of parameter_param.shape as a top (starts at zero, as in Caffe)."""
    shape = tuple(int(d) for d in ctx.layer.parameter_param.shape.dim)
    ctx.check_size(all(d > 0 for d in shape), f"shape {list(shape)} has a dimension that is not "
                                              "positive")
    return Built(Parameter(shape), (Blob("weight", constant_filler(0.0)),))
