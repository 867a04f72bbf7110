"""A Caffe net as one torch.nn.Module: `build_model(net, phase, stages)` -> CaffeNet.

What Caffe's Net::Init does, in order: filter the layers by the NetState (phase, level, stages;
prototxt.filter_net), then for every layer, once: look its type up in the registry, check the
bottom/top counts it declares, that every bottom exists, that a top reusing a name is in place
(top i == bottom i, Caffe's rule) on a layer that allows it, and the loss weights (once per top
or not at all; default 1 for a Loss layer's first top, else 0). Shapes are inferred while
building (each module runs on "meta" tensors), so a size that becomes zero or negative stops the
build naming the layer. Data layers (Input, Data, ImageData, MemoryData) and net-level
`input`/`input_shape` become the model's inputs.

forward(*inputs, **named_inputs) runs the layers in order on a dict of blobs by name and returns
a NetOutput: the net outputs (blobs no later layer consumes, sorted by name as Caffe lists its
"net output #k"), the weighted total loss
sum_top w_top * sum(top), each loss top and its weight, and the accuracies. model.train() and
model.eval() are Caffe's TRAIN and TEST phase for Dropout and BatchNorm; which layers exist is
fixed by the phase given to build_model.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from prototxt import PrototxtError, caffe_pb2, filter_net, make_state, read_net
from . import layers as _layers  # noqa: F401  (fills the registry)
from .errors import ConverterError
from .fillers import fill
from .memory import check_fits
from .registry import Blob, Built, LayerContext, LayerSpec, Shape, meta_like, spec_for

log = logging.getLogger(__name__)
NetParameter = caffe_pb2.NetParameter


@dataclass(eq=False)
class NetOutput(Mapping):
    """The result of one forward pass; `out["prob"]` reads a blob."""
    blobs: dict[str, torch.Tensor]
    outputs: tuple[str, ...]
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    loss_weights: dict[str, float] = field(default_factory=dict)
    accuracies: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.blobs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.blobs)

    def __len__(self) -> int:
        return len(self.blobs)


class Step(NamedTuple):
    layer: str
    type: str
    module: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    loss_weights: tuple[float, ...]
    release: tuple[str, ...]  # blobs not needed after this step


class LayerInfo(NamedTuple):
    """What the builder learnt about one layer (for `shapes`, caffemodel I/O and docs)."""
    name: str
    type: str
    module: str | None  # attribute name on the CaffeNet (None for data layers)
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    top_shapes: tuple[Shape, ...]
    blobs: tuple[Blob, ...]
    loss_weights: tuple[float, ...]
    in_place: tuple[bool, ...]


class CaffeNet(nn.Module):
    """A Caffe net; submodules are named after the Caffe layers (see the module docstring)."""

    def __init__(self, net: NetParameter, source: str, phase: int):
        super().__init__()
        self.net = net  # the filtered NetParameter the model was built from
        self.source = source
        self.built_phase = phase
        self.input_names: list[str] = []
        self.input_shapes: dict[str, Shape] = {}
        self.layer_info: list[LayerInfo] = []
        self.steps: list[Step] = []
        self.outputs: tuple[str, ...] = ()

    # -- structure --------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        """Caffe's phase of the current mode: TRAIN after .train(), TEST after .eval()."""
        return "TRAIN" if self.training else "TEST"

    def layer_module(self, layer: str) -> nn.Module:
        for info in self.layer_info:
            if info.name == layer and info.module is not None:
                return getattr(self, info.module)
        raise KeyError(f"no layer {layer!r} with a module in this net")

    def caffe_blobs(self, layer: str) -> list[torch.Tensor]:
        """The layer's blobs in Caffe's order (the tensors themselves, not copies)."""
        info = next((i for i in self.layer_info if i.name == layer), None)
        if info is None:
            raise KeyError(f"no layer {layer!r} in this net")
        module = getattr(self, info.module) if info.module else None
        return [getattr(module, blob.attr) for blob in info.blobs]

    def blob_shapes(self) -> dict[str, Shape]:
        """Every blob's shape as inferred at build time (in-place blobs: their last shape)."""
        shapes = dict(self.input_shapes)
        for info in self.layer_info:
            shapes.update(zip(info.tops, info.top_shapes))
        return shapes

    def caffe_params(self) -> Iterator[tuple[str, int, torch.Tensor, caffe_pb2.ParamSpec]]:
        """(layer, blob index, tensor, ParamSpec) for every learnable blob, in net order.

        The ParamSpec is the layer's `param` entry for that blob (lr_mult, decay_mult) or the
        schema default when the layer gives fewer entries than it has blobs."""
        for info in self.layer_info:
            for i, tensor in enumerate(self.caffe_blobs(info.name)):
                if isinstance(tensor, nn.Parameter):
                    layer = next(l for l in self.net.layer if l.name == info.name)
                    spec = layer.param[i] if i < len(layer.param) else caffe_pb2.ParamSpec()
                    yield info.name, i, tensor, spec

    # -- running ----------------------------------------------------------------------------
    def forward(self, *args: torch.Tensor, keep: Iterable[str] | str | None = None,
                **named: torch.Tensor) -> NetOutput:
        """Run the net. Inputs by position (in `input_names` order) or by name; `keep` names
        blobs to return besides the outputs ("all" keeps every blob)."""
        blobs = self._bind(args, named)
        keep_all = keep == "all"
        kept = set(self.outputs) | (set() if keep is None or keep_all else set(keep))
        total: torch.Tensor | None = None
        losses: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
        accuracies: dict[str, torch.Tensor] = {}
        for step in self.steps:
            result = getattr(self, step.module)(*(blobs[b] for b in step.bottoms))
            if not isinstance(result, tuple):
                result = (result,)
            for top, value, weight in zip(step.tops, result, step.loss_weights):
                blobs[top] = value
                if weight:
                    losses[top], weights[top] = value, weight
                    term = weight * value.sum()
                    total = term if total is None else total + term
            if step.type == "Accuracy":
                accuracies[step.tops[0]] = result[0]
            if not keep_all:
                for name in step.release:
                    if name not in kept:
                        blobs.pop(name, None)
        return NetOutput(blobs, self.outputs, total, losses, weights, accuracies)

    def _bind(self, args: Sequence[torch.Tensor], named: dict[str, torch.Tensor]) -> dict:
        if len(args) > len(self.input_names):
            raise ConverterError(f"{len(args)} positional inputs given; the net has "
                                 f"{len(self.input_names)}: {', '.join(self.input_names)}",
                                 self.source)
        blobs = dict(zip(self.input_names, args))
        for name, value in named.items():
            if name not in self.input_names:
                raise ConverterError(f"{name!r} is not an input of the net; its inputs are "
                                     f"{', '.join(self.input_names)}", self.source)
            blobs[name] = value
        missing = [n for n in self.input_names if n not in blobs and self._needed(n)]
        if missing:
            raise ConverterError(f"missing input(s) {', '.join(missing)}; the net's inputs are "
                                 f"{', '.join(self.input_names)}", self.source)
        return blobs

    def _needed(self, name: str) -> bool:
        return any(name in step.bottoms for step in self.steps)


