"""Training speed: GoogLeNet and LeNet images/s in fp32 and fast mode, against the matmul peak.

    python benchmarks/trainer_googlenet.py [--seconds 60] [--classes 1000] [--threads N]
                                           [--nets googlenet lenet] [--out results.json]

What one iteration is: forward (DIGITS' train_val, TRAIN phase, all three GoogLeNet losses) +
backward + Caffe's SGD update (trainer.updates.caffe_apply_update: momentum 0.9, weight decay
2e-4, lr_mult/decay_mult from the prototxt), on seeded random data, as `trainer run` would do it
minus the data loading. GoogLeNet: batch 32, 3x224x224 (DIGITS' 256x256 images cropped to 224),
1000 classes by default. LeNet: batch 64, 1x28x28, 10 classes. Each measurement runs a few
warm-up iterations, then timed iterations for about --seconds (at least 3); images/s is from
the median iteration among those during which other processes used under 0.15 cores (the
machine is shared; see `measure`), or of all when fewer than 3 were quiet (then said so).

FLOPs per image count Convolution and InnerProduct multiply-adds from the model's shapes
(2 FLOPs each): forward = 2 MACs; training = forward + weight gradient (2 MACs) + input gradient
(2 MACs, skipped for layers that read a net input, whose gradient Caffe never computes).
Pooling, LRN, ReLU, softmax and the update are not counted. The peak is the best measured
torch.matmul rate on large square fp32 and bf16 matrices on this machine, and "of peak" compares
each run with the peak of the dtype its convolutions use.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from converter import build_model  # noqa: E402
from prototxt import atomic_write, caffe_pb2  # noqa: E402
from trainer.device import machine_description, select_precision  # noqa: E402
from trainer.timing import multiply_adds, random_inputs, standard_train_val  # noqa: E402
from trainer.updates import caffe_apply_update, init_history  # noqa: E402

NETS = {"googlenet": 32, "lenet": 64}  # DIGITS' default train batch sizes
CLASSES = {"googlenet": 1000, "lenet": 10}
QUIET = 0.15  # cores used by other processes below which an iteration counts as undisturbed


def matmul_peak(dtype: torch.dtype, sizes=(2048, 4096), repeat: int = 3) -> float:
    """Best GFLOP/s of torch.matmul on n x n matrices (2 n^3 FLOPs)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.matmul(a, b)  # warm-up (thread pool, oneDNN kernels)
        for _ in range(repeat):
            start = time.perf_counter()
            torch.matmul(a, b)
            best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


class OtherLoad:
    """Cores that other processes kept busy while this one ran (from /proc/stat minus our own
    CPU time): on a shared 2-core machine any of it slows every number here."""

    def __enter__(self) -> "OtherLoad":
        self.start = self._now()
        return self

    def __exit__(self, *exc) -> None:
        (busy0, own0, wall0), (busy1, own1, wall1) = self.start, self._now()
        self.wall = wall1 - wall0
        self.cores = max(0.0, ((busy1 - busy0) - (own1 - own0)) / self.wall)

    @staticmethod
    def _now() -> tuple[float, float, float]:
        try:
            fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
            busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            busy = float("nan")
        own = resource.getrusage(resource.RUSAGE_SELF)
        return busy, own.ru_utime + own.ru_stime, time.perf_counter()


def matmul_peaks(rounds: int = 5) -> tuple[dict[str, float], list[float]]:
    """fp32 and bf16 peaks: rounds until one is quiet (other load < QUIET), best of all rounds
    (a neighbour can only slow a GEMM down); also the other load of each round."""
    peaks = {"float32": 0.0, "bfloat16": 0.0}
    loads = []
    for _ in range(rounds):
        with OtherLoad() as other:
            for dtype in (torch.float32, torch.bfloat16):
                name = str(dtype).removeprefix("torch.")
                peaks[name] = max(peaks[name], matmul_peak(dtype))
        loads.append(other.cores)
        if other.cores < QUIET:
            break
    return peaks, loads


def training_flops(model) -> tuple[int, int]:
    """(forward, training) FLOPs per image (see the module docstring)."""
    macs = multiply_adds(model)
    infos = {i.name: i for i in model.layer_info}
    data_grad = sum(m for name, m in macs.items()
                    if not set(infos[name].bottoms) & set(model.input_names))
    total = sum(macs.values())
    return 2 * total, 2 * (2 * total + data_grad)


def solver() -> caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="fixed", momentum=0.9,
                                     weight_decay=2e-4, type="SGD")


