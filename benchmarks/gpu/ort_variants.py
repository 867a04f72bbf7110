"""Batch-1 latency of one ONNX model under several ONNX Runtime CUDA configurations, each
replayed as a CUDA graph (inference.cuda_graph.GraphRunner), with its outputs against the CPU's.

    python benchmarks/gpu/ort_variants.py MODEL.onnx [--fp16 MODEL-fp16.onnx] [--seconds 2]
                                          [--batch 1] [--json]

Variants (CUDA provider options over GraphRunner's defaults: cuDNN's exhaustive search, TF32
off, Caffe's float32):

    fp32            the defaults
    fp32-tf32       use_tf32=1 (TensorFloat-32 convolutions: 10 mantissa bits)
    fp32-nhwc       prefer_nhwc=1 (ONNX Runtime's channels-last kernels)
    fp16, fp16-nhwc the --fp16 model (converter onnx --fp16), as is and with prefer_nhwc=1

For each: p50 / p99 milliseconds of run() (host input -> replay -> host output) over `seconds`,
and the largest absolute difference of its probabilities from ONNX Runtime's CPU provider on
8 seeded N(0, 50) inputs. A variant that fails records its error and the others go on. Without
an NVIDIA GPU every variant says so (the script still runs, e.g. in CI's smoke).

Then, for the variants named by --kernels (default fp32 and fp16-nhwc) that ran: where the time
goes. Each in a child process that imports PyTorch (its profiler reads CUPTI, which sees ONNX
Runtime's kernels too) and profiles 20 runs of the same session without the CUDA graph (the
graph replays the very kernels that run launches): GPU kernel and copy time per run, their
count, and the kernels that take most of it. p50 minus that time is what the graph leaves to
the host: the two copies' waits and the gaps between kernels.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO, Path(__file__).resolve().parent):   # the package; profile_step beside us
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

VARIANTS = {"fp32": ("fp32", {}), "fp32-tf32": ("fp32", {"use_tf32": "1"}),
            "fp32-nhwc": ("fp32", {"prefer_nhwc": "1"}), "fp16": ("fp16", {}),
            "fp16-nhwc": ("fp16", {"prefer_nhwc": "1"})}
PROFILED = "fp32,fp16-nhwc"


def measure(model: bytes, reference, options: dict, batch: int, seconds: float) -> dict:
    """One variant: latency percentiles and the max abs difference from `reference` (CPU)."""
    from inference.bench import timed_runs
    from inference.cuda_graph import GraphRunner
    runner = GraphRunner(model, batch, options=options)
    name = reference.get_inputs()[0].name
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(8):
        x = rng.normal(0, 50, runner.shape).astype(np.float32)
        cpu = reference.run([runner.output_name], {name: x})[0]
        worst = max(worst, float(np.abs(runner.run(x) - cpu).max()))
    x = rng.normal(0, 50, runner.shape).astype(np.float32)
    times, _ = timed_runs(runner.run, x, seconds, warmup=10, min_runs=20)
    return {"p50_ms": round(float(np.percentile(times, 50)), 4),
            "p99_ms": round(float(np.percentile(times, 99)), 4), "runs": len(times),
            "max_abs_vs_cpu": worst}


def kernels(model: bytes, options: dict, batch: int, runs: int = 20) -> dict:
    """One variant's GPU kernels per run (module docstring), in this process."""
    import torch
    from inference.cuda_graph import GraphRunner
    from profile_step import kernel_table
    runner = GraphRunner(model, batch, options={**options, "enable_cuda_graph": "0"})
    x = np.random.default_rng(0).normal(0, 50, runner.shape).astype(np.float32)
    for _ in range(10):
        runner.run(x)
    return kernel_table(lambda: runner.run(x), torch.device("cuda"), runs, top=15)


def _child_kernels(args, variant: str) -> dict:
    """`kernels` of one variant in a child process (PyTorch stays out of this one)."""
    argv = [sys.executable, __file__, str(args.model), "--batch", str(args.batch),
            "--profile-variant", variant, *(["--fp16", str(args.fp16)] if args.fp16 else [])]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=45)
    except subprocess.TimeoutExpired:   # ~10 s is usual; run.py gives the whole script 180 s
        return {"error": "timed out after 45 s"}
    if res.returncode != 0:
        return {"error": f"exit {res.returncode}: "
                         f"{(res.stderr.strip().splitlines() or ['?'])[-1][:300]}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _kernel_note(row: dict) -> str:
    """', GPU 1.234 ms in 85 kernels' (or the profile's error) when the variant was profiled."""
    k = row.get("kernels")
    if not k:
        return ""
    return f", GPU {k['kernel_ms_per_step']} ms in {k['kernels_per_step']} kernels" \
        if "error" not in k else f", kernels: {k['error']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--fp16", type=Path, help="the model's fp16 export")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--kernels", default=PROFILED,
                        help=f"variants to profile, comma-separated (default {PROFILED}; '' none)")
    parser.add_argument("--profile-variant", choices=sorted(VARIANTS),
                        help="profile this one variant here (the parent runs each in a child)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    models = {"fp32": args.model.read_bytes(),
              "fp16": args.fp16.read_bytes() if args.fp16 else None}
    from inference.providers import gpu_present
    if args.profile_variant:
        if not gpu_present():
            sys.exit("error: no NVIDIA GPU here")
        which, options = VARIANTS[args.profile_variant]
        print(json.dumps(kernels(models[which], options, args.batch)))
        return 0
    from converter.agreement import session
    reference = session(models["fp32"])
    rows = []
    for variant, (which, options) in VARIANTS.items():
        row = {"variant": variant, "options": options}
        if not gpu_present():
            row["error"] = "no NVIDIA GPU here"
        elif models[which] is None:
            row["error"] = "no --fp16 model given"
        else:
            try:
                row.update(measure(models[which], reference, options, args.batch, args.seconds))
            except Exception as exc:  # noqa: BLE001 - each variant's own failure is a result
                row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"[:300]
        rows.append(row)
    for row in rows:
        if row["variant"] in args.kernels.split(",") and "p50_ms" in row:
            row["kernels"] = _child_kernels(args, row["variant"])
    report = {"model": str(args.model), "fp16": str(args.fp16) if args.fp16 else None,
              "batch": args.batch, "variants": rows}
    print(json.dumps(report, indent=2) if args.json else
          "\n".join(f"{r['variant']}: " + (r.get("error") or f"p50 {r['p50_ms']} ms, max abs "
                                           f"{r['max_abs_vs_cpu']:.2e}" + _kernel_note(r))
                    for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