# -- building -------------------------------------------------------------------------------
def _resolve(net: NetParameter | str | os.PathLike, source: str | None) -> tuple[NetParameter, str]:
    if isinstance(net, (str, os.PathLike)):
        return read_net(net), source or str(net)
    if not isinstance(net, NetParameter):
        raise TypeError(f"build_model needs a NetParameter or a path, not {type(net).__name__}")
    return net, source or f"<net {net.name or 'unnamed'}>"


def _module_name(model: CaffeNet, layer: str, index: int) -> str:
    name = layer.replace(".", "_") or f"layer{index}"
    while hasattr(model, name) or name in model._modules:
        name += "_"
    return name


def _counts_ok(spec: LayerSpec, which: str, have: int, ctx: LayerContext) -> None:
    low, high = spec.bottoms if which == "bottom" else spec.tops
    if have < low or (high is not None and have > high):
        raise ctx.fail(f"takes {spec.describe((low, high))} {which} blob(s), but has {have}")


def _loss_weights(layer: caffe_pb2.LayerParameter, spec: LayerSpec, ctx: LayerContext):
    tops = len(layer.top)
    if len(layer.loss_weight):
        ctx.check(len(layer.loss_weight) == tops, f"loss_weight must be unspecified or given "
                  f"once per top blob ({tops}); it is given {len(layer.loss_weight)} times")
        return tuple(float(w) for w in layer.loss_weight)
    return tuple(1.0 if spec.loss and i == 0 else 0.0 for i in range(tops))


