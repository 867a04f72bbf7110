"""Where and in what precision a net trains: `resolve_device` and `Precision`.

    device = resolve_device("cuda:1")          # "cpu" (default), "cuda", "cuda:N"
    precision = select_precision(device, fast=args.fast)
    log.info(precision.describe())
    model = precision.prepare_model(model)     # to the device (+ channels_last on CPU or fast)
    with precision.autocast():
        out = model(data=precision.prepare_input(x), label=y.to(device))

Default (Caffe's fidelity): float32 everywhere, and on CUDA TF32 switched off, because TF32
matmuls/convolutions keep only 10 mantissa bits and Caffe computed in full float32. On the CPU
4-D inputs and weights are channels_last (NHWC), the layout oneDNN's convolutions compute in:
still float32 throughout, only the summation order inside a convolution differs (as it differs
between any two convolution algorithms, Caffe's im2col + GEMM included), and training steps are
1.5x (LeNet, batch 64) to 1.6-2x (GoogLeNet, batch 32) faster than NCHW on a 2-core AVX-512
EPYC (same run, 2026-11-27).

Fast (`--fast`): bf16 autocast where the hardware does bf16 natively (a CUDA GPU that supports
it; a CPU with avx512_bf16, amx_bf16 or Arm's bf16), plus channels_last memory format for 4-D
inputs and weights (what cuDNN and oneDNN convolutions prefer); loss layers still compute in
float32 (their inputs are cast back), and weights, gradients and the update stay float32
(autocast casts copies for the convolutions and matmuls). On a CPU without native bf16,
oneDNN would emulate it and be slower than float32, so fast mode keeps float32 there and says so.
On CUDA, fast mode also allows TF32 for the float32 ops autocast leaves alone.
"""
from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager

import torch
from torch import nn

__all__ = ["DeviceError", "Precision", "cpu_bf16_flags", "machine_description",
           "resolve_device", "select_precision"]

CPUINFO = Path("/proc/cpuinfo")
# x86: AVX512-BF16 (Cooper Lake, Zen 4+), AMX-BF16 (Sapphire Rapids+); Arm: the BF16 extension.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


class DeviceError(ValueError):
    """A device that does not exist here (a ValueError, so command lines print one line)."""


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """"cpu" (also the default, None or ""), "cuda" (= cuda:0) or "cuda:N" -> torch.device."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "cpu").strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    kind, _, index = text.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DeviceError(f"unknown device {spec!r}: use cpu, cuda or cuda:N (N a GPU number)")
    if not torch.cuda.is_available():
        why = ("this PyTorch build has no CUDA support" if torch.version.cuda is None else
               "no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
        raise DeviceError(f"device {spec!r} asked for, but {why}; use --device cpu")
    count = torch.cuda.device_count()
    n = int(index or 0)
    if n >= count:
        raise DeviceError(f"device {spec!r} asked for, but there {'is' if count == 1 else 'are'} "
                          f"only {count} GPU(s): cuda:0..cuda:{count - 1}")
    return torch.device("cuda", n)


def _cpu_flags(cpuinfo: str | None = None) -> set[str]:
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:  # not Linux: no flags known, so no native bf16 claimed
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / Arm
            flags.update(value.split())
    return flags


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The CPU's native-bf16 feature flags (from /proc/cpuinfo, or the text given), e.g.
    ["avx512_bf16"]; empty when bf16 would be emulated."""
    flags = _cpu_flags(cpuinfo)
    return [f for f in NATIVE_BF16_FLAGS if f in flags]


