"""Filter and BatchReindex (filter_layer.cpp, batch_reindex_layer.cpp): pick items of the batch.

    Filter        bottoms x_1 .. x_k, s (the selector, last): top_t = x_t[{n : s[n] != 0}]
                  (items kept in batch order); s is N x 1 x ... x 1, every x_t has N items.
    BatchReindex  bottoms x, r (1 axis): top = x[int(r)], shape (len(r),) + x.shape[1:];
                  each r[i] must be in [0, N) (Caffe CHECKs it; here a ConverterError).

Gradients are Caffe's: Filter copies each kept item's diff back and zeroes the others;
BatchReindex adds each top item's diff into the item it came from (an index used twice gets
both). Autograd of index_select computes exactly these. Neither passes a gradient to the
selector or the indices (Caffe refuses to).

Filter's top size depends on the selector's values. The shape Caffe reports at set-up (its
first Reshape) is the bottom's, all N items, and so is the shape here at build time (shape
inference, `converter shapes`); each forward then gives the selected count, which may be 0.
ONNX: Filter is NonZero + Gather (a data-dependent size, fine for ONNX Runtime), BatchReindex
Cast + Gather.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConverterError
from ..registry import Built, LayerContext, layer


class Filter(nn.Module):
    """Keeps the items whose selector value is non-zero, in every bottom but the last."""

    def forward(self, *bottoms: torch.Tensor):
        *blobs, selector = bottoms
        if selector.device.type == "meta":  # shape inference: Caffe's set-up shape (all items)
            return tuple(blobs) if len(blobs) > 1 else blobs[0]
        keep = torch.nonzero(selector.detach().reshape(-1) != 0).reshape(-1)
        tops = tuple(b.index_select(0, keep) for b in blobs)
        return tops if len(tops) > 1 else tops[0]


class BatchReindex(nn.Module):
    """top = x[int(r)] along axis 0 (Caffe's BatchReindex)."""

    def __init__(self, source: str | None = None, name: str = ""):
        super().__init__()
        self.source, self.name = source, name

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        r = r.detach()
        if r.device.type != "meta" and not torch.onnx.is_in_onnx_export() and r.numel() and \
                bool(((r < 0) | (r >= x.shape[0])).any()):
            bad = r[(r < 0) | (r >= x.shape[0])][0].item()
            raise ConverterError(f"index {bad:g} is outside the batch of {x.shape[0]} items",
                                 self.source, layer=self.name, layer_type="BatchReindex")
        return x.index_select(0, r.to(torch.int64))


@layer("Filter", bottoms=(2, None), tops=(1, None))
def filter_layer(ctx: LayerContext) -> Built:
    """Keeps the batch items whose selector (last bottom) is non-zero, in the other bottoms."""
    *blobs, selector = ctx.bottoms
    ctx.check(len(ctx.layer.top) == len(blobs), f"needs one top per bottom to filter "
              f"({len(blobs)}: all bottoms but the selector); it has {len(ctx.layer.top)}")
    ctx.check(len(selector) >= 1 and all(d == 1 for d in selector[1:]),
              f"the selector (last bottom) must be N x 1 x ... x 1, not {list(selector)}")
    for i, shape in enumerate(blobs):
        ctx.check(len(shape) >= 1 and shape[0] == selector[0],
                  f"bottom {i} {list(shape)} must have the selector's {selector[0]} items on "
                  "axis 0")
    return Built(Filter())


@layer("BatchReindex", bottoms=2, tops=1)
def batch_reindex(ctx: LayerContext) -> Built:
    """Gathers batch items by a 1-axis index blob (repeats and reordering allowed)."""
    x, r = ctx.bottoms
    ctx.check(len(r) == 1, f"the index blob (bottom 1) must have 1 axis, not shape {list(r)}")
    ctx.check(len(x) >= 1, "bottom 0 needs a batch axis")
    return Built(BatchReindex(ctx.source, ctx.layer.name))