def build_model(net: NetParameter | str | os.PathLike, phase: str | int = "TEST",
                stages: Iterable[str] = (), level: int = 0,
                input_shapes: Mapping[str, Sequence[int]] | None = None,
                seed: int | None = None, source: str | None = None,
                materialize: bool = True) -> CaffeNet:
    """Build a CaffeNet from a NetParameter (or a .prototxt path) for a NetState.

    `input_shapes` gives or overrides input shapes by blob name (needed for Data layers, whose
    image size lives in the database). Blobs are filled with the prototxt's fillers, from a
    torch.Generator seeded with `seed` (torch's global generator when None). With
    `materialize=False` the blobs stay on the "meta" device (shapes only, nothing allocated);
    otherwise a net whose parameters and one forward pass's data need more memory than the
    machine has available is refused before allocating (converter/memory.py).
    """
    net, source = _resolve(net, source)
    state = make_state(phase, level, stages)
    try:
        filtered = filter_net(net, state)
    except PrototxtError as exc:  # e.g. include and exclude rules on one layer; add the file
        raise ConverterError(exc.message, source) from None
    given = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    model = CaffeNet(filtered, source, state.phase)
    shapes: dict[str, Shape] = {}
    available: list[str] = []

    def add_input(name: str, shape: Shape, where: LayerContext | None) -> None:
        if name in shapes:
            raise (where.fail(f"top '{name}' is produced by multiple sources") if where else
                   ConverterError(f"input '{name}' is given twice", source))
        model.input_names.append(name)
        model.input_shapes[name] = shape
        shapes[name] = shape
        available.append(name)

    if len(net.input_shape) not in (0, len(net.input)):
        raise ConverterError(f"the net has {len(net.input)} inputs but {len(net.input_shape)} "
                             f"input_shape entries", source)
    for i, name in enumerate(filtered.input):
        shape = given.get(name) or (tuple(filtered.input_shape[i].dim)
                                    if i < len(filtered.input_shape) else None)
        if shape is None:
            raise ConverterError(f"no shape for net input '{name}'; give input_shape or "
                                 f"input_shapes={{'{name}': (N, C, H, W)}}", source)
        add_input(name, tuple(shape), None)

    names_seen: set[str] = set()
    for index, layer in enumerate(filtered.layer):
        bottoms = list(layer.bottom)
        ctx = LayerContext(layer, [], state.phase, source, given)
        if layer.name in names_seen:
            raise ctx.fail("another layer has the same name; layer names must be unique")
        names_seen.add(layer.name)
        spec = spec_for(layer, source)
        _counts_ok(spec, "bottom", len(bottoms), ctx)
        _counts_ok(spec, "top", len(layer.top), ctx)
        for i, bottom in enumerate(bottoms):
            if bottom not in shapes and bottom in given:  # e.g. DIGITS' deploy stage: no data
                add_input(bottom, given[bottom], None)    # layer, DIGITS adds `input: "data"`
            if bottom not in shapes:
                raise ctx.fail(f"unknown bottom blob '{bottom}' (bottom index {i}): no earlier "
                               f"layer or input produces it (to make it an input give its shape: "
                               f"input_shapes={{'{bottom}': (N, C, H, W)}}, command line --input "
                               f"{bottom}=NxCxHxW)")
        ctx.bottoms = [shapes[b] for b in bottoms]
        in_place = []
        for i, top in enumerate(layer.top):
            same = i < len(bottoms) and bottoms[i] == top
            if same and not spec.in_place:
                raise ctx.fail(f"top '{top}' is computed in place, which {layer.type} does not "
                               "support; give the top its own name")
            if not same and (top in shapes or list(layer.top).count(top) > 1):
                raise ctx.fail(f"top blob '{top}' is produced by multiple sources")
            in_place.append(same)
        weights = _loss_weights(layer, spec, ctx)
        if spec.data:
            top_shapes = [tuple(s) for s in spec.build(ctx)]
            for top, shape in zip(layer.top, top_shapes):
                add_input(top, shape, ctx)
            model.layer_info.append(LayerInfo(layer.name, layer.type, None, (), tuple(layer.top),
                                              tuple(top_shapes), (), weights, tuple(in_place)))
            continue
        with torch.device("meta"):
            built: Built = spec.build(ctx)
        top_shapes = _declared_tops(spec, built, ctx)
        if top_shapes is None or SHAPES_BY_META:
            inferred = _infer(built.module, ctx)
            if top_shapes is not None and [tuple(s) for s in top_shapes] != inferred:
                raise ctx.fail(f"declared top shapes {top_shapes} differ from the module's "
                               f"{inferred} (a converter bug)")
            top_shapes = inferred
        if len(top_shapes) != len(layer.top):
            raise ctx.fail(f"computes {len(top_shapes)} top(s) but lists {len(layer.top)}")
        for top, shape in zip(layer.top, top_shapes):
            if any(d <= 0 for d in shape):
                raise ctx.size_error(f"top '{top}' would have shape {list(shape)}: a size became zero "
                               "or negative")
        module_name = _module_name(model, layer.name, index)
        model.add_module(module_name, built.module)
        model.layer_info.append(LayerInfo(layer.name, layer.type, module_name, tuple(bottoms),
                                          tuple(layer.top), tuple(top_shapes), built.blobs,
                                          weights, tuple(in_place)))
        model.steps.append(Step(layer.name, layer.type, module_name, tuple(bottoms),
                                tuple(layer.top), weights, ()))
        for b in bottoms:
            if b in available:
                available.remove(b)
        for top, shape in zip(layer.top, top_shapes):
            shapes[top] = shape
            available.append(top)
    model.outputs = tuple(sorted(available))  # Caffe keeps them in a std::set<string>
    _plan_release(model)
    if materialize:
        check_fits(model)  # before allocating: a clear error instead of the allocator's
        try:
            _materialize(model)
        except RuntimeError as exc:  # the estimate fitted, the allocation did not
            raise ConverterError(f"cannot allocate the net's parameters: "
                                 f"{str(exc).splitlines()[0]}", source) from None
        _fill(model, seed)
    model.train(state.phase == caffe_pb2.TRAIN)
    return model


