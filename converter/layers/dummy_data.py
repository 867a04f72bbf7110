"""DummyData (dummy_data_layer.cpp): blobs of given shapes filled by fillers, no bottoms.

Shapes: `shape` once for all tops or once per top, or the legacy 4-D `num`, `channels`,
`height`, `width` (each once or once per top; not together with `shape`). Values:
`data_filler` once for all tops, once per top, or not at all (constant 0). Caffe fills a top
whose filler is "constant" once at set-up and refills every other top at every forward, in
TRAIN and TEST alike (a new random batch per iteration).

How it becomes part of a model (our choice): **its tops are model inputs**, like Input's. Nets
use DummyData to stand in for the data and label of a benchmark or a test (`caffe time`, the
Intel Caffe benchmark nets: `data_filler { type: "constant" value: 0.01 }` over 32x3x224x224),
so an exported net takes the image as its input, `--input top=NxCxHxW` can change the shape,
and the shape inference / ONNX export work as for an Input layer. What Caffe would feed comes
from `dummy_data_values(model)`: every DummyData top filled by its filler (fresh random values
on each call, constants the same each time), so `model(**dummy_data_values(model))` is Caffe's
forward. A DummyData used as a constant inside a net (a zeros blob for a Concat) is therefore
also an input, which the caller feeds (for instance from dummy_data_values); `trainer run`
(at every forward pass) and `trainer time` feed it that way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from prototxt import caffe_pb2
from ..fillers import FILLERS, constant_filler, fill
from ..registry import LayerContext, layer

if TYPE_CHECKING:
    from ..net import CaffeNet


def _once_or_per_top(ctx: LayerContext, values, name: str) -> None:
    tops = len(ctx.layer.top)
    ctx.check(len(values) in (1, tops), f"'{name}' must be given once, or once per top blob "
                                        f"({tops}); it is given {len(values)} times")


def fillers(param: caffe_pb2.DummyDataParameter, tops: int) -> list[caffe_pb2.FillerParameter]:
    """The filler of each top: data_filler once, per top, or constant 0 when not given."""
    given = list(param.data_filler) or [constant_filler(0.0)]
    return given * tops if len(given) == 1 else given


@layer("DummyData", bottoms=0, tops=(1, None), data=True)
def dummy_data(ctx: LayerContext) -> list:
    """Filler-filled blobs as model inputs (shape or legacy num/channels/height/width)."""
    p = ctx.layer.dummy_data_param
    tops = list(ctx.layer.top)
    if len(p.data_filler) not in (0, 1):
        ctx.check(len(p.data_filler) == len(tops), f"the number of data fillers must be 0, 1 or "
                  f"the number of tops ({len(tops)}); it is {len(p.data_filler)}")
    for f in p.data_filler:
        ctx.check(f.type in FILLERS, f"unknown filler type {f.type!r}; known: "
                                     f"{', '.join(sorted(FILLERS))}")
    legacy = [list(getattr(p, n)) for n in ("num", "channels", "height", "width")]
    if any(legacy):
        ctx.check(not len(p.shape), "both shape and the legacy num/channels/height/width are "
                                    "given; give one of them")
        for name, values in zip(("num", "channels", "height", "width"), legacy):
            _once_or_per_top(ctx, values, name)
        shapes = [tuple(v[0] if len(v) == 1 else v[i] for v in legacy) for i in range(len(tops))]
    else:
        _once_or_per_top(ctx, p.shape, "shape")
        shapes = [tuple(p.shape[0 if len(p.shape) == 1 else i].dim) for i in range(len(tops))]
    return [tuple(int(d) for d in ctx.given.get(top) or shape) for top, shape in zip(tops, shapes)]


def dummy_data_values(model: "CaffeNet", generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """What Caffe's DummyData layers of `model` output at one forward, by top name."""
    values = {}
    for layer_param in model.net.layer:
        if layer_param.type != "DummyData":
            continue
        tops = list(layer_param.top)
        for top, filler in zip(tops, fillers(layer_param.dummy_data_param, len(tops))):
            blob = torch.empty(model.input_shapes[top], dtype=dtype)
            values[top] = fill(blob, filler, generator,
                               where=f"{model.source}: layer '{layer_param.name}' (DummyData) "
                                     f"top '{top}': ")
    return values
