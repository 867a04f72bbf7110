"""Caffe's Solver::Solve and Solver::Step on CaffeNet models (solver.cpp, sgd_solver.cpp).

    Solve:  [restore] -> Step(max_iter - iter) -> snapshot_after_train (unless just snapshotted)
            -> (early exit: stop) -> final train forward for the display loss when
            iter % display == 0 -> final TestAll when iter % test_interval == 0
    Step:   per iteration: zero the gradients; TestAll when test_interval and iter % test_interval
            == 0 and (iter > 0 or test_initialization); iter_size forward/backward passes (loss =
            their mean); smoothed loss over the last average_loss iterations; on display
            iterations "Iteration N (...), loss = S" and every train net output; ApplyUpdate
            (trainer.updates; "Iteration N, lr = X"); iter += 1; snapshot when iter % snapshot
            == 0 or a snapshot was requested; stop when requested.
    Test:   test_iter forward passes of the test net, which shares the train net's blobs by layer
            name; each output is the mean of its per-batch values; the test net's data cursor
            carries on from where the last test stopped (Caffe's wrap-around).

Inputs: Data layers read their LMDB (trainer.data); DummyData layers are refilled by their
fillers at every forward pass, as Caffe's DummyDataLayer::Forward does (a constant filler gives
the same blob each time), drawn on the CPU from a generator seeded by (seed, rank, net, batch k or
test cursor). A net with DummyData layers only (a benchmark net) has no dataset: its epoch is one
batch. Input, ImageData and MemoryData layers are refused.

Exact resume: the data position and every random stream derive from the iteration (batch k =
iter * iter_size + pass; test cursor = tests done so far * test_iter; dropout reseeded from
(seed, rank, iter)), and the .solverstate holds the rest (iter, current_step, history), so a
resumed run computes what an uninterrupted one does. The smoothed loss restarts, as in Caffe.
"""
from __future__ import annotations

import math
import os
import secrets
import signal
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from converter import dummy_data_values
from converter.net import CaffeNet, build_model
from converter.registry import REGISTRY
from prototxt import caffe_pb2, read_solver
from prototxt.errors import PrototxtError

from . import distributed
from .caffe_log import CaffeLog, g
from .data import Batches, SourceSpec, source_spec
from .device import resolve_device, select_precision
from .graphs import StepGraph
from .labels import label_rules
from .metrics import Metrics
from .snapshot import (load_snapshot_weights, load_weights, read_snapshot_state, save_snapshot,
                       snapshot_paths, snapshot_prefix)
from .solver_nets import DATA_LAYERS, FILLED_LAYERS, PhaseNet, point_at_dataset, test_nets, train_net
from .solver_check import validate_solver
from .updates import caffe_apply_update, from_caffe_order, init_history

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAN_HINT = ("the loss is {value} at iteration {iteration}: training diverged. Try decreasing "
            "the learning rate (DIGITS: \"Try decreasing your learning rate\"); the last good "
            "snapshot is kept")


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class Options:
    dataset: Path | None = None
    weights: list[str] = field(default_factory=list)
    resume: Path | None = None
    device: str | None = None
    workers: int = 0
    max_iter: int | None = None
    test_iter: int | None = None                # override every test net's test_iter
    fast: bool = False
    cuda_graphs: bool = False                   # capture each net's step once, replay it (CUDA)
    cudnn_search: str = "find"                  # CUDA: "find" (time all algorithms) or "get"
    bad_records: str = "stop"                   # damaged records: "stop" with an error, or "skip"
    out: Path | None = None                     # logs, metrics, snapshots (default: solver's folder)
    log_file: str | None = "caffe_output.log"   # in `out`; None: no file
    progress: bool | None = None                # None: a bar when stderr is a terminal
    echo: bool = True                           # print the log lines to stdout


@dataclass
class Result:
    iteration: int
    stopped_early: bool
    train_losses: dict[int, float]               # iteration -> loss (mean over iter_size)
    tests: list[tuple[int, dict[str, float]]]    # (iteration, {output: value}) of test net 0
    snapshots: list[Path]
    seconds: float
    finished_at: dict[int, float] = field(default_factory=dict)  # iteration -> time.monotonic()
    stop_signal: int | None = None              # SIGINT or SIGTERM that stopped the run
    # seconds the training loop waited for batches ("data") and for the GPU's loss ("gpu")
    waits: dict[str, float] = field(default_factory=lambda: {"data": 0.0, "gpu": 0.0})