def _cpu_model(cpuinfo: str | None = None) -> str:
    try:
        text = CPUINFO.read_text() if cpuinfo is None else cpuinfo
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Hardware", "Model"):
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass(frozen=True)
class Precision:
    """How a net runs on `device`: autocast dtype (None = float32) and memory format."""
    device: torch.device
    fast: bool = False
    dtype: torch.dtype | None = None  # autocast dtype; None: plain float32
    channels_last: bool = False
    note: str = ""  # why (e.g. "avx512_bf16", "this CPU has no native bf16")
    cudnn_search: str = "find"  # CUDA: "find" times every algorithm per shape, "get" asks cuDNN

    def autocast(self, cache: bool = True) -> ContextManager:
        """The context for the forward pass (and loss); a no-op in float32. `cache=False`
        inside CUDA graph capture (autocast's cast cache must not outlive it)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=cache)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Move `model` to the device; channels_last for its 4-D weights where chosen. Under
        autocast, the layers with a loss weight (a CaffeNet's loss layers) get float32 inputs."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # only 4-D tensors change
        if self.dtype is not None:
            for step in getattr(model, "steps", ()):
                module = getattr(model, step.module)
                if any(step.loss_weights) and not getattr(module, "_float32_inputs", False):
                    # A bf16 loss (log_softmax, the sum) loses the small differences late
                    # training depends on; LeNet at lr 0.01 diverged after ~4,600 iterations.
                    module.register_forward_pre_hook(_float32_inputs)
                    module._float32_inputs = True
        return model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Move an input to the device; 4-D float inputs become channels_last where chosen."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4 and x.is_floating_point():
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def describe(self) -> str:
        """One line for the log, e.g.
        "fast mode: bf16 autocast on cpu (avx512_bf16), channels_last"."""
        where = str(self.device)
        if not self.fast:
            how = (f", TF32 off, {self._search()}" if self.device.type == "cuda" else
                   ", channels_last" if self.channels_last else "")
            return f"precision: fp32 on {where}{how} (Caffe's numerics; --fast for bf16)"
        layout = ", channels_last" if self.channels_last else ""
        if self.device.type == "cuda":
            layout += f", {self._search()}"
        if self.dtype is None:
            return f"fast mode: fp32 on {where} ({self.note}){layout}"
        name = str(self.dtype).removeprefix("torch.").replace("bfloat16", "bf16")
        return f"fast mode: {name} autocast on {where} ({self.note}){layout}"

    def _search(self) -> str:
        return "cuDNN autotuned" if self.cudnn_search == "find" else "cuDNN heuristics"


def _float32_inputs(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in args)


def _set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


CUDNN_SEARCHES = ("find", "get")
CUDNN_SEARCH_HELP = ("CUDA: how each convolution's cuDNN algorithm is chosen: find = time them "
                     "all once per shape (default, NVCaffe's FINDEX), get = cuDNN's heuristics "
                     "(NVCaffe's GET: no timing at the start)")


def _set_cudnn_search(search: str) -> None:
    # NVCaffe's default cudnn_convolution_algo_seeker is FINDEX: time every cuDNN algorithm
    # once per shape and keep the fastest. cudnn.benchmark is that search (a training run has
    # two shapes, the train and the test batch); the algorithms differ only in summation order.
    # "get" is its GET: cuDNN's heuristics choose, nothing is timed (a shorter start, measured
    # against "find" in benchmarks/results/gpu).
    torch.backends.cudnn.benchmark = search == "find"


def select_precision(device: torch.device | str | None = None, fast: bool = False,
                     cpuinfo: str | None = None, cudnn_search: str = "find") -> Precision:
    """The Precision for `device` (see the module docstring). On CUDA this also sets
    PyTorch's process-wide TF32 switches (off by default, on in fast mode) and cuDNN's
    algorithm search (`cudnn_search`: "find" times them all once per shape, "get" asks
    cuDNN's heuristics).

    `cpuinfo` replaces /proc/cpuinfo's text (for tests)."""
    if cudnn_search not in CUDNN_SEARCHES:
        raise ValueError(f"cuDNN search {cudnn_search!r}: use one of {', '.join(CUDNN_SEARCHES)}")
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    if device.type == "cuda":
        _set_tf32(fast)
        _set_cudnn_search(cudnn_search)
        if not fast:
            return Precision(device, cudnn_search=cudnn_search)
        if torch.cuda.is_bf16_supported():
            name = torch.cuda.get_device_name(device)
            return Precision(device, True, torch.bfloat16, True, f"{name}, TF32 on",
                             cudnn_search)
        return Precision(device, True, None, True, "this GPU has no bf16, TF32 on", cudnn_search)
    if not fast:
        return Precision(device, channels_last=True, note="oneDNN's layout")
    flags = cpu_bf16_flags(cpuinfo)
    if flags:
        return Precision(device, True, torch.bfloat16, True, ", ".join(flags))
    return Precision(device, True, None, True, "this CPU has no native bf16")


def machine_description() -> dict:
    """What the numbers were measured on: CPU, cores, threads, GPU, torch version."""
    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": cpu_bf16_flags(),
        "gpu": ", ".join(gpus) or None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }
