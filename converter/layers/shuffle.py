"""ShuffleChannel of ShuffleNet (farmingyard/ShuffleNet, shuffle_channel_layer.cpp; the same
layer in many SSD/YOLO forks; shuffle_channel_param { group } at LayerParameter 164):

    the C channels read as a group x (C / group) matrix, transposed:
    y[n, j group + i] = x[n, i (C / group) + j],   i < group, j < C / group

group defaults to 1 (the identity) and must divide C (Caffe: "Wrong group size"). The backward
is the inverse permutation, which autograd gives. ONNX: Reshape + Transpose + Reshape.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Built, LayerContext, layer


class ShuffleChannel(nn.Module):
    """ShuffleNet's channel shuffle: (N, g, C/g, H, W) -> (N, C/g, g, H, W), flattened back."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def extra_repr(self) -> str:
        return f"group={self.group}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = (int(d) for d in x.shape)
        grouped = x.reshape(-1, self.group, c // self.group, h, w)
        return grouped.transpose(1, 2).reshape(-1, c, h, w)


@layer("ShuffleChannel", bottoms=1, tops=1)
def shuffle_channel(ctx: LayerContext) -> Built:
    """ShuffleNet's channel shuffle by shuffle_channel_param.group (forks)."""
    shape, group = ctx.bottoms[0], ctx.layer.shuffle_channel_param.group
    ctx.check(len(shape) == 4, f"the bottom must have 4 axes (num, channels, height, width), "
                               f"not shape {list(shape)}")
    ctx.check(group > 0, "group must be greater than 0")
    ctx.check(shape[1] % group == 0, f"group {group} does not divide the {shape[1]} channels")
    return Built(ShuffleChannel(group))
