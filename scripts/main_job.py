"""Helpers of scripts/main_job.sh: a training-time estimate before a long run, and the summary
table beside the seed DIGITS job's figures.

    python scripts/main_job.py estimate MODEL_DIR [--device cpu|cuda] [--iterations 3]
    python scripts/main_job.py summary --dataset DATASET_DIR --job MODEL_DIR \
           --train-seconds S --total-seconds S
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The seed job (../shared/reference/seed-job/SOURCE.md): DIGITS 6.1 + NVIDIA Caffe 0.15, GoogLeNet
# on 256x256 colour MNIST, batch 32, lr 0.01, 2 epochs, on an unnamed GPU.
SEED = {
    "records": "45,002 train / 14,998 val",
    "network": "GoogLeNet, 256x256x3 squash, batch 32, 2 epochs",
    "top1": "96.2 % (validation)",
    "top5": "99.9 % (validation)",
    "train": "24 min 6 s (GPU)",
    "latency": "4.94 ms per image (batch 1)",
}


def _minutes(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def cmd_estimate(args: argparse.Namespace) -> int:
    """Train a few real iterations of the job (into a temporary folder, tests and snapshots
    off), then scale the steady per-iteration time up to max_iter plus the tests' batches."""
    import statistics
    import tempfile

    from prototxt import read_solver
    from trainer.solver import Options, Solver

    job = Path(args.job)
    max_iter = read_solver(job / "solver.prototxt").max_iter  # the probe runs a few only
    with tempfile.TemporaryDirectory() as tmp:
        probe = Solver(job / "solver.prototxt", Options(
            device=args.device, out=Path(tmp), max_iter=args.iterations + 2, log_file=None,
            echo=False, progress=False))
        test_interval = probe.param.test_interval
        test_iter = probe.tests[0].phase_net.test_iter if probe.tests else 0
        test_batch = probe.batches.specs[probe.tests[0].feeds[0][0]].batch_size if probe.tests else 0
        probe.param.test_interval = 0
        probe.param.snapshot = 0
        probe.param.snapshot_after_train = False
        result = probe.solve()
    times = [result.finished_at[i] - result.finished_at[i - 1] for i in range(2, args.iterations + 2)]
    per_iter = statistics.median(times)
    tests = (max_iter // test_interval + 1) if test_interval else 0
    # a test batch: forward only (about a third of forward+backward), at its own batch size
    per_test_batch = per_iter / 3 * test_batch / probe.batch_size if test_batch else 0.0
    total = per_iter * max_iter + per_test_batch * test_iter * tests
    print(f"estimate from {args.iterations} timed iterations on {probe.device}: "
          f"{1000 * per_iter:.0f} ms per iteration x {max_iter} iterations + {tests} tests of "
          f"{test_iter} batches = about {_minutes(total)} of training")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    dataset = json.loads((Path(args.dataset) / "summary.json").read_text())
    job = Path(args.job)
    many = json.loads((job / "classify_many.json").read_text())
    bench = json.loads((job / "bench.json").read_text())
    info = json.loads((job / "info.json").read_text())
    dbs = dataset["databases"]
    records = " / ".join(f"{dbs[n]['records']:,} {n.removesuffix('_db')}" for n in ("train_db", "val_db")
                         if n in dbs)
    image = dataset.get("image", {})
    top_k = next(k for k in many if k.startswith("top") and k.endswith("_accuracy") and k != "top1_accuracy")
    rows = {r["batch"]: r for r in bench["rows"]}
    batch1 = rows.get(1)
    latency = (f"{batch1['p50_ms']:.2f} ms per image (batch 1, p50, {bench['provider']})"
               if batch1 else "-")
    biggest = max(rows)
    throughput = f"{rows[biggest]['images_per_s']:.0f} images/s at batch {biggest}"
    network = info.get("network", info.get("name", job.name))
    lines = [
        "| | this run | seed DIGITS job |",
        "|---|---|---|",
        f"| records | {records} | {SEED['records']} |",
        f"| network | {network}, {image.get('height', '?')}x{image.get('width', '?')}x"
        f"{image.get('channels', '?')} | {SEED['network']} |",
        f"| top-1 accuracy | {100 * many['top1_accuracy']:.2f} % ({many['count']:,} MNIST test "
        f"images) | {SEED['top1']} |",
        f"| top-5 accuracy | {100 * many[top_k]:.2f} % | {SEED['top5']} |",
        f"| training time | {_minutes(args.train_seconds)} | {SEED['train']} |",
        f"| ONNX latency | {latency}; {throughput} | {SEED['latency']} |",
        f"| whole job | {_minutes(args.total_seconds)} | - |",
    ]
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/main_job.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("estimate")
    p.add_argument("job")
    p.add_argument("--device")
    p.add_argument("--iterations", type=int, default=3)
    p.set_defaults(func=cmd_estimate)
    p = commands.add_parser("summary")
    p.add_argument("--dataset", required=True)
    p.add_argument("--job", required=True)
    p.add_argument("--train-seconds", type=float, required=True)
    p.add_argument("--total-seconds", type=float, required=True)
    p.set_defaults(func=cmd_summary)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
