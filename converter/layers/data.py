"""Data layers become model inputs: Input, Data, ImageData, MemoryData (and net-level `input`).

Their builders return top shapes only. Shapes the prototxt does not fix (an LMDB's channels and
image size) come from `build_model(input_shapes=...)` / `--input`; a given shape with 3 dims is
C x H x W and gets the layer's batch size, and a transform crop replaces H and W (what Caffe's
DataTransformer outputs). Labels are `(batch,)`, as in Caffe's data layers.
"""
from __future__ import annotations

from ..registry import LayerContext, layer


def _given(ctx: LayerContext, top: str, batch: int | None, crop: int) -> tuple[int, ...] | None:
    shape = ctx.given.get(top)
    if shape is None:
        return None
    shape = tuple(int(d) for d in shape)
    if len(shape) == 3 and batch:
        shape = (batch, *shape)
    if crop and len(shape) == 4:
        ctx.check(shape[2] >= crop and shape[3] >= crop,
                  f"crop_size {crop} is larger than the given input {'x'.join(map(str, shape))}")
        shape = (*shape[:2], crop, crop)
    return shape


def _data_and_label(ctx: LayerContext, batch: int, chw: tuple[int | None, ...], crop: int,
                    kind: str) -> list:
    top = ctx.layer.top[0]
    shape = _given(ctx, top, batch, crop)
    if shape is None:
        c, h, w = chw
        if crop:
            h = w = crop
        if None in (c, h, w):
            raise ctx.fail(f"the shape of top '{top}' comes from the {kind} at run time; give it "
                           f"as input_shapes={{'{top}': (N, C, H, W)}} (command line: --input "
                           f"{batch}xCxHxW)")
        shape = (batch, c, h, w)
    shapes = [shape]
    if len(ctx.layer.top) > 1:
        shapes.append((shape[0],))
    return shapes


@layer("Input", bottoms=0, tops=(1, None), data=True)
def input_layer(ctx: LayerContext) -> list:
    """Net inputs with `input_param.shape` (once for all tops or once per top)."""
    shapes = [tuple(s.dim) for s in ctx.layer.input_param.shape]
    tops = list(ctx.layer.top)
    ctx.check(len(shapes) in (0, 1, len(tops)), f"input_param.shape must be given once, once per "
              f"top ({len(tops)}) or not at all; it is given {len(shapes)} times")
    out = []
    for i, top in enumerate(tops):
        shape = ctx.given.get(top) or (shapes[0] if len(shapes) == 1 else
                                       shapes[i] if shapes else None)
        if shape is None:
            raise ctx.fail(f"no shape for input '{top}'; give input_param {{ shape {{ dim: ... }} }}"
                           f" or input_shapes={{'{top}': (N, C, H, W)}}")
        out.append(tuple(int(d) for d in shape))
    return out


@layer("Data", bottoms=0, tops=(1, 2), data=True)
def data_layer(ctx: LayerContext) -> list:
    """LMDB/LevelDB batches (data, label): batch_size from data_param, crop from transform_param."""
    return _data_and_label(ctx, ctx.layer.data_param.batch_size, (None, None, None),
                           ctx.layer.transform_param.crop_size, "database")


@layer("ImageData", bottoms=0, tops=(1, 2), data=True)
def image_data_layer(ctx: LayerContext) -> list:
    """Images from a list file: channels from is_color, size from new_height/new_width or crop."""
    p = ctx.layer.image_data_param
    size = (p.new_height or None, p.new_width or None)
    return _data_and_label(ctx, p.batch_size, (3 if p.is_color else 1, *size),
                           ctx.layer.transform_param.crop_size, "image files")


@layer("MemoryData", bottoms=0, tops=(1, 2), data=True)
def memory_data_layer(ctx: LayerContext) -> list:
    """Arrays fed from memory: batch_size, channels, height, width from memory_data_param."""
    p = ctx.layer.memory_data_param
    return _data_and_label(ctx, p.batch_size, (p.channels or None, p.height or None,
                                                p.width or None), 0, "memory arrays")
