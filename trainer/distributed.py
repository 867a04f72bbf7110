"""Many processes through torchrun: one process per GPU (or CPU worker), DistributedDataParallel.

Each process reads its own batches (trainer.data: global batches in turn), so the global batch is
batch_size x WORLD_SIZE, and DDP averages the gradients over processes - what Caffe's multi-GPU
solver did (NCCL sum, then 1/solver_count). Only rank 0 tests, logs and snapshots, as only
Caffe's root solver did. Backend: nccl for CUDA, gloo for CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def root(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env() -> Dist:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def start(ctx: Dist, device: torch.device) -> None:
    if ctx.active and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop(ctx: Dist, device: torch.device, together: bool) -> None:
    """End the process group. `together`: every process got here at the same iteration (a
    normal end, or a NaN seen by all through any_flags), so each first waits for the others.

    The barrier lets the first process to finish wait while the root still snapshots and logs,
    and it drains gloo's worker threads: a worker drops a collective's tensors after the Python
    call that waited for it has returned, and dropping a tensor that has a Python object takes
    the GIL; at interpreter exit that ends the thread inside a destructor and std::terminate
    aborts the process (about 1 run in 20 of 2 CPU processes, torch 2.13). The barrier's wait
    releases the GIL, so that work is dropped while the interpreter still runs. After an error
    on one process only, a barrier would hang: none then."""
    if ctx.active and dist.is_initialized():
        if together:  # nccl: name the process's GPU rather than let torch guess it
            dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)
        dist.destroy_process_group()


def any_flags(ctx: Dist, flags: tuple[bool, ...], device: torch.device | str = "cpu"
              ) -> tuple[bool, ...]:
    """Each flag true on every process when any process raised it (NaN loss, Ctrl-C), in one
    all_reduce."""
    if not ctx.active:
        return tuple(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())
