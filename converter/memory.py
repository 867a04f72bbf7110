"""Will the net fit? The memory a built net needs, estimated from the shapes inferred on the
"meta" device, against this machine's memory, before anything is allocated.

    needs = parameters + data of one forward pass
    parameters = sum over layers of their blobs' (and buffers') elements x element size
    data = (net inputs + every top not computed in place) x 4 bytes (float32 blobs)

build_model (net.py) calls `check_fits` just before it allocates, so every caller (converter onnx,
trainer run, trainer time, inference) refuses a net that cannot fit with a ConverterError naming
the layer that needs the most, its size, and the machine's memory, instead of a RuntimeError from
the allocator (or an overcommitted allocation that the kernel's OOM killer ends while filling).
The limit is the memory available now (/proc/meminfo MemAvailable + SwapFree), else the physical
memory (os.sysconf SC_PHYS_PAGES x SC_PAGE_SIZE) where /proc is not there.
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

from .errors import ConverterError

FLOAT_BYTES = 4


class MachineMemory(NamedTuple):
    total: int | None       # physical memory, bytes
    available: int | None   # what can be allocated now without an OOM kill, bytes


class LayerNeed(NamedTuple):
    name: str
    type: str
    parameters: int   # bytes of its blobs and buffers
    data: int         # bytes of its tops (not in place)
    detail: str       # e.g. "blobs 4000000000x800 + 4000000000, top 64x4000000000"

    @property
    def total(self) -> int:
        return self.parameters + self.data


class Estimate(NamedTuple):
    parameters: int
    data: int
    layers: tuple[LayerNeed, ...]

    @property
    def total(self) -> int:
        return self.parameters + self.data


def machine_memory() -> MachineMemory:
    total = None
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    available = None
    try:
        fields = {}
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                name, _, rest = line.partition(":")
                fields[name] = int(rest.split()[0]) * 1024
        if "MemAvailable" in fields:
            available = fields["MemAvailable"] + fields.get("SwapFree", 0)
    except (OSError, ValueError, IndexError):
        pass
    return MachineMemory(total if total and total > 0 else None, available)


def human(size: int) -> str:
    """Bytes in binary units: 12800000000000 -> "11.6 TiB"."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # not reached


def _dims(shape) -> str:
    return "x".join(map(str, shape)) or "1"


def estimate(model) -> Estimate:
    """Bytes a CaffeNet built on the meta device will need once allocated and run once."""
    layers = []
    data = sum(math.prod(s) for s in model.input_shapes.values()) * FLOAT_BYTES
    parameters = 0
    for info in model.layer_info:
        tops = sum(math.prod(s) for s, same in zip(info.top_shapes, info.in_place) if not same)
        tensors = []
        if info.module is not None:
            module = getattr(model, info.module)
            tensors = list(module.parameters()) + list(module.buffers())
        blob_bytes = sum(t.numel() * t.element_size() for t in tensors)
        parts = []
        if tensors:
            parts.append("blobs " + " + ".join(_dims(t.shape) for t in tensors))
        if tops:
            parts.append("top " + ", ".join(_dims(s) for s, same in
                                            zip(info.top_shapes, info.in_place) if not same))
        layers.append(LayerNeed(info.name, info.type, blob_bytes, tops * FLOAT_BYTES,
                                "; ".join(parts)))
        parameters += blob_bytes
        if info.module is not None:  # a data layer's tops are the inputs, counted above
            data += tops * FLOAT_BYTES
    return Estimate(parameters, data, tuple(layers))


def check_fits(model, memory: MachineMemory | None = None) -> Estimate:
    """Raise ConverterError when the model cannot be allocated and run on this machine."""
    need = estimate(model)
    memory = memory or machine_memory()
    limit = memory.available if memory.available is not None else memory.total
    if limit is None or need.total <= limit:
        return need
    worst = max(need.layers, key=lambda l: l.total)
    have = (f"this machine has {human(memory.total)} of memory" if memory.total else
            "this machine") + (f", {human(memory.available)} of it available now"
                               if memory.available is not None else "")
    raise ConverterError(
        f"the net is too big for this machine: this layer alone needs {human(worst.total)} "
        f"({worst.detail}, float32); the net needs {human(need.total)} (parameters "
        f"{human(need.parameters)}, data of one forward pass {human(need.data)}), and {have}. "
        f"Check the layer's sizes (num_output, kernel, input size, batch size)",
        model.source, layer=worst.name, layer_type=worst.type)
