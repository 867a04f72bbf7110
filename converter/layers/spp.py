"""SPP, spatial pyramid pooling (spp_layer.cpp): levels l = 0 .. pyramid_height - 1, each an
ordinary Caffe Pooling (MAX or AVE, ceil rounding, the clip rule and AVE's padded divisor of
pooling.py) with, per spatial axis of size H,

    bins = 2^l    kernel = ceil(H / bins)    stride = kernel    pad = (kernel bins - H + 1) / 2

(integer division), recomputed whenever the input size changes. This is *not* adaptive pooling:
the windows are equal, padded, and cut by the ceil rule. Caffe's Pooling refuses pad >= kernel,
so a level with more bins than the input allows (e.g. H = 5 at 4 bins: kernel 2, pad 2) is an
error here as it is in Caffe.

    pyramid_height 1: the top is the pooling's own N x C x 1 x 1 (not flattened)
    otherwise:        each level flattened to N x (C h_l w_l), concatenated along axis 1

Backward: autograd through the poolings (Caffe's). ONNX: each level as pooling.py exports it
(Pad + MaxPool/AveragePool), then Flatten and Concat.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from prototxt import caffe_pb2
from ..registry import Built, LayerContext, layer
from .pooling import CaffePooling

S, P = caffe_pb2.SPPParameter, caffe_pb2.PoolingParameter
METHODS = {S.MAX: P.MAX, S.AVE: P.AVE}


def spp_window(size: int, level: int) -> tuple[int, int]:
    """(kernel, pad) of SPPLayer::GetPoolingParam along an axis of `size` at `level`."""
    bins = 2 ** level
    kernel = math.ceil(size / bins)
    return kernel, (kernel * bins - size + 1) // 2


def spp_levels(height: int, width: int, pyramid_height: int) -> list[tuple[tuple[int, int],
                                                                          tuple[int, int]]]:
    """[(kernel (h, w), pad (h, w)) per level]; raises ValueError where Caffe's check fails."""
    levels = []
    for level in range(pyramid_height):
        (kh, ph), (kw, pw) = spp_window(height, level), spp_window(width, level)
        if ph >= kh or pw >= kw:
            raise ValueError(f"level {level} ({2 ** level} bins) on a {height}x{width} input "
                             f"needs pad {ph}x{pw} >= kernel {kh}x{kw}, which Caffe's Pooling "
                             f"refuses; use a pyramid_height below {level + 1} or a larger input")
        levels.append(((kh, kw), (ph, pw)))
    return levels


class SPP(nn.Module):
    """Caffe's SPP (formulas in the module docstring)."""

    def __init__(self, pyramid_height: int, method: int):
        super().__init__()
        self.pyramid_height, self.method = pyramid_height, method
        self._pools: dict[tuple[int, int], list[CaffePooling]] = {}

    def extra_repr(self) -> str:
        return f"pyramid_height={self.pyramid_height}, {'MAX' if self.method == P.MAX else 'AVE'}"

    def pools(self, height: int, width: int) -> list[CaffePooling]:
        if (height, width) not in self._pools:
            self._pools[height, width] = [
                CaffePooling(self.method, kernel, kernel, pad, True)
                for kernel, pad in spp_levels(height, width, self.pyramid_height)]
        return self._pools[height, width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pools = self.pools(int(x.shape[-2]), int(x.shape[-1]))
        if self.pyramid_height == 1:
            return pools[0](x)
        return torch.cat([pool(x).flatten(1) for pool in pools], 1)


@layer("SPP", bottoms=1, tops=1)
def spp(ctx: LayerContext) -> Built:
    """Spatial pyramid pooling, MAX or AVE, with Caffe's bin sizes (not adaptive pooling)."""
    p = ctx.layer.spp_param
    shape = ctx.bottoms[0]
    ctx.check(len(shape) == 4, f"the bottom must have 4 axes (num, channels, height, width), "
                               f"not shape {list(shape)}")
    ctx.check(p.pyramid_height >= 1, "spp_param.pyramid_height must be at least 1")
    ctx.check(p.pool in METHODS, f"pool: {S.PoolMethod.Name(p.pool)} is not supported "
                                 "(only MAX and AVE)")
    ctx.check_size(min(shape[2:]) > 0, f"the input {shape[2]}x{shape[3]} is empty")
    try:
        spp_levels(shape[2], shape[3], p.pyramid_height)
    except ValueError as exc:
        raise ctx.fail(str(exc)) from None
    return Built(SPP(p.pyramid_height, METHODS[p.pool]))
