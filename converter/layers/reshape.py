"""Shape layers: Flatten, Reshape, Crop.

    Flatten  merge axes [axis, end_axis] (defaults 1, -1)
    Reshape  bottom.shape[:a] + shape + bottom.shape[b:], a = axis, b = a + num_axes (-1: end);
             in `shape` 0 copies the bottom's dim at that place, one -1 is inferred
    Crop     top shape: bottom 0's dims before `axis` (default 2), bottom 1's from `axis` on;
             offsets (once, or once per cropped axis, default 0) say where the crop starts

The batch axis stays symbolic, so an exported model keeps its dynamic batch.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import Built, LayerContext, layer


class Flatten(nn.Module):
    def __init__(self, axis: int, end_axis: int):
        super().__init__()
        self.axis, self.end_axis = axis, end_axis

    def extra_repr(self) -> str:
        return f"axis={self.axis}, end_axis={self.end_axis}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(self.axis, self.end_axis)


class Reshape(nn.Module):
    """Reshape to `shape`; entries None copy the bottom's dim (kept symbolic for the batch)."""

    def __init__(self, shape: list[int | None]):
        super().__init__()
        self.shape = shape

    def extra_repr(self) -> str:
        return f"shape={self.shape}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape([x.shape[i] if d is None else d for i, d in enumerate(self.shape)])


class Crop(nn.Module):
    def __init__(self, axis: int, offsets: list[int]):
        super().__init__()
        self.axis, self.offsets = axis, offsets

    def extra_repr(self) -> str:
        return f"axis={self.axis}, offsets={self.offsets}"

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        for i, offset in enumerate(self.offsets):
            dim = self.axis + i
            x = x.narrow(dim, offset, like.shape[dim])
        return x


@layer("Flatten", bottoms=1, tops=1)
def flatten(ctx: LayerContext) -> Built:
    """Merges axes [axis, end_axis] into one."""
    p = ctx.layer.flatten_param
    start, end = ctx.axis(p.axis), ctx.axis(p.end_axis)
    ctx.check(start <= end, f"axis {p.axis} comes after end_axis {p.end_axis}")
    return Built(Flatten(start, end))


@layer("Reshape", bottoms=1, tops=1)
def reshape(ctx: LayerContext) -> Built:
    """Reshape with 0 (copy) and -1 (infer), axis and num_axes."""
    p = ctx.layer.reshape_param
    bottom = list(ctx.bottoms[0])
    n = len(bottom)
    start = p.axis if p.axis >= 0 else n + p.axis + 1
    ctx.check(0 <= start <= n, f"axis {p.axis} is out of range for a {n}-axis bottom")
    ctx.check(p.num_axes >= -1, f"num_axes must be >= 0, or -1 for all remaining, not {p.num_axes}")
    end = n if p.num_axes == -1 else start + p.num_axes
    ctx.check(end <= n, f"axis {p.axis} + num_axes {p.num_axes} exceeds the bottom's {n} axes")
    spec = list(p.shape.dim)
    ctx.check(spec.count(-1) <= 1, "at most one dimension can be -1 (inferred)")
    ctx.check(all(d >= -1 for d in spec), f"dimensions must be >= -1: {spec}")
    middle: list[int | None] = []
    for i, d in enumerate(spec):
        if d == 0:
            ctx.check(start + i < n, f"shape dim {i} is 0 (copy) but the bottom has no axis "
                                     f"{start + i}")
            middle.append(None)
        else:
            middle.append(d)
    shape = [None] * start + middle + bottom[end:]
    known = math.prod(bottom[i] if d is None else d for i, d in enumerate(shape) if d != -1)
    total = math.prod(bottom)
    if -1 in shape:
        ctx.check(known > 0 and total % known == 0,
                  f"cannot infer the -1 dimension: {total} values do not divide by {known}")
    else:
        ctx.check(known == total, f"the top shape holds {known} values, the bottom {total}")
    # The batch stays symbolic unless the spec sets axis 0 explicitly; other copies are fixed.
    shape = [d if (d is not None or i == 0) else bottom[i] for i, d in enumerate(shape)]
    return Built(Reshape(shape))


@layer("Crop", bottoms=2, tops=1)
def crop(ctx: LayerContext) -> Built:
    """Crops bottom 0 to bottom 1's shape from axis on, at offsets."""
    p = ctx.layer.crop_param
    big, small = ctx.bottoms
    ctx.check(len(big) == len(small), f"both bottoms need the same number of axes: {list(big)} "
                                      f"and {list(small)}")
    axis = ctx.axis(p.axis)
    count = len(big) - axis
    offsets = list(p.offset)
    ctx.check(len(offsets) in (0, 1, count), f"give offset once, once per cropped axis "
                                             f"({count}), or not at all")
    offsets = offsets * count if len(offsets) == 1 else offsets or [0] * count
    for i, offset in enumerate(offsets):
        dim = axis + i
        ctx.check(big[dim] - offset >= small[dim], f"invalid crop on axis {dim}: {big[dim]} - "
                                                   f"offset {offset} < {small[dim]}")
    return Built(Crop(axis, offsets))
