"""`caffe time` for our nets: per-layer forward and backward milliseconds on random inputs.

    python -m trainer time googlenet --iterations 20 [--fast] [--device cuda]
    python -m trainer time train_val.prototxt --input data=3x256x256 [--batch 16]

    report = time_net("deploy.prototxt", iterations=10, phase="TEST")
    print("\\n".join(report.lines()))

How a layer's time is measured (the model runs unchanged, through CaffeNet.forward):

- forward: a forward pre-hook and a forward hook on the layer's module read the clock around
  the module call (after a CUDA synchronize on GPU), as Caffe's Timer does around Layer::Forward.
- backward: each layer's bottoms and tops pass through an identity autograd node (`_Mark`)
  whose backward reads the clock. PyTorch's engine runs the ready node with the highest
  sequence number first (creation order, per device), so backward visits the layers in exact
  reverse forward order, one layer at a time; inception branches included. A layer's backward
  therefore runs from the moment its tops' mark fires (all its top gradients are summed) to the
  next mark that fires (its own bottoms' mark, or the next layer's tops when its bottoms need no
  gradient, as for conv1 on the data, or the end of backward). Gradients into parameters
  (AccumulateGrad) fall inside that window. Layers whose tops get no gradient (Accuracy) cost 0.
- totals: "Average Forward pass" and "Backward pass" are the wall time of the whole model call
  and of loss.backward() (marks and hooks included, as Caffe's totals include its timers).

Inputs are random: data ~ N(0, 1); labels random integers below the classes of the layer that
reads them (SoftmaxWithLoss, Accuracy, InfogainLoss: the bottom's size along their axis;
MultinomialLogisticLoss, HingeLoss: its count per item); DummyData tops as their fillers make
them (Caffe's `caffe time` on a DummyData net). Data layers are inputs and
are not timed (Caffe would read the database). A net without loss has nothing to back-propagate
(Caffe skips its backward too).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from converter import CaffeNet, ConverterError, build_model, dummy_data_values
from lmdb_builder import BuilderError
from prototxt import (STANDARD_NETWORKS, DatasetFacts, PrototxtError, caffe_pb2, digits_split,
                      filter_net, make_state, network_path, read_net)

from .device import CUDNN_SEARCH_HELP, CUDNN_SEARCHES, Precision, select_precision
from .labels import LABEL_READERS, label_classes  # noqa: F401 (LABEL_READERS re-exported)

__all__ = ["LayerTime", "TimingReport", "add_parser", "main", "multiply_adds", "random_inputs",
           "standard_train_val", "time_net"]

NetParameter = caffe_pb2.NetParameter
# DIGITS' default image sizes for its standard networks (H, W, C) and a typical class count.
DIGITS_IMAGES = {"lenet": (28, 28, 1), "alexnet": (256, 256, 3), "googlenet": (256, 256, 3)}
DEFAULT_CLASSES = {"lenet": 10, "alexnet": 1000, "googlenet": 1000}
BATCH_FIELDS = {"Data": "data_param", "ImageData": "image_data_param",
                "MemoryData": "memory_data_param", "WindowData": "window_data_param"}


class LayerTime(NamedTuple):
    layer: str
    type: str
    forward_ms: float
    backward_ms: float


@dataclass
class TimingReport:
    """Averages over `iterations` (milliseconds), as `caffe time` prints them."""
    source: str
    phase: str
    iterations: int
    precision: str
    input_shapes: dict[str, tuple[int, ...]]
    layers: list[LayerTime]
    forward_ms: float
    backward_ms: float
    forward_backward_ms: float
    total_ms: float
    iteration_ms: list[float] = field(default_factory=list)
    initial_loss: float | None = None

    @property
    def batch(self) -> int:
        return next(iter(self.input_shapes.values()))[0] if self.input_shapes else 1

    @property
    def images_per_second(self) -> float:
        return 1000.0 * self.batch / self.forward_backward_ms if self.forward_backward_ms else 0.0

    def lines(self) -> list[str]:
        # Caffe: setw(10) layer names and default ostream precision (6 significant digits).
        out = ["Average time per layer: "]
        for t in self.layers:
            out.append(f"{t.layer:>10}\tforward: {t.forward_ms:g} ms.")
            out.append(f"{t.layer:>10}\tbackward: {t.backward_ms:g} ms.")
        out += [f"Average Forward pass: {self.forward_ms:g} ms.",
                f"Average Backward pass: {self.backward_ms:g} ms.",
                f"Average Forward-Backward: {self.forward_backward_ms:g} ms.",
                f"Total Time: {self.total_ms:g} ms.",
                f"Throughput: {self.images_per_second:.1f} images/s (batch {self.batch}, "
                "forward-backward)",
                "*** Benchmark ends ***"]
        return out


class _Mark(torch.autograd.Function):
    """Identity on tensors; its backward calls `record()` (see the module docstring)."""

    @staticmethod
    def forward(ctx, record: Callable[[], None], *tensors: torch.Tensor):
        ctx.record = record
        return tuple(t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        ctx.record()
        return (None, *grads)


def _differentiable(x: object) -> bool:
    return isinstance(x, torch.Tensor) and x.requires_grad and x.is_floating_point()


def _marked(values: tuple, record: Callable[[], None]) -> tuple:
    """`values` with the differentiable tensors passed through one _Mark node."""
    picks = [i for i, v in enumerate(values) if _differentiable(v)]
    if not picks or not torch.is_grad_enabled():
        return values
    out = list(values)
    for i, v in zip(picks, _Mark.apply(record, *(values[i] for i in picks))):
        out[i] = v
    return tuple(out)


class _Recorder:
    """Hooks on every step's module; collects forward times and backward clock events."""

    def __init__(self, model: CaffeNet, device: torch.device):
        self.device = device
        self.forward = [0.0] * len(model.steps)
        self.backward = [0.0] * len(model.steps)
        self.events: list[tuple[int, float]] = []  # (step or -1 for "bottoms done", time)
        self._start = 0.0
        self.handles = []
        for i, step in enumerate(model.steps):
            module = getattr(model, step.module)
            # prepend: the clock starts before other pre-hooks (fast mode's float32 cast).
            self.handles.append(module.register_forward_pre_hook(self._pre(i), prepend=True))
            self.handles.append(module.register_forward_hook(self._post(i)))

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _event(self, step: int) -> Callable[[], None]:
        return lambda: self.events.append((step, self.now()))

    def _pre(self, i: int):
        def hook(module, args):
            args = _marked(args, self._event(-1))
            self._start = self.now()
            return args
        return hook

    def _post(self, i: int):
        def hook(module, args, output):
            self.forward[i] += self.now() - self._start
            if isinstance(output, tuple):
                return _marked(output, self._event(i))
            return _marked((output,), self._event(i))[0]
        return hook

    def close_backward(self, end: float) -> None:
        """Turn this iteration's events into per-layer backward time (module docstring)."""
        for k, (step, t) in enumerate(self.events):
            if step >= 0:
                following = self.events[k + 1][1] if k + 1 < len(self.events) else end
                self.backward[step] += following - t
        self.events.clear()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def random_inputs(model: CaffeNet, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random inputs for every model input (float32 on the CPU): DummyData tops as Caffe
    fills them (their fillers), labels as integers below their classes (stored as floats, like
    Caffe's label blobs), the rest N(0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    classes = label_classes(model)
    inputs = dummy_data_values(model, generator)
    for name in model.input_names:
        if name in inputs:
            continue
        shape = model.input_shapes[name]
        if name in classes:
            inputs[name] = torch.randint(0, classes[name], shape, generator=generator).float()
        else:
            inputs[name] = torch.randn(shape, generator=generator)
    return inputs


def multiply_adds(model: CaffeNet) -> dict[str, int]:
    """Forward multiply-adds per image of each Convolution, Deconvolution and InnerProduct."""
    out = {}
    for info in model.layer_info:
        if info.type not in ("Convolution", "Deconvolution", "InnerProduct"):
            continue
        weight = model.caffe_blobs(info.name)[0]
        top = info.top_shapes[0]
        if info.type == "Convolution":  # each top value: C/group x kh x kw products
            macs = math.prod(top[1:]) * math.prod(weight.shape[1:])
        elif info.type == "Deconvolution":  # each bottom value feeds num_output/group x kh x kw
            bottom = model.blob_shapes()[info.bottoms[0]]
            macs = math.prod(bottom[1:]) * math.prod(weight.shape[1:])
        else:  # every top position: K x num_output
            macs = weight.numel() * math.prod(top[1:-1])
        out[info.name] = int(macs)
    return out


def _data_shapes(net: NetParameter, phase: str, stages: Sequence[str],
                 given: Mapping[str, Sequence[int]], source: str) -> dict[str, tuple[int, ...]]:
    """`given` plus, for each Data layer whose top is not in it, the image size (C, H, W) of its
    database's first record after force_color/force_gray, read as Caffe's DataLayer does when
    `caffe time` sets the net up (the source path as written, relative to the working folder;
    batch_size and crop_size still come from the layer). A database that cannot be read names
    the layer and asks for --input instead."""
    from .data import BatchMaker, source_spec  # the LMDB reader, only for nets with Data layers
    shapes = {name: tuple(shape) for name, shape in given.items()}
    for layer in filter_net(net, make_state(phase, 0, stages)).layer:
        if layer.type != "Data" or not len(layer.top) or layer.top[0] in shapes:
            continue
        top, p = layer.top[0], layer.data_param
        try:
            shapes[top] = BatchMaker(source_spec(layer, make_state(phase).phase, 0,
                                                 source)).image_shape()
        except (PrototxtError, BuilderError) as exc:  # no LMDB, no mean file, empty, damaged
            reason = exc.message if isinstance(exc, PrototxtError) else str(exc)
            reason = reason.removeprefix(f"layer '{layer.name}': ")  # named once, below
            crop = layer.transform_param.crop_size
            raise ConverterError(
                f"the shape of top '{top}' comes from the database, which cannot be read: "
                f"{reason}; give the image size as --input {top}=CxHxW (batch_size "
                f"{p.batch_size}{f' and crop_size {crop} come' if crop else ' comes'} from the "
                f"layer) or input_shapes={{'{top}': (C, H, W)}}", source, layer=layer.name,
                layer_type=layer.type) from None
    return shapes


def with_batch(net: NetParameter, batch: int) -> NetParameter:
    """A copy of `net` whose data layers, Input layers and net inputs have batch size `batch`."""
    copy = NetParameter()
    copy.CopyFrom(net)
    for shape in copy.input_shape:
        if len(shape.dim):
            shape.dim[0] = batch
    for layer in copy.layer:
        if layer.type in BATCH_FIELDS:
            getattr(layer, BATCH_FIELDS[layer.type]).batch_size = batch
        elif layer.type == "Input":
            for shape in layer.input_param.shape:
                if len(shape.dim):
                    shape.dim[0] = batch
    return copy


def standard_train_val(name: str, classes: int | None = None,
                       batch: int | None = None) -> tuple[NetParameter, dict[str, tuple]]:
    """DIGITS' train_val for standard network `name` on its default image size (lenet 28x28x1,
    alexnet/googlenet 256x256x3, cropped by the network's crop_size as DIGITS would), and the
    data shape (C, H, W) to give build_model. `batch` is DIGITS' batch-size field."""
    height, width, channels = DIGITS_IMAGES[name]
    facts = DatasetFacts(num_classes=classes or DEFAULT_CLASSES[name], height=height,
                         width=width, channels=channels, dataset_dir="random-data")
    split = digits_split(read_net(network_path(name)), facts, use_mean="none", batch_size=batch)
    return split.train_val, {"data": (channels, height, width)}


def time_net(net: CaffeNet | NetParameter | str | os.PathLike, iterations: int = 50,
             phase: str = "TRAIN", input_shapes: Mapping[str, Sequence[int]] | None = None,
             device: torch.device | str | None = None, fast: bool = False,
             stages: Iterable[str] = (), seed: int = 0, warmup: int = 1,
             source: str | None = None,
             on_iteration: Callable[[int, float], None] | None = None,
             cudnn_search: str = "find") -> TimingReport:
    """Time forward and backward of `net` like `caffe time` (see the module docstring).

    `net` is a built CaffeNet (its phase and inputs are used as they are) or a NetParameter /
    .prototxt built here for `phase` and `stages` with `input_shapes`. `warmup` untimed
    iterations come first (Caffe does one). `on_iteration(i, ms)` sees each timed iteration.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    # a bad device fails before building
    precision: Precision = select_precision(device, fast, cudnn_search=cudnn_search)
    if isinstance(net, CaffeNet):
        model = net
    else:
        if isinstance(net, (str, os.PathLike)):
            source = source or str(net)
            net = read_net(net)
        source = source or f"<net {net.name or 'unnamed'}>"
        stages = tuple(stages)
        input_shapes = _data_shapes(net, phase, stages, input_shapes or {}, source)
        model = build_model(net, phase, stages, input_shapes=input_shapes, seed=seed,
                            source=source)
    model = precision.prepare_model(model)
    inputs = {k: precision.prepare_input(v) for k, v in random_inputs(model, seed).items()}
    recorder = _Recorder(model, precision.device)
    forward = backward = 0.0
    per_iteration: list[float] = []
    initial_loss = None
    try:
        for i in range(warmup + iterations):
            for p in model.parameters():
                p.grad = None
            start = recorder.now()
            with precision.autocast():
                out = model(**inputs)
            middle = recorder.now()
            if out.loss is not None:
                out.loss.backward()
            end = recorder.now()
            recorder.close_backward(end)
            if i == 0 and out.loss is not None:
                initial_loss = float(out.loss.detach())
            if i < warmup:  # discard the warm-up's per-layer times
                recorder.forward = [0.0] * len(model.steps)
                recorder.backward = [0.0] * len(model.steps)
                continue
            forward += middle - start
            backward += end - middle
            per_iteration.append((end - start) * 1000)
            if on_iteration:
                on_iteration(i - warmup + 1, per_iteration[-1])
    finally:
        recorder.remove()
    ms = 1000.0 / iterations
    layers = [LayerTime(s.layer, s.type, f * ms, b * ms)
              for s, f, b in zip(model.steps, recorder.forward, recorder.backward)]
    return TimingReport(model.source, model.phase, iterations, precision.describe(),
                        dict(model.input_shapes), layers, forward * ms, backward * ms,
                        (forward + backward) * ms, sum(per_iteration), per_iteration,
                        initial_loss)


# -- command line ---------------------------------------------------------------------------
def _input(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"--input must be NAME=CxHxW or NAME=NxCxHxW, e.g. "
                                         f"data=3x224x224; got {text!r}")
    return name, shape


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("net", metavar="NET",
                   help=f"a .prototxt, or {', '.join(STANDARD_NETWORKS)} (DIGITS' train_val on "
                        "its default image size)")
    p.add_argument("--iterations", type=int, default=50, help="timed iterations (default 50)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first (default 1)")
    p.add_argument("--phase", choices=("TRAIN", "TEST"), default="TRAIN", type=str.upper)
    p.add_argument("--stage", action="append", default=[], help="NetState stage (repeatable)")
    p.add_argument("--input", action="append", type=_input, default=[], metavar="NAME=SHAPE",
                   help="input or Data-layer top shape, e.g. data=3x256x256 (repeatable; a Data "
                        "layer's comes from its database's first record when not given)")
    p.add_argument("--batch", type=int, help="batch size (default: the net's)")
    p.add_argument("--classes", type=int,
                   help="standard networks: number of classes (default lenet 10, others 1000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--fast", action="store_true",
                   help="bf16 autocast where the hardware has it, channels_last")
    p.add_argument("--cudnn-search", choices=CUDNN_SEARCHES, default="find", help=CUDNN_SEARCH_HELP)
    p.add_argument("--seed", type=int, default=0, help="weights and random inputs")


def cmd_time(args: argparse.Namespace) -> int:
    given = dict(args.input)
    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch must be at least 1, not {args.batch}")
    if args.net in STANDARD_NETWORKS and not os.path.exists(args.net):
        net, shapes = standard_train_val(args.net, args.classes, args.batch)
        given = {**shapes, **given}
        source = f"{args.net} (DIGITS train_val, {'x'.join(map(str, shapes['data']))} images)"
    else:
        net, source = read_net(args.net), args.net
        if args.batch:
            net = with_batch(net, args.batch)
            given = {k: (args.batch, *v[1:]) if len(v) == 4 else v for k, v in given.items()}

    def progress(i: int, ms: float) -> None:
        if i == 1:
            print(f"Testing for {args.iterations} iterations ({args.warmup} warm-up done).")
        print(f"Iteration: {i} forward-backward time: {ms:g} ms.", flush=True)

    report = time_net(net, args.iterations, args.phase, given, args.device, args.fast,
                      args.stage, args.seed, args.warmup, source, on_iteration=progress,
                      cudnn_search=args.cudnn_search)
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in report.input_shapes.items())
    print(f"net: {report.source}, phase {report.phase}, inputs {shapes}")
    print(report.precision)
    if report.initial_loss is not None:
        print(f"Initial loss: {report.initial_loss:g}")
    else:
        print("the net has no loss: nothing to back-propagate (Caffe skips backward too)")
    print("\n".join(report.lines()))
    return 0


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `time` on a subparsers object (python -m trainer time ...)."""
    p = commands.add_parser("time", help="time forward/backward per layer (caffe time)",
                            description="Time a net's forward and backward passes per layer "
                                        "on random inputs, like `caffe time`.")
    add_arguments(p)
    p.set_defaults(func=cmd_time)
    return p


def main(argv: list[str] | None = None) -> int:
    """python -m trainer.timing NET ... (the same as python -m trainer time NET ...)."""
    from prototxt.cli import add_common_flags, run
    parser = argparse.ArgumentParser(prog="python -m trainer time",
                                     description="Time a net per layer like `caffe time`.")
    add_common_flags(parser)
    add_arguments(parser)
    return run(cmd_time, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
