"""ReLU6 of the MobileNetV2 forks (relu6_layer.cpp in eric612/MobileNet-YOLO and the forks that
copied the layer; relu6_param { negative_slope } at LayerParameter 100000, as there):

    y  = min(max(x, 0) + negative_slope min(x, 0), 6)
    dx = dy ((x > 0) + negative_slope (x <= 0)) (x < 6)

Both kinks are Caffe's: the gradient at x = 0 is negative_slope (0 by default) and at x = 6 it
is 0. With negative_slope 0 that is exactly torch's hardtanh(x, 0, 6), whose gradient is
also exclusive at both ends; it exports as ONNX Clip(0, 6). With a slope, the forward is written
with Where so that the gradient keeps Caffe's mask (x < 6), also where a negative slope takes
slope x above 6 (the top is 6 there but the fork still passes slope dy).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Built, LayerContext, layer


class ReLU6(nn.Module):
    """The forks' ReLU6: y = min(max(x, 0) + negative_slope min(x, 0), 6)."""

    def __init__(self, negative_slope: float):
        super().__init__()
        self.negative_slope = negative_slope

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.negative_slope:
            return F.hardtanh(x, 0.0, 6.0)
        leaky = torch.where(x > 0, x, x * self.negative_slope)
        # min(leaky, 6) with the fork's gradient mask x < 6 (not leaky < 6)
        return torch.where(x < 6, leaky - F.relu(leaky - 6).detach(), torch.full_like(x, 6.0))


@layer("ReLU6", bottoms=1, tops=1, in_place=True)
def relu6(ctx: LayerContext) -> Built:
    """ReLU clipped at 6, with negative_slope (MobileNetV2 / YOLO forks)."""
    return Built(ReLU6(ctx.layer.relu6_param.negative_slope))
