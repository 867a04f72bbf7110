"""Where a training step's time goes on the GPU, without the data path or the solver loop.

    python benchmarks/gpu/profile_step.py [--network googlenet] [--batch 32] [--test-batch 16]
                                          [--steps 30] [--device cuda] [--json]

For each variant (fp32 with cuDNN's search, --fast with it, --fast with cuDNN's heuristics),
in its own process (cuDNN's choices and PyTorch's switches are process-wide), on DIGITS'
train_val of the network with seeded random inputs:

    start_s         the first 3 eager steps' wall time (cuDNN's search or heuristics, the
                    allocator settling): what `trainer run` pays once per net before a graph
    eager_ms        mean wall time of `steps` eager forward + backward steps, synchronized
    replay_ms       mean GPU time of `steps` replays of the step captured as a CUDA graph
                    (trainer.graphs.StepGraph), by CUDA events: the step with no host in it
    test_replay_ms  the same for the test net's forward at the test batch size

`trainer run` on the same machine spends (1 / iter/s) per iteration: the difference from
replay_ms is the host's share (data, update, the loss read-back). Then, for the --fast variant
with cuDNN's search, torch.profiler over 5 eager steps: GPU kernel time per step and the kernels
that take most of it (self time, grouped by name); and each MAX pooling layer's forward +
backward at its training shape in bf16 three ways: channels_last (as --fast runs it), NCHW, and
NCHW between two layout copies (what running pooling in NCHW inside a channels_last net would
cost). On a CPU the replays, kernels and pooling are left out.
Prints JSON (--json) or a short text.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VARIANTS = {"fp32-find": (False, "find"), "fast-find": (True, "find"), "fast-get": (True, "get")}


def _model(network: str, batch: int, phase: str, precision):
    from converter import build_model
    from trainer.timing import random_inputs, standard_train_val
    net, shapes = standard_train_val(network, 10, batch)
    model = precision.prepare_model(build_model(net, phase, (), input_shapes=shapes, seed=0,
                                                source=f"{network} {phase}"))
    inputs = {k: precision.prepare_input(v) for k, v in random_inputs(model, 0).items()}
    return model, inputs


def _sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _gpu_ms(work, reps: int, warmup: int = 1) -> float:
    """Mean milliseconds of `work()` on the GPU over `reps` calls after `warmup`, by CUDA events."""
    import torch
    for _ in range(warmup):
        work()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        work()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def _replay_ms(step, inputs: dict, steps: int) -> float:
    """Mean GPU milliseconds of a captured step's replay."""
    for _ in range(step.warmup + 1):
        step(inputs)  # eager on a side stream, then the capture
    return _gpu_ms(step.graph.replay, steps)


def measure(variant: str, network: str, batch: int, test_batch: int, steps: int,
            device: str) -> dict:
    """One variant, in this process."""
    import torch
    from trainer.device import select_precision
    from trainer.graphs import StepGraph
    fast, search = VARIANTS[variant]
    precision = select_precision(device, fast, cudnn_search=search)
    dev = precision.device
    model, inputs = _model(network, batch, "TRAIN", precision)

    def eager() -> None:
        for p in model.parameters():
            p.grad = None
        with precision.autocast():
            out = model(**inputs)
        out.loss.backward()

    t0 = time.perf_counter()
    for _ in range(3):
        eager()
    _sync(dev)
    row = {"variant": variant, "precision": precision.describe(),
           "start_s": round(time.perf_counter() - t0, 3)}
    t0 = time.perf_counter()
    for _ in range(steps):
        eager()
    _sync(dev)
    row["eager_ms"] = round((time.perf_counter() - t0) * 1000 / steps, 3)
    if dev.type == "cuda":
        row["replay_ms"] = round(_replay_ms(StepGraph(model, precision, train=True), inputs,
                                            steps), 3)
        test, test_inputs = _model(network, test_batch, "TEST", precision)
        with torch.no_grad():
            row["test_replay_ms"] = round(_replay_ms(StepGraph(test, precision, train=False),
                                                     test_inputs, steps), 3)
    if variant == "fast-find" and dev.type == "cuda":
        for key, work in (("kernels", lambda: kernel_table(eager, dev, 5)),
                          ("pools", lambda: _pools(model, inputs, precision))):
            try:
                row[key] = work()
            except Exception as exc:  # noqa: BLE001 - keep the times measured above
                row[key] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return row


