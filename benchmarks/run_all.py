"""Run every benchmark, one after another, and write benchmarks/RESULTS.md.

    python benchmarks/run_all.py [--only NAME ...] [--skip NAME ...] [--quick]

Each benchmark script prints a markdown table of what it measured (and writes its JSON under
benchmarks/results/); RESULTS.md gathers those tables under one header naming the machine (CPU
model, cores, GPU), the date and the commit, with the command that made each table, the
comparison it belongs to, and the plots. Benchmarks run one at a time so that they do not share
the cores. A failing benchmark is reported in RESULTS.md with its error; the others still run.
--quick shortens the long ones (fewer seconds, fewer epochs) for a smoke run. With --only or
--skip, the sections of the benchmarks not run are kept from the existing RESULTS.md as they
were; each section names its own date, commit and CPU flags.

The rows against the C++ tools (issue 12) need a real Caffe: `sudo bash
benchmarks/peers/install_caffe.sh` (Debian's BVLC Caffe 1.0 CPU build under /opt/caffe); the
int8 row needs a trained LeNet: `--lenet model.onnx --lenet-dataset DATASET_DIR` (what `bash
scripts/main_job.sh` makes), else it is reported as skipped.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_flags  # noqa: E402
from trainer.device import machine_description  # noqa: E402


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    about: str                      # the comparison the numbers belong to
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()     # files under benchmarks/results/
    needs_lenet: bool = False       # --lenet MODEL.onnx --lenet-dataset DIR are appended


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
    Bench("vs_caffe", "vs_caffe.py",
          "trainer vs BVLC Caffe 1.0 (issue 12): LeNet 300 SGD iterations whole process (`caffe "
          "train`) and GoogLeNet forward+backward batch 32 (`caffe time`), same run; goal >= 1.5x "
          "faster", ("--repeat", "3"), ("--repeat", "1", "--iterations", "50",
                                         "--googlenet-iterations", "1")),
    Bench("lmdb_vs_caffe", "lmdb_build.py",
          "lmdb_builder vs BVLC Caffe 1.0's convert_imageset (issue 12): 10,000 MNIST PNGs from a "
          "list file into a 256x256x3 PNG LMDB, same run; goal >= 2x faster",
          ("--vs-caffe", "--repeats", "3"), ("--vs-caffe", "--repeats", "1", "--no-gray")),
    Bench("quantized", "quantized.py",
          "converter --int8 (issue 12): ONNX Runtime CPU int8 vs fp32, GoogLeNet and LeNet batch 1 "
          "and 32, LeNet's top-1 on MNIST's test set; goal int8 >= 2x faster at <= 0.2 % top-1 "
          "loss", (), ("--repeat", "5", "--seconds", "0.5"), needs_lenet=True),
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


def _kept_sections(path: Path) -> dict[str, str]:
    """The `## name` sections of an existing RESULTS.md, by name (the gpu section excluded:
    it is rebuilt from benchmarks/results/gpu/)."""
    if not path.is_file():
        return {}
    parts = re.split(r"(?m)^(?=## )", path.read_text())
    return {part.split()[1]: part.rstrip() + "\n" for part in parts[1:]
            if part.split()[1] != "gpu"}


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
    parser.add_argument("--lenet", help="a trained LeNet .onnx for the int8 row")
    parser.add_argument("--lenet-dataset", help="its dataset folder (calibration: train_db)")
    args = parser.parse_args()
    machine = machine_description()
    started = datetime.now()
    env = dict(os.environ)
    shared_mnist = REPO.parent / "shared" / "data" / "mnist"
    if not env.get("REDIGITS_MNIST_DIR") and shared_mnist.is_dir():
        env["REDIGITS_MNIST_DIR"] = str(shared_mnist)  # as scripts/main_job.sh does
    kept = _kept_sections(args.out) if args.only or args.skip else {}
    flags = " ".join(cpu_flags()) or "none of avx2/avx512"
    commit = _commit()  # before the benchmarks rewrite their JSON files
    provenance = (f"measured {started:%Y-%m-%d %H:%M}, commit {commit}, on "
                  f"{machine.get('cpu', '?')} ({flags}), {machine.get('logical_cores', '?')} cores")
    sections = []
    for bench in BENCHES:
        if (args.only and bench.name not in args.only) or bench.name in args.skip:
            if bench.name in kept:
                sections.append(kept[bench.name])
            continue
        extra = bench.quick if args.quick else bench.args
        if bench.needs_lenet:
            if not (args.lenet and args.lenet_dataset):
                sections.append(f"## {bench.name}\n\n{bench.about}.\n\nskipped: run_all.py "
                                "needs --lenet MODEL.onnx --lenet-dataset DIR for it.\n")
                continue
            calibrate = str(Path(args.lenet_dataset) / "train_db")
            extra = (*extra, "--lenet", args.lenet, "--calibrate", calibrate)
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
                        f"({seconds:.0f} s; {provenance})\n\n{body}{plots}\n")
    gpu = machine.get("gpu") or "none"
    header = (f"# Benchmark results\n\nLast written by `python benchmarks/run_all.py"
              f"{' --quick' if args.quick else ''}` on {started:%Y-%m-%d %H:%M}, commit "
              f"{commit}.\n\nMachine: {machine.get('cpu', '?')} ({flags}), "
              f"{machine.get('logical_cores', '?')} logical cores, GPU: {gpu}; torch "
              f"{machine.get('torch', '?')}, {machine.get('torch_threads', '?')} threads. Each "
              f"section names when and where it was measured; machines differ between sessions "
              f"(AVX2 only, or AVX-512 with bf16): compare the ratios measured in one run.\n\n"
              f"Only measured numbers appear below; JSON with every figure is in "
              f"benchmarks/results/.\n")
    args.out.write_text(header + "\n" + "\n".join(sections) + _gpu_section())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