def measure(name: str, batch: int, classes: int, fast: bool, seconds: float,
            warmup: int) -> dict:
    train_val, shapes = standard_train_val(name, classes, batch)
    model = build_model(train_val, "TRAIN", input_shapes=shapes, seed=0)
    forward_flops, train_flops = training_flops(model)
    precision = select_precision("cpu", fast)
    model = precision.prepare_model(model)
    inputs = {k: precision.prepare_input(v) for k, v in random_inputs(model, seed=1).items()}
    params = list(model.caffe_params())
    tensors = [p[2] for p in params]
    histories = [init_history("SGD", t) for t in tensors]
    lr_mults = [spec.lr_mult for *_, spec in params]
    decay_mults = [spec.decay_mult for *_, spec in params]
    sgd = solver()

    def iteration(i: int) -> float:
        for t in tensors:
            t.grad = None
        with precision.autocast():
            out = model(**inputs)
        out.loss.backward()
        caffe_apply_update(sgd, tensors, [t.grad for t in tensors], histories, lr_mults,
                           decay_mults, i)
        return float(out.loss.detach())

    for i in range(warmup):
        iteration(i)
    # Iterations run in chunks of >= 0.5 s (/proc/stat counts in 10 ms ticks); each chunk
    # records the cores other processes used meanwhile, and the median comes from the quiet
    # chunks' iterations (other load < QUIET) when there are 3, so a neighbour's burst on this
    # 2-core machine does not count. It gives up waiting for quiet after 3 x `seconds`.
    chunks: list[tuple[list[float], float]] = []
    losses, start = [], time.perf_counter()
    while True:
        times = [t for chunk, _ in chunks for t in chunk]
        quiet = [t for chunk, load in chunks if load < QUIET for t in chunk]
        elapsed = time.perf_counter() - start
        if len(times) >= 3 and elapsed >= seconds and (len(quiet) >= 3 or elapsed >= 3 * seconds):
            break
        chunk = []
        with OtherLoad() as other:
            while not chunk or sum(chunk) < 0.5:
                t0 = time.perf_counter()
                losses.append(iteration(warmup + len(losses)))
                chunk.append(time.perf_counter() - t0)
        chunks.append((chunk, other.cores))
    used = quiet if len(quiet) >= 3 else times
    loads = [load for chunk, load in chunks if used is times or load < QUIET]
    median = statistics.median(used)
    return {"net": name, "batch": batch, "classes": classes, "input": list(shapes["data"]),
            "crop": list(model.input_shapes["data"][1:]), "mode": "fast" if fast else "fp32",
            "precision": precision.describe(), "iterations": len(times),
            "quiet_iterations": len(quiet), "median_of": "quiet" if used is quiet else "all",
            "ms_per_iteration": median * 1000, "mean_ms": statistics.mean(used) * 1000,
            "images_per_s": batch / median, "forward_gflop_per_image": forward_flops / 1e9,
            "train_gflop_per_image": train_flops / 1e9,
            "achieved_gflop_s": train_flops * batch / median / 1e9,
            "autocast_dtype": str(precision.dtype or torch.float32).removeprefix("torch."),
            "loss_first_last": [losses[0], losses[-1]],
            "other_processes_cores": statistics.median(loads)}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", choices=list(NETS), default=list(NETS))
    parser.add_argument("--classes", type=int, help="GoogLeNet classes (default 1000)")
    parser.add_argument("--seconds", type=float, default=60, help="timed seconds per run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" /
                                             "trainer_googlenet.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    peaks, peak_loads = matmul_peaks()
    print(f"matmul peak: fp32 {peaks['float32']:.0f} GFLOP/s, bf16 {peaks['bfloat16']:.0f} "
          f"GFLOP/s (other load per round {', '.join(f'{x:.2f}' for x in peak_loads)})",
          file=sys.stderr, flush=True)
    rows = []
    for name in args.nets:
        classes = args.classes if name == "googlenet" and args.classes else CLASSES[name]
        for fast in (False, True):
            row = measure(name, NETS[name], classes, fast, args.seconds, args.warmup)
            row["fraction_of_peak"] = row["achieved_gflop_s"] / peaks[row["autocast_dtype"]]
            rows.append(row)
            print(f"  {name} {row['mode']}: {row['images_per_s']:.1f} images/s", file=sys.stderr,
                  flush=True)
    machine = machine_description()
    print(f"\nTraining (forward + backward + Caffe SGD update), median of timed iterations; "
          f"{machine['cpu']}, {machine['torch_threads']} threads, torch {machine['torch']}\n")
    print("| net | batch | input | mode | ms/iter | images/s | GFLOP/image (train) | GFLOP/s "
          "| of matmul peak | other load |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['net']} ({r['classes']} classes) | {r['batch']} | "
              f"{'x'.join(map(str, r['crop']))} | {r['mode']} ({r['autocast_dtype']}) | "
              f"{r['ms_per_iteration']:.1f} | {r['images_per_s']:.1f} | "
              f"{r['train_gflop_per_image']:.3f} | {r['achieved_gflop_s']:.1f} | "
              f"{100 * r['fraction_of_peak']:.0f}% | {r['other_processes_cores']:.2f}"
              f"{'' if r['median_of'] == 'quiet' else ' (never quiet)'} |")
    print(f"\nmatmul peak (best of 2048/4096 square GEMMs): fp32 {peaks['float32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bfloat16']:.0f} GFLOP/s; other load = cores other processes used "
          f"during the timed iterations (any of it slows every number on a 2-core machine)")
    result = {"benchmark": "trainer_googlenet", "date": dt.datetime.now(dt.timezone.utc)
              .isoformat(timespec="seconds"), "commit": git_commit(), "machine": machine,
              "matmul_peak_gflop_s": peaks, "matmul_other_processes_cores": peak_loads,
              "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "seconds_per_run": args.seconds,
              "warmup": args.warmup, "runs": rows}
    atomic_write(args.out, (json.dumps(result, indent=2) + "\n").encode())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