# Tests set this to run every module on meta tensors too and compare with the declared shapes.
SHAPES_BY_META = False


def _declared_tops(spec: LayerSpec, built: Built, ctx: LayerContext) -> list[Shape] | None:
    """Top shapes known without running the module: the builder's `tops`, or the bottom's shape
    for every other type that may compute in place (Caffe's neuron-like layers: their Reshape
    gives the top the bottom's shape; MVN, whose top is always 4-D, declares it). Skipping the meta run matters at start-up: PyTorch's first
    Python meta kernel (most elementwise ops) imports torch._dynamo, about as long as importing
    torch itself, while convolutions and pooling have C++ meta kernels."""
    if built.tops is not None:
        return [tuple(s) for s in built.tops]
    if spec.in_place and len(ctx.bottoms) == 1 and len(ctx.layer.top) == 1:
        return [tuple(ctx.bottoms[0])]
    return None


def _infer(module: nn.Module, ctx: LayerContext) -> list[Shape]:
    """Top shapes: run the module on meta tensors of the bottom shapes."""
    module.eval()
    try:
        with torch.no_grad():
            result = module(*(meta_like(s) for s in ctx.bottoms))
    except ConverterError:
        raise
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ctx.fail(f"cannot run on bottom shape(s) "
                       f"{', '.join('x'.join(map(str, s)) for s in ctx.bottoms)}: "
                       f"{str(exc).splitlines()[0]}") from None
    if not isinstance(result, tuple):
        result = (result,)
    return [tuple(t.shape) for t in result]


def _materialize(model: nn.Module) -> None:
    """Meta parameters and buffers -> uninitialised CPU tensors (filled next): what
    Module.to_empty does, without PyTorch's Python empty_like, whose first call imports sympy
    (a few tenths of a second at every start-up). Nothing is shared inside one built net."""
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None:
                module._parameters[name] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype),
                                                        p.requires_grad)
        for name, b in module._buffers.items():
            if b is not None:
                module._buffers[name] = torch.empty(b.shape, dtype=b.dtype)


def _plan_release(model: CaffeNet) -> None:
    last: dict[str, int] = {}
    for i, step in enumerate(model.steps):
        for name in step.bottoms + step.tops:
            last[name] = i
    release: dict[int, list[str]] = {}
    for name, i in last.items():
        release.setdefault(i, []).append(name)
    model.steps = [s._replace(release=tuple(release.get(i, ()))) for i, s in enumerate(model.steps)]


def _fill(model: CaffeNet, seed: int | None) -> None:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    for info in model.layer_info:
        if info.module is None:
            continue
        module = getattr(model, info.module)
        filled = set()
        for i, blob in enumerate(info.blobs):
            tensor = getattr(module, blob.attr)
            fill(tensor.data, blob.filler, generator,
                 where=f"{model.source}: layer '{info.name}' ({info.type}) blob {i}: ")
            filled.add(id(tensor))
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if id(tensor) not in filled:  # none today; keeps to_empty garbage out of the model
                tensor.data.zero_()


def parameter_count(model: CaffeNet, layer: str) -> int:
    return sum(t.numel() for t in model.caffe_blobs(layer))


def total_parameters(model: CaffeNet) -> int:
    return sum(math.prod(t.shape) for info in model.layer_info
               for t in model.caffe_blobs(info.name))