def _seed(solver: caffe_pb2.SolverParameter) -> tuple[int, bool]:
    if solver.random_seed >= 0:
        return int(solver.random_seed), True
    return secrets.randbits(31), False


def _iteration_seed(seed: int, rank: int, iteration: int) -> int:
    return int(np.random.SeedSequence([seed, rank, iteration]).generate_state(1)[0])


def _fill_seed(seed: int, rank: int, net: int, draw: int) -> int:
    """The DummyData generator's seed for batch `draw` of net `net` (0: train, 1 + i: test #i)."""
    return int(np.random.SeedSequence([seed, rank, net, draw, 1]).generate_state(1)[0])


def share_blobs(train: CaffeNet, test: CaffeNet) -> None:
    """Caffe's ShareTrainedLayersWith: test layers use the train layers' blobs of the same name."""
    by_name = {info.name: info for info in train.layer_info if info.blobs}
    for info in test.layer_info:
        if not info.blobs or info.name not in by_name:
            continue
        source = train.caffe_blobs(info.name)
        if len(source) != len(info.blobs):
            raise PrototxtError(f"layer '{info.name}': the train net has {len(source)} blobs, "
                                f"the test net {len(info.blobs)}; they cannot share", test.source)
        module = getattr(test, info.module)
        for blob, tensor in zip(info.blobs, source):
            mine = getattr(module, blob.attr)
            if mine.shape != tensor.shape:
                raise PrototxtError(f"layer '{info.name}': cannot share blob {blob.attr}: the "
                                    f"train net's is {list(tensor.shape)}, the test net's "
                                    f"{list(mine.shape)}", test.source)
            setattr(module, blob.attr, tensor)


class _SmoothedLoss:
    """Caffe's UpdateSmoothedLoss: the mean of the last `average_loss` iterations' losses."""

    def __init__(self, average_loss: int, start_iter: int):
        self.average, self.start = average_loss, start_iter
        self.losses: list[float] = []
        self.value = 0.0

    def add(self, iteration: int, loss: float) -> None:
        if len(self.losses) < self.average:
            self.losses.append(loss)
            self.value = (self.value * (len(self.losses) - 1) + loss) / len(self.losses)
        else:
            idx = (iteration - self.start) % self.average
            self.value += (loss - self.losses[idx]) / self.average
            self.losses[idx] = loss


class _Net:
    """One phase's model with its data sources: which source feeds which input blobs, and
    whether DummyData layers fill others (`index`: 0 train, 1 + i test net i)."""

    def __init__(self, phase_net: PhaseNet, model: CaffeNet, feeds: list[tuple[int, tuple[str, ...]]],
                 index: int = 0):
        self.phase_net, self.model, self.feeds, self.index = phase_net, model, feeds, index
        self.filled = any(layer.type in FILLED_LAYERS for layer in phase_net.net.layer)


