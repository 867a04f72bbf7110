"""Shape inference before running: every top's shape (Caffe's "Top shape:" lines) and each
layer's parameter count, and, when a size becomes zero or negative, the smallest input that works.

    python -m converter shapes deploy.prototxt [--input 1x3x224x224]

Shapes come from building the model on PyTorch's "meta" device (no memory, no arithmetic), so
they are exactly what the model computes. The smallest input is searched over square H = W of
the first input (batch and channels kept): doubling up from the given size until the net
builds, then bisection, then a downward check.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prototxt import caffe_pb2, filter_net, make_state
from .errors import ConverterError, ShapeError
from .net import CaffeNet, build_model

MAX_SIDE = 1 << 14


def parse_dims(text: str) -> tuple[int, ...]:
    """"1x3x224x224" -> (1, 3, 224, 224)."""
    if not re.fullmatch(r"\d+(x\d+)*", text):
        raise ValueError(f"a shape is written like 1x3x224x224, not {text!r}")
    return tuple(int(d) for d in text.split("x"))


def fmt(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def default_input(net: caffe_pb2.NetParameter, state: caffe_pb2.NetState) -> str | None:
    """The blob an unnamed --input applies to: the first net input, else the first data layer's
    first top, else the first bottom no layer produces (DIGITS' deploy stage)."""
    filtered = filter_net(net, state)
    if len(filtered.input):
        return filtered.input[0]
    produced: set[str] = set()
    for layer in filtered.layer:
        if layer.type in ("Input", "Data", "ImageData", "MemoryData") and len(layer.top):
            return layer.top[0]
        for bottom in layer.bottom:
            if bottom not in produced:
                return bottom
        produced.update(layer.top)
    return None


@dataclass
class Inference:
    model: CaffeNet  # parameters on the meta device
    input_shapes: dict[str, tuple[int, ...]]


def infer_shapes(net: caffe_pb2.NetParameter, phase: str | int = "TEST", stages: Iterable[str] = (),
                 level: int = 0, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 source: str | None = None) -> Inference:
    """Build the net on the meta device. A ShapeError gains `smallest` (the smallest square
    input that works) and says it in its message."""
    stages = list(stages)
    given = dict(input_shapes or {})
    try:
        model = build_model(net, phase, stages, level, given, source=source, materialize=False)
    except ShapeError as exc:
        found = smallest_input(net, phase, stages, level, given, source)
        if found is not None:
            name, shape = found
            exc.smallest = shape
            exc.message += f"; the smallest input that works is {fmt(shape)} ('{name}')"
            exc.args = (str(exc),)
        raise
    return Inference(model, dict(model.input_shapes))


def smallest_input(net, phase, stages, level, given, source) -> tuple[str, tuple[int, ...]] | None:
    state = make_state(phase, level, stages)
    name = next(iter(given), None) or default_input(net, state)
    if name is None:
        return None
    try:
        base = tuple(given.get(name) or build_model(net, phase, stages, level, {}, source=source,
                                                    materialize=False).input_shapes[name])
    except ConverterError:
        base = tuple(given.get(name, ()))
    if len(base) < 2:
        return None

    def shape(side: int) -> tuple[int, ...]:
        return (*base[:-2], side, side)

    def works(side: int) -> bool:
        try:
            build_model(net, phase, stages, level, {**given, name: shape(side)}, source=source,
                        materialize=False)
            return True
        except ShapeError:
            return False
        except ConverterError:
            return False

    low, high = 0, max(base[-2:])
    while not works(high):
        low, high = high, high * 2
        if high > MAX_SIDE:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if works(middle) else (middle, high)
    while high > 1 and works(high - 1):  # bisection assumes monotony; step down to be sure
        high -= 1
    return name, shape(high)


def describe(inference: Inference, title: str = "") -> list[str]:
    """Caffe-like lines: per layer its blobs, "Top shape: N C H W (count)", parameters."""
    model = inference.model
    lines = [title] if title else []
    for name, shape in inference.input_shapes.items():
        lines.append(f"Input {name}: {' '.join(map(str, shape))} ({math.prod(shape)})")
    total_params = 0
    memory = sum(math.prod(s) for s in inference.input_shapes.values())
    for info in model.layer_info:
        arrow = f"{', '.join(info.bottoms)} -> {', '.join(info.tops)}" if info.bottoms else \
            f"-> {', '.join(info.tops)}"
        place = " (in place)" if any(info.in_place) else ""
        lines.append(f"{info.name} ({info.type}) {arrow}{place}")
        for top, shape, weight, same in zip(info.tops, info.top_shapes, info.loss_weights,
                                            info.in_place):
            dims = " ".join(map(str, shape))
            lines.append(f"    Top shape: {dims + ' ' if dims else ''}({math.prod(shape)})")
            if weight:
                lines.append(f"    with loss weight {weight:g}")
            if not same:
                memory += math.prod(shape)
        if info.blobs:
            blobs = model.caffe_blobs(info.name)
            count = sum(t.numel() for t in blobs)
            total_params += count
            parts = " + ".join(fmt(t.shape) or "1" for t in blobs)
            lines.append(f"    Parameters: {count} ({parts})")
    lines.append(f"Total: {len(model.layer_info)} layers, {total_params} parameters "
                 f"({total_params * 4 / 2**20:.1f} MiB as float32); memory required for data: "
                 f"{memory * 4} bytes per forward pass")
    lines.append(f"Outputs: {', '.join(model.outputs) or '(none)'}")
    return lines
