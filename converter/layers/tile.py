"""Tile (tile_layer.cpp): the blob repeated `tiles` times along `axis` (default 1), whole, as
numpy.tile does (not element by element, as repeat_interleave would):

    top.shape = bottom.shape with dim axis * tiles
    top[..., t * d + i, ...] = bottom[..., i, ...]      d = bottom.shape[axis], t < tiles

Backward (autograd = Caffe's): dx = sum over the tiles of dy's copies. ONNX: Tile. OpenCV's Caffe
importer cannot read it (its Tile wants an ONNX-style `repeats` parameter).
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Built, LayerContext, layer


class Tile(nn.Module):
    def __init__(self, axis: int, tiles: int):
        super().__init__()
        self.axis, self.tiles = axis, tiles

    def extra_repr(self) -> str:
        return f"axis={self.axis}, tiles={self.tiles}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        repeats = [1] * x.dim()
        repeats[self.axis] = self.tiles
        return x.repeat(repeats)


@layer("Tile", bottoms=1, tops=1)
def tile(ctx: LayerContext) -> Built:
    """The whole blob repeated `tiles` times along axis (numpy.tile)."""
    p = ctx.layer.tile_param
    ctx.check(p.HasField("tiles"), "tile_param.tiles (the number of tiles) must be specified")
    ctx.check(p.tiles > 0, f"the number of tiles must be positive, not {p.tiles}")
    return Built(Tile(ctx.axis(p.axis), p.tiles))