class Solver:
    def __init__(self, solver_path: str | Path, options: Options | None = None):
        self.options = options or Options()
        self.path = Path(solver_path).absolute()
        if not self.path.is_file():
            raise PrototxtError("no such solver file", self.path)
        self.folder = self.path.parent
        # where logs, metrics and snapshots go: the solver's folder (DIGITS' job) unless --out
        self.out = Path(self.options.out).absolute() if self.options.out else self.folder
        self.param = read_solver(self.path)
        overrides = {}
        if self.options.max_iter is not None:
            self.param.max_iter = self.options.max_iter
            overrides["max_iter"] = f"--max-iter {self.options.max_iter}"
        if self.options.test_iter is not None:
            self.param.test_iter[:] = [self.options.test_iter] * len(self.param.test_iter)
            overrides["test_iter"] = f"--test-iter {self.options.test_iter}"
        validate_solver(self.param, self.path, overrides)  # Caffe's checks, at file:line
        if self.param.snapshot_format != caffe_pb2.SolverParameter.BINARYPROTO:
            raise PrototxtError("snapshot_format HDF5 is not supported; use BINARYPROTO", self.path)
        self.dist = distributed.from_env()
        self.device = self._device()
        self.precision = select_precision(self.device, self.options.fast,
                                          cudnn_search=self.options.cudnn_search)
        distributed.start(self.dist, self.device)
        self.seed, self.seeded = _seed(self.param)
        self.log = CaffeLog(self._log_path(), echo=self._echo if self.options.echo else None,
                            enabled=self.dist.root)
        self.prefix = snapshot_prefix(self.param, self.out, self.path)
        self._bar = None

        train = train_net(self.param, self.folder)
        tests = test_nets(self.param, self.folder) if self.param.test_iter else []
        if self.options.dataset is not None:
            for phase_net in [train, *tests]:
                point_at_dataset(phase_net, Path(self.options.dataset).absolute())
        specs: list[SourceSpec] = []
        layouts = []
        for phase_net in [train, *tests]:
            feeds = []
            for layer in phase_net.net.layer:
                if layer.type in DATA_LAYERS:
                    specs.append(source_spec(layer, phase_net.phase, self.seed, phase_net.source,
                                             self.dist.rank, self.dist.world,
                                             self.options.bad_records))
                    feeds.append((len(specs) - 1, tuple(layer.top)))
                elif (getattr(REGISTRY.get(layer.type), "data", False)  # Input, ImageData...
                      and layer.type not in FILLED_LAYERS):
                    raise PrototxtError(f"layer '{layer.name}' ({layer.type}): training reads "
                                        f"Data layers (LMDB) and DummyData layers only",
                                        phase_net.source)
            if not feeds and not any(l.type in FILLED_LAYERS for l in phase_net.net.layer):
                raise PrototxtError("the net has no Data or DummyData layer in this phase; "
                                    "training needs one", phase_net.source)
            layouts.append(feeds)
        # two batches ahead per worker keeps every worker busy while the net runs
        self.batches = Batches(specs, self.options.workers, depth=max(4, 2 * self.options.workers),
                               device=self.device,
                               on_skip=lambda line: self.log("info", line, level="W"))
        if self.options.workers and self.device.type == "cpu":
            # torch's threads slow down many times over when a worker holds one of their cores
            threads = max(1, len(os.sched_getaffinity(0)) - self.options.workers)
            torch.set_num_threads(min(threads, torch.get_num_threads()))
        self.train = self._build(train, layouts[0], seed=self.seed)
        self.tests = [self._build(t, f, seed=self.seed, index=1 + i)
                      for i, (t, f) in enumerate(zip(tests, layouts[1:]))]
        for test in self.tests:
            share_blobs(self.train.model, test.model)
            test.model.eval()
        for net in [self.train, *self.tests]:  # labels checked as batches are made (CPU)
            for source, tops in net.feeds:
                if len(tops) > 1:
                    self.batches.bound_labels(source, label_rules(net.model, tops[1]))
        if layouts[0]:
            self.n_train = self.batches.makers[layouts[0][0][0]].size
            self.batch_size = specs[layouts[0][0][0]].batch_size
        else:  # DummyData only: no dataset, an epoch is one batch
            first = next(l.top[0] for l in train.net.layer if l.type in FILLED_LAYERS)
            self.batch_size = ([*self.train.model.input_shapes[first]] or [1])[0]
            self.n_train = self.batch_size

        self.params = list(self.train.model.caffe_params())
        for _, _, tensor, spec in self.params:
            tensor.requires_grad_(spec.lr_mult != 0)  # Caffe: no param_propagate_down
        self.lr_mults = [float(spec.lr_mult) for *_, spec in self.params]
        self.decay_mults = [float(spec.decay_mult) for *_, spec in self.params]
        self.histories = [init_history(self.param.type, t) for _, _, t, _ in self.params]
        self.iteration = 0
        self.current_step = 0
        if self.options.weights:
            for line in load_weights(self.train.model, self.options.weights):
                self.log("info", f"Finetuning from {line}")
        self.forward_model = self.train.model
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == "cuda" else None
            # buffers are not synced at each forward (Caffe's solvers never did); torch 2.13
            # renames the flag, which the GPU image's 2.11 lacks: keep it, without its warning
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated",
                                        FutureWarning)
                self.forward_model = DistributedDataParallel(self.train.model, device_ids=ids,
                                                             broadcast_buffers=False)
        self.train_step = self._eager_train_step
        self.test_steps = [None] * len(self.tests)
        self.graphs_note = ""
        if self.options.cuda_graphs:
            self._use_graphs()
        self._stop_requested = False
        self.stop_signal: int | None = None
        self._snapshot_requested = False

    # -- setup helpers -------------------------------------------------------------------------
    def _device(self) -> torch.device:
        spec = self.options.device or "cpu"
        if self.dist.active and spec == "cuda":  # torchrun: one GPU per local process
            spec = f"cuda:{self.dist.local_rank}"
        return resolve_device(spec)

    def _log_path(self) -> Path | None:
        return None if self.options.log_file is None else self.out / self.options.log_file

    def _echo(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def _build(self, phase_net: PhaseNet, feeds, seed: int, index: int = 0) -> _Net:
        shapes: dict[str, tuple[int, ...]] = {}
        for source, tops in feeds:
            shapes[tops[0]] = self.batches.makers[source].output_shape()
        model = build_model(phase_net.net, phase_net.phase, phase_net.stages, phase_net.level,
                            input_shapes=shapes, seed=seed, source=phase_net.source)
        return _Net(phase_net, self.precision.prepare_model(model), feeds, index)

    def _use_graphs(self) -> None:
        why = ("they need a CUDA device" if self.device.type != "cuda" else
               "iter_size > 1 sums gradients over passes" if self.param.iter_size > 1 else
               "several processes (DistributedDataParallel)" if self.dist.active else
               "the train net has no loss" if not any(any(step.loss_weights)
                                                       for step in self.train.model.steps) else "")
        if why:
            self.graphs_note = f"; CUDA graphs not used: {why}"
            return
        say = lambda line: self.log("info", line)  # noqa: E731
        self.train_step = StepGraph(self.train.model, self.precision, train=True, log=say)
        self.test_steps = [StepGraph(t.model, self.precision, train=False, log=say,
                                     name=f"test #{i}") for i, t in enumerate(self.tests)]
        self.graphs_note = "; CUDA graphs (captured after 3 eager steps)"

    def _eager_train_step(self, inputs: dict):
        with self.precision.autocast():
            out = self.forward_model(**inputs)
        if out.loss is None:
            raise PrototxtError("the train net has no loss (no layer with a loss weight)",
                                self.train.model.source)
        out.loss.backward()
        return out

    # -- the loop ------------------------------------------------------------------------------
    def restore(self, path: str | Path) -> None:
        state = read_snapshot_state(path)
        load_snapshot_weights(self.train.model, state.learned_net)  # strict: every layer
        tensors = [t for _, _, t, _ in self.params]
        restored = from_caffe_order(state.history, len(tensors), self.param.type)
        for i, (tensor, blobs) in enumerate(zip(tensors, restored)):
            for j, values in enumerate(blobs):
                if values.size != tensor.numel():
                    raise PrototxtError(f"history blob for parameter {i} holds {values.size} "
                                        f"values; the parameter has {tensor.numel()}", path)
                self.histories[i][j].copy_(torch.from_numpy(values.reshape(tensor.shape)))
        self.iteration, self.current_step = state.iteration, state.current_step
        self.log("restore", "SGDSolver: restoring history")
        self.log("info", f"Resuming from {path} at iteration {self.iteration}")

    def tests_before(self, iteration: int) -> int:
        """How many TestAll calls an uninterrupted run made before reaching `iteration`."""
        interval = self.param.test_interval
        if not interval or not self.tests:
            return 0
        done = (iteration - 1) // interval + 1 if iteration > 0 else 0  # i = 0, k, 2k... < iteration
        if not self.param.test_initialization and iteration > 0:
            done -= 1
        return done

    def epoch(self, iteration: int) -> float:
        return iteration * self.batch_size * self.param.iter_size * self.dist.world / self.n_train

    def solve(self) -> Result:
        start_time = time.time()
        if self.options.resume:
            try:
                self.restore(self.options.resume)
            except BaseException:
                self.batches.close()
                raise
        self.log("solve", f"Solving {self.train.model.net.name}")
        self.log("policy", f"Learning Rate Policy: {self.param.lr_policy}")
        if not self.seeded:
            self.log("info", f"random_seed not set: using {self.seed}")
        self.log("info", self.precision.describe() + (
            f"; {self.dist.world} processes, global batch {self.batch_size * self.dist.world}"
            if self.dist.active else "") + self.graphs_note)
        self.metrics = Metrics(self.out, self.iteration, enabled=self.dist.root)
        result = Result(self.iteration, False, {}, [], [], 0.0)
        self._test_pass = self.tests_before(self.iteration)
        start_iter = self.iteration
        # Ctrl-C and SIGTERM (timeout, docker stop, Slurm) alike: finish the iteration, snapshot,
        # stop; a second one aborts at once
        previous = ({sig: signal.signal(sig, self._on_sigint) for sig in STOP_SIGNALS}
                    if _main_thread() else None)
        self._bar = self._progress(start_iter)
        together = False  # whether every process ends here at the same iteration
        try:
            self._step(self.param.max_iter - self.iteration, result)
            if self.iteration > start_iter:
                # where the loop's time went besides its own work: the data path, or the GPU
                done = self.iteration - start_iter
                self.log("info", "Waited per training iteration: "
                         f"{1000 * result.waits['data'] / done:.3g} ms for batches, "
                         f"{1000 * result.waits['gpu'] / done:.3g} ms for the device "
                         f"(loss read-back), over {done} iterations")
            if self.param.snapshot_after_train and (
                    not self.param.snapshot or self.iteration % self.param.snapshot != 0):
                self._snapshot(result)
            if result.stopped_early:
                self.log("stopped", "Optimization stopped early.")
            else:
                if self.param.display and self.iteration % self.param.display == 0:
                    loss = self._final_loss()
                    self.log("final_loss", f"Iteration {self.iteration}, loss = {g(loss)}")
                if self.param.test_interval and self.iteration % self.param.test_interval == 0:
                    self._test_all(result)
                self.log("done", "Optimization Done.")
            together = True
        except TrainingDiverged:
            together = True  # every process raises it, at the same iteration
            raise
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            for sig, handler in (previous or {}).items():
                signal.signal(sig, handler)
            self.metrics.flush(chart=True, force=True)
            self.metrics.close()
            self.batches.close()
            self.log.close()
            distributed.stop(self.dist, self.device, together)
        result.iteration = self.iteration
        result.stop_signal = self.stop_signal
        result.seconds = time.time() - start_time
        return result

    def _progress(self, start: int):
        enabled = self.options.progress
        if not self.dist.root or enabled is False:
            return None
        from tqdm import tqdm
        return tqdm(total=self.param.max_iter, initial=start, unit="it", dynamic_ncols=True,
                    disable=None if enabled is None else False, desc="train")

    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        self.stop_signal = signum
        what = "Terminated (SIGTERM)" if signum == signal.SIGTERM else "Interrupted"
        self.log("info", f"{what}: stopping after this iteration (snapshot, then exit; "
                         "resume with --resume). Press Ctrl-C again to abort now.", level="W")

    def _inputs(self, net: _Net, batches: dict[int, tuple[torch.Tensor, torch.Tensor]],
                draw: int) -> dict:
        """The nets' input blobs from batches already on the device (trainer.data), and the
        DummyData tops as their fillers make them for batch `draw` (train: k, test: cursor)."""
        inputs = {}
        for source, tops in net.feeds:
            data, labels = batches[source]
            inputs[tops[0]] = self.precision.prepare_input(data)
            if len(tops) > 1:
                inputs[tops[1]] = labels
        if net.filled:
            generator = torch.Generator().manual_seed(
                _fill_seed(self.seed, self.dist.rank, net.index, draw))
            for name, value in dummy_data_values(net.model, generator).items():
                inputs[name] = self.precision.prepare_input(value)
        return inputs

    def _train_streams(self, start_batch: int) -> dict:
        return {source: self.batches.stream(source, start_batch) for source, _ in self.train.feeds}

    def _step(self, iters: int, result: Result) -> None:
        p = self.param
        stop_iter = self.iteration + iters
        smoothed = _SmoothedLoss(p.average_loss, self.iteration)
        streams = self._train_streams(self.iteration * p.iter_size)
        tick, tick_iter = time.time(), self.iteration
        # Reading a loss back waits for the GPU to finish that iteration, and the GPU then idles
        # while the host prepares the next batch and update. So one process reads iteration
        # i - 1's loss after queuing iteration i's step and update, and the GPU always has work
        # (display iterations read at once, as before; a NaN loss is still caught before any
        # snapshot or test: those read what is pending first). Several processes read each
        # iteration's loss at once: their flags' all_reduce is per iteration anyway.
        lag = not self.dist.active
        pending: tuple[int, list[torch.Tensor]] | None = None

        def settle() -> None:
            nonlocal pending
            if pending is not None:
                self._account(*pending, result, smoothed)
                pending = None

        while self.iteration < stop_iter:
            if not getattr(self.train_step, "captured", False):  # a graph keeps its .grad
                for _, _, tensor, _ in self.params:
                    tensor.grad = None
            if (p.test_interval and self.iteration % p.test_interval == 0
                    and (self.iteration > 0 or p.test_initialization)):
                settle()
                self._test_all(result)
                if self._stop_requested:
                    break
            display = bool(p.display) and self.iteration % p.display == 0
            torch.manual_seed(_iteration_seed(self.seed, self.dist.rank, self.iteration))
            losses = []
            out = None
            for k in range(p.iter_size):
                waited = time.perf_counter()
                batches = {source: next(stream) for source, stream in streams.items()}
                result.waits["data"] += time.perf_counter() - waited
                sync = (self.dist.active and k < p.iter_size - 1
                        and hasattr(self.forward_model, "no_sync"))
                with self.forward_model.no_sync() if sync else nullcontext():
                    out = self.train_step(self._inputs(self.train, batches,
                                                       self.iteration * p.iter_size + k))
                losses.append(out.loss.detach().clone())  # a graph rewrites it at its next replay
            stop = False
            if not lag or display:
                settle()
                stop = self._account(self.iteration, losses, result, smoothed)
            if display:
                lapse = time.time() - tick
                per_s = (self.iteration - tick_iter) / lapse if lapse > 0 else 0.0
                self.log("iteration", f"Iteration {self.iteration} ({g(per_s)} iter/s, "
                         f"{g(lapse)}s/{p.display} iters), loss = {g(smoothed.value)}")
                tick, tick_iter = time.time(), self.iteration
                outputs = {name: out.blobs[name].detach().float().reshape(-1).cpu().tolist()
                           for name in self.train.model.outputs}
                values = self._log_outputs("Train", outputs, out.loss_weights)
                self.metrics.add(self.iteration, self.epoch(self.iteration), "train", values)
            grads = [t.grad if t.grad is not None else torch.zeros_like(t)
                     for _, _, t, _ in self.params]
            step = caffe_apply_update(p, [t.data for _, _, t, _ in self.params], grads,
                                      self.histories, self.lr_mults, self.decay_mults,
                                      self.iteration, self.current_step)
            self.current_step = step.current_step
            if lag and not display:
                settle()  # the last iteration's loss, while the GPU runs this one
                pending = (self.iteration, losses)
            if display:
                self.log("lr", f"Iteration {self.iteration}, lr = {g(step.rate)}")
                self.metrics.add(self.iteration, self.epoch(self.iteration), "lr",
                                 {"lr": step.rate})
                self.metrics.flush()
            self.iteration += 1
            result.finished_at[self.iteration - 1] = time.monotonic()
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(loss=f"{smoothed.value:.4g}", lr=f"{step.rate:.3g}",
                                      refresh=False)
            # alone, a Ctrl-C during the update stops now; with peers it waits for the next
            # iteration's all_reduce so that every process stops at the same iteration
            stop = stop or (self._stop_requested and not self.dist.active)
            if (p.snapshot and self.iteration % p.snapshot == 0) or self._snapshot_requested:
                settle()
                self._snapshot(result)
            if stop:
                self._stop_requested = True
                result.stopped_early = True
                break
        settle()

    def _account(self, iteration: int, parts: list[torch.Tensor], result: Result,
                 smoothed: _SmoothedLoss) -> bool:
        """Read back `iteration`'s loss (the mean of its iter_size passes), record it, stop
        with TrainingDiverged when it is not finite on any process, and smooth it. Returns
        whether any process asked to stop."""
        loss = 0.0
        waited = time.perf_counter()
        for part in parts:
            loss += float(part)  # waits for the GPU to finish that iteration
        result.waits["gpu"] += time.perf_counter() - waited
        loss /= len(parts)
        result.train_losses[iteration] = loss
        # one collective per iteration: a NaN anywhere, a Ctrl-C anywhere
        diverged, stop = distributed.any_flags(
            self.dist, (not math.isfinite(loss), self._stop_requested), self.device)
        if diverged:
            self.log("info", NAN_HINT.format(value=g(loss), iteration=iteration), level="E")
            raise TrainingDiverged(NAN_HINT.format(value=g(loss), iteration=iteration))
        smoothed.add(iteration, loss)
        return stop

    def _log_outputs(self, kind: str, outputs: dict[str, list[float]],
                     weights: dict[str, float]) -> dict[str, float]:
        """"Train/Test net output #k: name = v (* w = wv loss)" for each output element, in the
        net's output order; returns {name: v} ({name[j]: v} for outputs of several values)."""
        values: dict[str, float] = {}
        index = 0
        for name, data in outputs.items():
            weight = weights.get(name, 0.0)
            for j, v in enumerate(data):
                suffix = f" (* {g(weight)} = {g(weight * v)} loss)" if weight else ""
                self.log(f"{kind.lower()}_output", f"    {kind} net output #{index}: {name} = "
                         f"{g(v)}{suffix}")
                values[name if len(data) == 1 else f"{name}[{j}]"] = v
                index += 1
        return values

    @torch.no_grad()
    def _test_all(self, result: Result) -> None:
        if not self.dist.root:
            self._test_pass += 1
            return
        for i, test in enumerate(self.tests):
            self.log("testing", f"Iteration {self.iteration}, Testing net (#{i})")
            n = test.phase_net.test_iter
            start = self._test_pass * n
            streams = {source: self.batches.stream(source, start, n) for source, _ in test.feeds}
            # Caffe's sums (the first batch's values, then += each batch's), in float64 on the
            # device: the same additions in the same order as on the host, so the same bits,
            # but one read-back per test instead of one per output per batch (each a sync that
            # left the GPU idle while the host caught up)
            sums: dict[str, torch.Tensor] = {}
            loss = torch.zeros((), dtype=torch.float64, device=self.device)
            weights: dict[str, float] = {}
            for j in range(n):
                batches = {source: next(stream) for source, stream in streams.items()}
                inputs = self._inputs(test, batches, start + j)
                if self.test_steps[i] is not None:
                    out = self.test_steps[i](inputs)
                else:
                    with self.precision.autocast():
                        out = test.model(**inputs)
                if out.loss is not None:
                    loss += out.loss.detach().double()
                weights = out.loss_weights
                for name in test.model.outputs:
                    # a copy: a CUDA graph rewrites its output blobs at the next replay
                    v = out.blobs[name].detach().reshape(-1).to(torch.float64, copy=True)
                    sums[name] = v if name not in sums else sums[name].add_(v)
            if self.param.test_compute_loss:
                self.log("test_loss", f"Test loss: {g(float(loss) / n)}")
            means = {name: (sums[name].cpu().numpy() / n).tolist() for name in test.model.outputs}
            values = self._log_outputs("Test", means, weights)
            if i == 0:
                result.tests.append((self.iteration, values))
            self.metrics.add(self.iteration, self.epoch(self.iteration), "val", values)
        self._test_pass += 1
        self.metrics.flush(chart=True)

    @torch.no_grad()
    def _final_loss(self) -> float:
        k = self.iteration * self.param.iter_size
        batches = {source: next(stream) for source, stream in self._train_streams(k).items()}
        with self.precision.autocast():
            out = self.train.model(**self._inputs(self.train, batches, k))
        return float(out.loss)

    def _snapshot(self, result: Result) -> None:
        self._snapshot_requested = False
        if not self.dist.root:
            return
        model_path, state_path = snapshot_paths(self.prefix, self.iteration)
        self.log("snapshot", f"Snapshotting to binary proto file {model_path}")
        self.log("snapshot_state", f"Snapshotting solver state to binary proto file {state_path}")
        save_snapshot(self.train.model, self.histories, self.iteration, self.current_step,
                      self.prefix)
        result.snapshots.append(model_path)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