def _pools(model, inputs: dict, precision, reps: int = 20) -> dict:
    """Forward + backward milliseconds of each MAX pooling layer at its training shape, bf16,
    by CUDA events, in three layouts (module docstring)."""
    import torch
    from converter.layers.pooling import CaffePooling
    from prototxt import caffe_pb2
    pools = {name: m for name, m in model.named_modules()
             if isinstance(m, CaffePooling) and m.method == caffe_pb2.PoolingParameter.MAX}
    shapes: dict[str, tuple] = {}

    def seen(name: str):
        def hook(module, args) -> None:  # None: the arguments go on unchanged
            shapes.setdefault(name, tuple(args[0].shape))
        return hook
    hooks = [m.register_forward_pre_hook(seen(name)) for name, m in pools.items()]
    with torch.no_grad(), precision.autocast():
        model(**inputs)
    for hook in hooks:
        hook.remove()
    last = torch.channels_last
    layouts = {"channels_last": (last, lambda m, x: m(x)),
               "nchw": (torch.contiguous_format, lambda m, x: m(x)),
               "nchw_converted": (last, lambda m, x: m(x.contiguous()).contiguous(memory_format=last))}
    rows, totals = [], dict.fromkeys(layouts, 0.0)
    for name, shape in shapes.items():
        row = {"layer": name, "shape": list(shape)}
        for layout, (fmt, run) in layouts.items():
            x = torch.randn(shape, device=precision.device, dtype=torch.bfloat16)
            x = x.contiguous(memory_format=fmt).requires_grad_()
            grad = torch.randn_like(run(pools[name], x))

            def step() -> None:
                x.grad = None
                run(pools[name], x).backward(grad)
            row[f"{layout}_ms"] = round(_gpu_ms(step, reps, warmup=3), 4)
            totals[layout] += row[f"{layout}_ms"]
        rows.append(row)
    return {"layers": rows, "total_ms": {k: round(v, 3) for k, v in totals.items()}}


def kernel_table(step, device, steps: int, top: int = 25) -> dict:
    """GPU kernel time per step and the `top` kernels by self time, over `steps` steps.
    CUPTI sees every kernel of the process, so this also profiles ONNX Runtime's
    (ort_variants.py)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    if device.type != "cuda":
        return {}
    step()
    _sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        _sync(device)
    rows = []
    for e in prof.key_averages():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        us = getattr(e, "self_device_time_total", None)
        if us is None:
            us = e.self_cuda_time_total
        rows.append((us / steps, e.count // steps, e.key))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    return {"kernel_ms_per_step": round(total / 1000, 3),
            "kernels_per_step": sum(r[1] for r in rows),
            "top": [{"ms": round(us / 1000, 4), "count": n, "share": round(us / total, 4),
                     "name": name[:120]} for us, n, name in rows[:top]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="googlenet")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--test-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--variant", choices=sorted(VARIANTS),
                        help="measure this one variant here (the parent runs each in a child)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    common = ["--network", args.network, "--batch", str(args.batch), "--test-batch",
              str(args.test_batch), "--steps", str(args.steps), "--device", args.device]
    if args.variant:
        print(json.dumps(measure(args.variant, args.network, args.batch, args.test_batch,
                                 args.steps, args.device)))
        return 0
    rows = []
    for variant in VARIANTS:
        res = subprocess.run([sys.executable, __file__, *common, "--variant", variant],
                             capture_output=True, text=True)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["?"])[-1]
            rows.append({"variant": variant, "error": f"exit {res.returncode}: {tail[:300]}"})
        else:
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    report = {"network": args.network, "batch": args.batch, "test_batch": args.test_batch,
              "steps": args.steps, "device": args.device, "variants": rows}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in rows:
            print({k: v for k, v in row.items() if k != "kernels"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
