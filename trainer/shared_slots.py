"""Shared-memory slots for uint8 batches: worker processes write into them, the trainer reads.

A `SlotRing` holds `count` slots of one B x C x h x w uint8 shape in one POSIX shared-memory
segment. The trainer process creates it; a worker fills slot s of batch k in place
(`attach(name, shape)[s]`) and sends back only the batch's draws and labels, so no image crosses
a pipe. On a CUDA device the segment is page-locked (cudaHostRegister) so that the copy to the
GPU runs asynchronously, and each slot carries an event: it is not handed to a worker again
until the copy out of it has finished.
"""
from __future__ import annotations

import math
import sys
from collections import OrderedDict
from multiprocessing import shared_memory

import numpy as np
import torch


class SlotRing:
    """`count` uint8 slots of `shape`, page-locked for `device` when it is a GPU."""

    def __init__(self, shape: tuple[int, ...], count: int, device: torch.device):
        self.shape, self.count, self.device = tuple(shape), count, device
        size = max(1, math.prod(self.shape) * count)
        self.shm = shared_memory.SharedMemory(create=True, size=size)
        self.array: np.ndarray | None = np.ndarray((count, *self.shape), np.uint8, self.shm.buf)
        self.events: list[torch.cuda.Event | None] = [None] * count
        self.pinned = False
        if device.type == "cuda":
            # page-locked: copies to the GPU are asynchronous; on failure they stay synchronous,
            # which is slower but still correct
            code = torch.cuda.cudart().cudaHostRegister(self.array.ctypes.data, size, 0)
            self.pinned = int(code) == 0

    @property
    def name(self) -> str:
        return self.shm.name

    def wait(self, slot: int) -> None:
        """Block until the last copy out of `slot` has finished."""
        event = self.events[slot]
        if event is not None:
            event.synchronize()
            self.events[slot] = None

    def record(self, slot: int) -> None:
        """Mark the copies enqueued so far on the current stream as readers of `slot`."""
        if self.device.type == "cuda":
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
            self.events[slot] = event

    def close(self) -> None:
        if self.array is None:
            return
        for slot in range(self.count):
            self.wait(slot)
        if self.pinned:
            torch.cuda.cudart().cudaHostUnregister(self.array.ctypes.data)
        self.array = None
        try:
            self.shm.close()
        except BufferError:  # a view still alive somewhere: the mapping goes when it does
            pass
        self.shm.unlink()


# -- in a worker: segments attached by name, the few most recent kept open --------------------
_ATTACHED: OrderedDict[str, tuple[shared_memory.SharedMemory, np.ndarray]] = OrderedDict()
_KEEP = 8


def attach(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The slots of segment `name` as a count x `shape` uint8 array (in a worker process)."""
    if name in _ATTACHED:
        _ATTACHED.move_to_end(name)
        return _ATTACHED[name][1]
    if sys.version_info >= (3, 13):
        shm = shared_memory.SharedMemory(name, track=False)
    else:
        # Before 3.13 attaching registers the segment with the resource tracker again; spawned
        # workers share the trainer's tracker, whose set of names makes that a no-op, and the
        # trainer's unlink unregisters it once.
        shm = shared_memory.SharedMemory(name)
    per_slot = math.prod(shape)
    array = np.ndarray((shm.size // per_slot, *shape), np.uint8, shm.buf)
    _ATTACHED[name] = (shm, array)
    while len(_ATTACHED) > _KEEP:
        _, (old, old_array) = _ATTACHED.popitem(last=False)
        del old_array
        old.close()
    return array
