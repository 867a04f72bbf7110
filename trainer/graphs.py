"""CUDA graphs for a net's step (`trainer run --cuda-graphs`): capture once, replay every batch.

Why: on an H100 the seed's GoogLeNet (batch 32, fp32) trained at 34.6 ms per iteration, 13 % of
the card's float32 rate, because the host issues ~830 operations (~180 cuDNN calls) per
iteration and the GPU waits for them (benchmarks/results/gpu/2026-11-27-h100). A CUDA graph
issues the whole forward + backward as one launch.

How (PyTorch's whole-network capture):

    warm-up   `warmup` ordinary steps on a side stream (cuDNN's algorithm search, the caching
              allocator and autograd settle);
    capture   the parameters' .grad set to None, then forward (+ loss.backward()) recorded into
              a CUDAGraph: the backward allocates the gradients in the graph's memory pool;
    replay    each step copies the batch into the captured input tensors and replays; the
              outputs, the loss and every .grad are the captured tensors, rewritten in place
              (a replay's gradient replaces the last one, as zeroing + backward would).

The update (trainer.updates) stays outside the graph, so the learning rate is read afresh every
iteration. Random numbers inside a graph come from the generator's seed and offset at replay
time, so the solver's `torch.manual_seed` before each iteration still fixes the dropout masks
(exact resume). Limits, each checked by the solver: a CUDA device, iter_size 1, one process (no
DDP), and a net that does not read values back to the host inside its forward (such a net, e.g.
NVIDIA Caffe's BatchNorm counting its first batch, fails to capture: the step then stays eager
and the log says why).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .device import Precision


class StepGraph:
    """`step(inputs) -> NetOutput`: the net's forward (and backward when `train`), eager for the
    first `warmup` calls, then captured as a CUDA graph and replayed."""

    def __init__(self, model: nn.Module, precision: Precision, train: bool, warmup: int = 3,
                 log: Callable[[str], None] | None = None, name: str = "train"):
        if precision.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {precision.device}")
        self.model, self.precision, self.train = model, precision, train
        self.warmup, self.log, self.name = max(1, warmup), log, name
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: dict[str, torch.Tensor] = {}
        self.static_out = None
        self.off: str | None = None  # why the step stays eager, once capture failed
        self.side = torch.cuda.Stream(precision.device)

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, inputs: dict[str, torch.Tensor]):
        self.calls += 1
        if self.off is not None:
            return self._eager(inputs)
        if self.graph is None:
            if self.calls <= self.warmup:
                return self._on_side_stream(inputs)
            try:
                self._capture(inputs)
            except Exception as exc:  # noqa: BLE001 - any capture failure: stay eager, say why
                self.graph, self.static_out = None, None
                self.off = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                if self.log:
                    self.log(f"CUDA graphs off for the {self.name} net ({self.off}); "
                             "this step stays eager")
                torch.cuda.synchronize(self.precision.device)
                return self._eager(inputs)
            if self.log:
                self.log(f"CUDA graph captured for the {self.name} net after {self.warmup} "
                         "eager steps")
        for name, value in inputs.items():
            self.static_inputs[name].copy_(value, non_blocking=True)
        self.graph.replay()
        return self.static_out

    def _eager(self, inputs: dict[str, torch.Tensor], cache: bool = True):
        with self.precision.autocast(cache=cache):
            out = self.model(**inputs)
        if self.train:
            out.loss.backward()
        return out

    def _on_side_stream(self, inputs: dict[str, torch.Tensor]):
        current = torch.cuda.current_stream(self.precision.device)
        self.side.wait_stream(current)
        with torch.cuda.stream(self.side):
            out = self._eager(inputs)
        current.wait_stream(self.side)
        return out

    def _capture(self, inputs: dict[str, torch.Tensor]) -> None:
        self.static_inputs = {name: value.clone() for name, value in inputs.items()}
        if self.train:
            for p in self.model.parameters():
                p.grad = None
        torch.cuda.synchronize(self.precision.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            # autocast's cast cache would hold tensors made during capture: off inside graphs
            out = self._eager(self.static_inputs, cache=False)
        self.graph, self.static_out = graph, out
