"""Run every benchmark, one after another, and write benchmarks/RESULTS.md.

    python benchmarks/run_all.py [--only NAME ...] [--skip NAME ...] [--quick]

Each benchmark script prints a markdown table of what it measured (and writes its JSON under
benchmarks/results/); RESULTS.md gathers those tables under one header naming the machine (CPU
model, cores, GPU), the date and the commit, with the command that made each table, the
comparison it belongs to, and the plots. Benchmarks run one at a time so that they do not share
the cores. A failing benchmark is reported in RESULTS.md with its error; the others still run.
--quick shortens the long ones (fewer seconds, fewer epochs) for a smoke run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trainer.device import machine_description  # noqa: E402


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    about: str                      # the comparison the numbers belong to
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()     # files under benchmarks/results/


BENCHES = (
    Bench("lmdb_build", "lmdb_build.py",
          "lmdb_builder (issue 4): MNIST into DIGITS LMDB, 1 vs 2 worker processes; goal 28x28 "
          "in < 15 s", ("--sizes", "28x28x1", "256x256x3"),
          ("--sizes", "28x28x1", "--limit", "6000")),
    Bench("converter_googlenet", "converter_googlenet.py",
          "converter (issue 3): GoogLeNet deploy latency, ONNX Runtime vs OpenCV dnn vs PyTorch in "
          "the same run; goal ORT <= 0.75x OpenCV", (), ("--repeat", "5")),
    Bench("trainer_googlenet", "trainer_googlenet.py",
          "trainer (issue 5): GoogLeNet training images/s at batch 32, 224x224, fp32 and --fast, "
          "against the machine's measured matmul peak; LeNet too", ("--seconds", "60"),
          ("--seconds", "10")),
    Bench("trainer_lenet", "trainer_lenet.py",
          "trainer (issue 5): LeNet on MNIST with DIGITS' Getting Started settings, wall-clock to "
          "99 % validation accuracy", ("--epochs", "10"), ("--epochs", "1"),
          ("trainer_lenet.png",)),
    Bench("inference_latency", "inference_latency.py",
          "inference (issue 6): ONNX Runtime batch-1 latency and batch-64 throughput, LeNet and "
          "GoogLeNet", (), ("--seconds", "1")),
    Bench("data_path", "data_path.py",
          "trainer (issue 13): the training data path alone in the seed's configuration (256x256x3 "
          "PNG, random 224 crops, mirror, mean image, batch 32): images/s per worker; goal >= 3,000 "
          "images/s into the model on a 16-core GPU machine", ("--workers", "1,2"),
          ("--seconds", "1", "--images", "200")),
    Bench("inference_server", "inference_server.py",
          "inference (issue 6): the HTTP server with dynamic batching, requests/s and p50/p99 at "
          "concurrency 1, 8, 32", (), ("--seconds", "2")),
)


def _gpu_section() -> str:
    """The newest recorded GPU run (benchmarks/gpu/run.sh on a lent GPU machine; it is not
    re-run here), with its notes."""
    runs = sorted(p for p in (REPO / "benchmarks" / "results" / "gpu").glob("*/results.md"))
    if not runs:
        return ""
    folder = runs[-1].parent
    notes = folder / "NOTES.md"
    extra = f"\n{notes.read_text().strip()}\n" if notes.is_file() else ""
    table = runs[-1].read_text().strip().split("\n", 1)[1]  # without its own title
    return (f"\n## gpu (recorded, not re-run)\n\nbenchmarks/gpu/run.sh on a lent GPU machine; raw "
            f"output in benchmarks/results/gpu/{folder.name}/.\n{extra}\n{table}\n")


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                         text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return (out.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def _tables(text: str) -> str:
    """The markdown tables a script printed, each with the line just before it (its caption);
    the last lines verbatim when it printed no table."""
    lines = text.splitlines()
    keep: list[str] = []
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        if i == 0 or not lines[i - 1].startswith("|"):  # a table starts
            caption = lines[i - 1].strip() if i else ""
            keep += ["", caption, ""] if caption else [""]
        keep.append(line)
    return "\n".join(keep).strip() or "```\n" + "\n".join(lines[-15:]) + "\n```"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [b.name for b in BENCHES]
    parser.add_argument("--only", nargs="+", choices=names)
    parser.add_argument("--skip", nargs="+", choices=names, default=[])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    machine = machine_description()
    started = datetime.now()
    env = dict(os.environ)
    shared_mnist = REPO.parent / "shared" / "data" / "mnist"
    if not env.get("REDIGITS_MNIST_DIR") and shared_mnist.is_dir():
        env["REDIGITS_MNIST_DIR"] = str(shared_mnist)  # as scripts/main_job.sh does
    sections = []
    for bench in BENCHES:
        if (args.only and bench.name not in args.only) or bench.name in args.skip:
            continue
        extra = bench.quick if args.quick else bench.args
        command = ["python", f"benchmarks/{bench.script}", *extra]
        print(f"== {' '.join(command)}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, f"benchmarks/{bench.script}", *extra], cwd=REPO,
                              capture_output=True, text=True, env=env)
        seconds = time.monotonic() - t0
        print(proc.stdout[-4000:], flush=True)
        if proc.returncode:
            print(proc.stderr[-4000:], file=sys.stderr, flush=True)
            body = f"**failed** (exit {proc.returncode}):\n\n```\n{proc.stderr[-2000:].strip()}\n```"
        else:
            body = _tables(proc.stdout)
        plots = "".join(f"\n\n![{p}](results/{p})" for p in bench.plots
                        if (REPO / "benchmarks" / "results" / p).is_file())
        sections.append(f"## {bench.name}\n\n{bench.about}.\n\n`{' '.join(command)}` "
                        f"({seconds:.0f} s)\n\n{body}{plots}\n")
    gpu = machine.get("gpu") or "none"
    header = (f"# Benchmark results\n\nMeasured by `python benchmarks/run_all.py"
              f"{' --quick' if args.quick else ''}` on {started:%Y-%m-%d %H:%M}, commit "
              f"{_commit()}.\n\nMachine: {machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} "
              f"logical cores, GPU: {gpu}; torch {machine.get('torch', '?')}, "
              f"{machine.get('torch_threads', '?')} threads.\n\nOnly measured numbers appear "
              f"below; JSON with every figure is in benchmarks/results/.\n")
    args.out.write_text(header + "\n" + "\n".join(sections) + _gpu_section())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
