"""One registry of layer builders, keyed by the Caffe type string (Caffe's layer factory).

A builder is a small function registered with the blob counts Caffe's layer declares::

    @layer("Pooling", bottoms=1, tops=1)
    def pooling(ctx: LayerContext) -> Built: ...

The graph builder (net.py) checks, once for every layer: the type is known, the bottom and top
counts fit, bottoms exist, in-place use (top == bottom) only where the layer allows it, and the
loss weights. Data layers (`data=True`) build no module: their builder returns the top shapes
and the tops become the model's inputs.

Two more declarations feed docs/supported_layers.md (tests/converter/test_layer_flags.py checks
both against a one-layer net of every type):

    gradient  True: the layer has Caffe's Backward (its bottoms get gradients, its blobs learn).
              False where Caffe's Backward is NOT_IMPLEMENTED (ArgMax, Threshold, Accuracy): the
              tops carry no gradient, so the layer trains only where nothing needs one through
              it, as in Caffe.
    onnx      True: the layer exports to standard ONNX ops (PyTorch vs ONNX Runtime tested).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import torch
from torch import nn

from prototxt import caffe_pb2
from .errors import ConverterError, ShapeError

Shape = tuple[int, ...]
Count = int | tuple[int, int | None]


class Blob(NamedTuple):
    """One of a layer's Caffe blobs: the module attribute that holds it and how Caffe fills it."""
    attr: str
    filler: caffe_pb2.FillerParameter


class Built(NamedTuple):
    """What a builder returns: the module and its Caffe blobs in Caffe's order; `tops`, the
    top shapes where the builder states them (else the graph builder runs the module on meta
    tensors to find them: see converter.net.SHAPES_BY_META)."""
    module: nn.Module
    blobs: tuple[Blob, ...] = ()
    tops: tuple[Shape, ...] | None = None


@dataclass
class LayerContext:
    """Everything a builder may look at: the layer, its bottom shapes, the net's phase."""
    layer: caffe_pb2.LayerParameter
    bottoms: list[Shape]
    phase: int = caffe_pb2.TEST
    source: str | None = None
    given: dict[str, Sequence[int]] = field(default_factory=dict)  # data layers: --input shapes

    def fail(self, message: str) -> ConverterError:
        """An error naming this layer, its type and the file (raise it)."""
        return ConverterError(message, self.source, layer=self.layer.name,
                              layer_type=self.layer.type)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            raise self.fail(message)

    def size_error(self, message: str) -> ShapeError:
        """An error for a size that becomes zero or negative (raise it)."""
        return ShapeError(message, self.source, layer=self.layer.name, layer_type=self.layer.type)

    def check_size(self, ok: bool, message: str) -> None:
        if not ok:
            raise self.size_error(message)

    def axis(self, axis: int, num_axes: int | None = None) -> int:
        """Caffe's Blob::CanonicalAxisIndex on bottom 0: a negative axis counts from the end."""
        n = len(self.bottoms[0]) if num_axes is None else num_axes
        self.check(-n <= axis < n, f"axis {axis} is out of range for a {n}-axis bottom "
                                   f"{list(self.bottoms[0])}")
        return axis + n if axis < 0 else axis


@dataclass(frozen=True)
class LayerSpec:
    type: str
    build: Callable[[LayerContext], Built | list]
    bottoms: tuple[int, int | None]
    tops: tuple[int, int | None]
    in_place: bool = False
    loss: bool = False  # Caffe's LossLayer: the first top has loss weight 1 by default
    data: bool = False  # tops become model inputs
    summary: str = ""
    gradient: bool = True  # Caffe's Backward exists (False: NOT_IMPLEMENTED, tops carry none)
    onnx: bool = True      # exports to standard ONNX ops

    @staticmethod
    def describe(count: tuple[int, int | None]) -> str:
        low, high = count
        if low == high:
            return str(low)
        return f"{low}+" if high is None else f"{low}-{high}"


REGISTRY: dict[str, LayerSpec] = {}


def _count(value: Count) -> tuple[int, int | None]:
    return (value, value) if isinstance(value, int) else value


def layer(type_: str, *, bottoms: Count, tops: Count, in_place: bool = False, loss: bool = False,
          data: bool = False, gradient: bool = True, onnx: bool = True) -> Callable:
    """Register a builder for Caffe type `type_` (its docstring's first line documents it);
    `gradient` and `onnx` as in the module docstring."""
    def register(fn: Callable) -> Callable:
        if type_ in REGISTRY:
            raise ValueError(f"layer type {type_!r} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        REGISTRY[type_] = LayerSpec(type_, fn, _count(bottoms), _count(tops), in_place, loss,
                                    data, summary, gradient, onnx)
        return fn
    return register


def supported_types() -> list[str]:
    return sorted(REGISTRY)


def spec_for(layer_param: caffe_pb2.LayerParameter, source: str | None) -> LayerSpec:
    spec = REGISTRY.get(layer_param.type)
    if spec is None:
        raise ConverterError(
            f"type {layer_param.type!r} is not supported by the converter; supported types: "
            f"{', '.join(supported_types())}", source, layer=layer_param.name,
            layer_type=layer_param.type)
    return spec


def meta_like(shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
    return torch.empty(tuple(shape), dtype=dtype, device="meta")
