"""Caffe's parameter update alone: the per-parameter loop against the fused (_foreach) path.

    python benchmarks/updates.py [--device cpu|cuda] [--runs 20] [--type SGD|...|Adam]
                                 [--iter-size 1] [--classes 1000] [--out results.json]

One run is one `trainer.updates.caffe_apply_update` (momentum 0.9, or 0 for AdaGrad and RMSProp,
which refuse it; momentum2 0.999; weight decay 2e-4, L2;
lr_mult/decay_mult from the prototxt) over GoogLeNet's learnable parameters as DIGITS' train_val
builds them (128 tensors, 13.4 M values with 1000 classes: lr_mult 1/decay_mult 1 weights,
lr_mult 2/decay_mult 0 biases), with seeded random gradients. The reference (`fused=False`, the
per-parameter loop, 5 to 14 small ops per parameter) and the fused path (`fused=True`, a few
`torch._foreach_*` ops per (lr_mult, decay_mult) group) alternate run by run on their own copies
of the parameters; each time is the median of --runs runs after 3 warm-ups (on CUDA each run is
synchronized). Both paths give bit-identical parameters and histories, which is checked at the
end. Also counted: the tensor ops one update dispatches on each path (one more run, under a
TorchDispatchMode). On a GPU each of the loop's ops is a kernel launch and each _foreach op
one or a few; on the CPU, torch's _foreach ops run the ordinary kernel per tensor, so only
Python and dispatch overhead is saved (the fused path goes in cache-sized chunks,
updates.CPU_CHUNK).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from converter import build_model  # noqa: E402
from prototxt import atomic_write, caffe_pb2  # noqa: E402
from trainer.device import machine_description  # noqa: E402
from trainer.timing import standard_train_val  # noqa: E402
from trainer.updates import caffe_apply_update, init_history, supported_types  # noqa: E402


class _OpCount(TorchDispatchMode):
    """Counts the tensor ops dispatched inside it (views and metadata included: few here)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def googlenet_params(classes: int) -> tuple[list[torch.Tensor], list[float], list[float]]:
    """GoogLeNet's learnable tensors (detached copies) and their lr_mult / decay_mult."""
    train_val, shapes = standard_train_val("googlenet", classes, 1)
    model = build_model(train_val, "TRAIN", input_shapes=shapes, seed=0)
    params = list(model.caffe_params())
    return ([t.detach().clone() for _, _, t, _ in params], [s.lr_mult for *_, s in params],
            [s.decay_mult for *_, s in params])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--type", default="SGD", choices=supported_types())
    parser.add_argument("--iter-size", type=int, default=1)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    start, lr_mults, decay_mults = googlenet_params(args.classes)
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(t.shape, generator=gen).mul_(1e-2).to(device) for t in start]
    momentum = 0.0 if args.type in ("AdaGrad", "RMSProp") else 0.9
    solver = caffe_pb2.SolverParameter(type=args.type, base_lr=0.01, lr_policy="fixed",
                                       momentum=momentum, weight_decay=2e-4,
                                       iter_size=args.iter_size)
    state = {}
    for fused in (False, True):
        params = [t.to(device, copy=True) for t in start]
        state[fused] = (params, [init_history(args.type, t) for t in params])
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(3 + args.runs):
        for fused in (False, True):
            params, histories = state[fused]
            sync()
            tick = time.perf_counter()
            caffe_apply_update(solver, params, grads, histories, lr_mults, decay_mults, i,
                               fused=fused)
            sync()
            if i >= 3:
                times[fused].append(time.perf_counter() - tick)
    ops = {}
    for fused in (False, True):
        params, histories = state[fused]
        with _OpCount() as count:
            caffe_apply_update(solver, params, grads, histories, lr_mults, decay_mults,
                               3 + args.runs, fused=fused)
        ops[fused] = count.ops
    identical = all(torch.equal(a, b) for a, b in zip(state[False][0], state[True][0])) and all(
        torch.equal(a, b) for x, y in zip(state[False][1], state[True][1]) for a, b in zip(x, y))
    ref_ms, fused_ms = (statistics.median(times[f]) * 1e3 for f in (False, True))
    result = {
        "net": f"googlenet ({args.classes} classes)", "params": len(start),
        "values": sum(t.numel() for t in start), "type": args.type, "iter_size": args.iter_size,
        "device": str(device), "runs": args.runs, "reference_ms": ref_ms, "fused_ms": fused_ms,
        "speedup": ref_ms / fused_ms, "reference_ops": ops[False], "fused_ops": ops[True],
        "bit_identical": identical,
        "machine": machine_description(),
    }
    m = result["machine"]
    where = m["gpu"] if device.type == "cuda" else \
        f"{m['cpu']}, {m['torch_threads']} torch threads"
    print(f"caffe_apply_update, {result['net']}: {len(start)} tensors, "
          f"{result['values'] / 1e6:.1f} M values, {args.type}, iter_size {args.iter_size}, "
          f"on {device} ({where}), torch {m['torch']}; median of {args.runs} runs")
    print(f"  reference (per-parameter loop): {ref_ms:8.3f} ms, {ops[False]:5d} tensor ops")
    print(f"  fused (_foreach groups):        {fused_ms:8.3f} ms, {ops[True]:5d} tensor ops")
    print(f"  speedup: {ref_ms / fused_ms:.2f}x   bit-identical: {identical}")
    if args.out:
        atomic_write(args.out, (json.dumps(result, indent=2) + "\n").encode())
    if not identical:
        raise SystemExit("error: the fused update differs from the reference loop")
    return result


if __name__ == "__main__":
    main()
