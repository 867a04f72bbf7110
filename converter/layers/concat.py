"""Blob plumbing: Concat, Slice, Split, Silence.

    Concat   tops[0] = cat(bottoms, axis)        axis (default 1) or legacy concat_dim
    Slice    split bottom along axis at slice_point (or into equal parts)  axis or slice_dim
    Split    every top is the bottom (Caffe adds these itself where a blob feeds several layers)
    Silence  consumes its bottoms, no tops
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Built, LayerContext, layer


class Concat(nn.Module):
    def __init__(self, axis: int):
        super().__init__()
        self.axis = axis

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.axis)


class Slice(nn.Module):
    def __init__(self, axis: int, sizes: list[int]):
        super().__init__()
        self.axis, self.sizes = axis, sizes

    def extra_repr(self) -> str:
        return f"axis={self.axis}, sizes={self.sizes}"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.split(x, self.sizes, self.axis))


class Split(nn.Module):
    def __init__(self, count: int):
        super().__init__()
        self.count = count

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x,) * self.count


class Silence(nn.Module):
    def forward(self, *xs: torch.Tensor) -> tuple[()]:
        return ()


def _legacy_axis(ctx: LayerContext, param, legacy: str) -> int:
    ctx.check(not (param.HasField("axis") and param.HasField(legacy)),
              f"either axis or {legacy} should be specified; not both")
    return ctx.axis(getattr(param, legacy) if param.HasField(legacy) else param.axis)


@layer("Concat", bottoms=(1, None), tops=1)
def concat(ctx: LayerContext) -> Built:
    """Concatenation along axis (or legacy concat_dim)."""
    axis = _legacy_axis(ctx, ctx.layer.concat_param, "concat_dim")
    first = ctx.bottoms[0]
    for i, shape in enumerate(ctx.bottoms[1:], 1):
        ctx.check(len(shape) == len(first) and all(
            a == b for j, (a, b) in enumerate(zip(shape, first)) if j != axis),
            f"all bottoms must have the same shape except on axis {axis}; bottom 0 is "
            f"{list(first)}, bottom {i} is {list(shape)}")
    top = list(first)
    top[axis] = sum(shape[axis] for shape in ctx.bottoms)
    return Built(Concat(axis), tops=(tuple(top),))


@layer("Slice", bottoms=1, tops=(1, None))
def slice_(ctx: LayerContext) -> Built:
    """Slicing along axis (or legacy slice_dim) at slice_point, or into equal parts."""
    p = ctx.layer.slice_param
    axis = _legacy_axis(ctx, p, "slice_dim")
    size, count = ctx.bottoms[0][axis], len(ctx.layer.top)
    points = list(p.slice_point)
    if points:
        ctx.check(len(points) == count - 1, f"{len(points)} slice_point(s) for {count} tops; "
                                            f"give one fewer than the tops")
        edges = [0, *points, size]
        ctx.check(all(a < b for a, b in zip(edges, edges[1:])),
                  f"slice_point {points} must increase strictly inside (0, {size})")
        sizes = [b - a for a, b in zip(edges, edges[1:])]
    else:
        ctx.check(size % count == 0, f"axis {axis} has {size} elements, which do not split into "
                                     f"{count} equal parts")
        sizes = [size // count] * count
    return Built(Slice(axis, sizes))


@layer("Split", bottoms=1, tops=(1, None))
def split(ctx: LayerContext) -> Built:
    """Copies of the bottom, one per top."""
    return Built(Split(len(ctx.layer.top)))


@layer("Silence", bottoms=(1, None), tops=0)
def silence(ctx: LayerContext) -> Built:
    """Consumes bottoms that would otherwise be net outputs."""
    return Built(Silence())
