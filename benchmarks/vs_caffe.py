"""redigits against a real BVLC Caffe 1.0 CPU build, side by side in one run (issue 12).

    sudo bash benchmarks/peers/install_caffe.sh          # once: /opt/caffe/bin/caffe
    python benchmarks/vs_caffe.py [--only lenet,googlenet] [--repeat 3] [--caffe /opt/caffe/bin/caffe]

Rows (each whole process, wall clock, the median of --repeat runs taken in turns so that other
load on the machine hits both alike):
- lenet: DIGITS' LeNet train_val (MNIST 28x28 gray, batch 64), SGD from the same initial
  .caffemodel, `caffe train -solver S -weights W` vs `python -m trainer run S --weights W`;
  --iterations (300) iterations, no test, no snapshot. The losses both print every 100
  iterations are compared too (the same data, weights and formulas: they agree to ~1e-3).
- googlenet: the seed job's train_val (256x256x3 colour, crop 224, batch 32) forward + backward,
  `caffe time -model T -iterations N` vs `python -m trainer time T --iterations N` (both read
  the Data layer's LMDB for the input shape; "Average Forward-Backward" of each) and the whole
  process time of `trainer run` for a few iterations is not part of it.
Both sides get the same number of threads (--threads, default: every core; OpenBLAS and
PyTorch's intra-op pool). Results: a table, and JSON in benchmarks/results/vs_caffe.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_flags  # noqa: E402

LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+0-9.eE]+)")
RATE = re.compile(r"Iteration (\d+) \(([0-9.eE+-]+) iter/s")  # both print it at display
FORWARD_BACKWARD = re.compile(r"Average Forward-Backward: ([0-9.eE+-]+) ms")


@dataclass
class Row:
    work: str
    caffe_s: float
    redigits_s: float
    speedup: float           # caffe / redigits: > 1 means redigits is faster
    runs: int
    detail: str


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               GLOG_logtostderr="1", PYTHONPATH=str(ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    shared = ROOT.parent / "shared/data/mnist"
    if "REDIGITS_MNIST_DIR" not in env and shared.is_dir():
        env["REDIGITS_MNIST_DIR"] = str(shared)
    return env


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited {done.returncode}:\n"
                         f"{done.stdout[-3000:]}")
    return seconds, done.stdout


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def _set_solver(path: Path, **fields: object) -> None:
    """Rewrite top-level scalar solver fields (text format, values as written) in place."""
    lines = [ln for ln in path.read_text().splitlines()
             if ln.split(":")[0].strip() not in fields]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    path.write_text("\n".join(lines) + "\n")


def _steady_rate(log: str) -> float:
    """Iterations/s over the last display interval (past start-up): the training loop alone."""
    rates = [(int(m.group(1)), float(m.group(2))) for m in RATE.finditer(log)]
    return max(rates)[1] if rates else float("nan")


def _losses(log: str) -> dict[int, float]:
    return {int(m.group(1)): float(m.group(2)) for m in LOSS.finditer(log)}


def _dataset(work: Path, size: int, channels: int, limit: int | None, env: dict[str, str]) -> Path:
    out = work / f"mnist{size}x{channels}"
    if not out.exists():
        cmd = _py("-m", "lmdb_builder", "mnist", "--out", str(out), "--image-size", str(size),
                  "--channels", str(channels), "--test-as-val")
        if limit:
            cmd += ["--limit", str(limit)]
        _timed(cmd, env, work)
    return out


def _job(work: Path, name: str, dataset: Path, network: str, env: dict[str, str]) -> Path:
    job = work / name
    _timed(_py("-m", "trainer", "new", "--dataset", str(dataset), "--network", network,
                   "--out", str(job), "--epochs", "1", "--seed", "1", "--force"), env, work)
    return job


def bench_lenet(work: Path, caffe: str, iterations: int, repeat: int, threads: int) -> Row:
    env = _env(threads)
    job = _job(work, "lenet", _dataset(work, 28, 1, None, env), "lenet", env)
    solver = job / "solver.prototxt"
    # No test (Caffe insists on test_interval > 0 with test nets: one never reached), no
    # snapshot: the row is the training loop with its start-up.
    _set_solver(solver, max_iter=iterations, display=100, test_interval=10 * iterations,
                test_initialization="false", snapshot=0, snapshot_after_train="false")
    weights = job / "init.caffemodel"
    _timed(_py("-c", "from converter import build_model, save_caffemodel;"
                   f"save_caffemodel(build_model({str(job / 'train_val.prototxt')!r}, 'TRAIN', "
                   f"input_shapes={{'data': (1, 28, 28)}}, seed=1), {str(weights)!r})"), env, job)
    caffe_times, ours_times, caffe_rates, ours_rates = [], [], [], []
    caffe_log = ours_log = ""
    for _ in range(repeat):
        s, caffe_log = _timed([caffe, "train", "-solver", str(solver), "-weights", str(weights)],
                              env, job)
        caffe_times.append(s)
        caffe_rates.append(_steady_rate(caffe_log))
        s, ours_log = _timed(_py("-m", "trainer", "run", str(solver), "--weights", str(weights),
                                 "--no-progress"), env, job)
        ours_times.append(s)
        ours_rates.append(_steady_rate(ours_log))
    a, b = _losses(caffe_log), _losses(ours_log)
    common = sorted(set(a) & set(b))
    worst = max((abs(a[i] - b[i]) for i in common), default=float("nan"))
    c, r = statistics.median(caffe_times), statistics.median(ours_times)
    detail = (f"losses at iterations {', '.join(map(str, common))}: caffe "
              f"{', '.join(f'{a[i]:.4f}' for i in common)}; redigits "
              f"{', '.join(f'{b[i]:.4f}' for i in common)} (max diff {worst:.2g}); steady "
              f"training loop (the last display interval) caffe "
              f"{statistics.median(caffe_rates):.1f} iter/s, redigits "
              f"{statistics.median(ours_rates):.1f} iter/s; runs caffe "
              f"{', '.join(f'{t:.1f}' for t in caffe_times)} s, redigits "
              f"{', '.join(f'{t:.1f}' for t in ours_times)} s")
    return Row(f"LeNet train_val batch 64, {iterations} SGD iterations, whole process", c, r,
               c / r, repeat, detail)


def bench_googlenet(work: Path, caffe: str, iterations: int, repeat: int, threads: int,
                    images: int) -> Row:
    env = _env(threads)
    job = _job(work, "googlenet", _dataset(work, 256, 3, images, env), "googlenet", env)
    train_val = job / "train_val.prototxt"
    caffe_ms, ours_ms = [], []
    for _ in range(repeat):
        _, log = _timed([caffe, "time", "-model", str(train_val), "-iterations", str(iterations)],
                        env, job)
        caffe_ms.append(float(FORWARD_BACKWARD.findall(log)[-1]))
        _, log = _timed(_py("-m", "trainer", "time", str(train_val), "--iterations",
                            str(iterations)), env, job)
        ours_ms.append(float(FORWARD_BACKWARD.findall(log)[-1]))
    c, r = statistics.median(caffe_ms) / 1000, statistics.median(ours_ms) / 1000
    detail = (f"Average Forward-Backward per batch of 32 over {iterations} iterations: caffe "
              f"{', '.join(f'{t:.0f}' for t in caffe_ms)} ms, redigits "
              f"{', '.join(f'{t:.0f}' for t in ours_ms)} ms")
    return Row("GoogLeNet seed train_val forward+backward, batch 32, fp32 (s per iteration)",
               c, r, c / r, repeat, detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caffe", default=os.environ.get("CAFFE", "/opt/caffe/bin/caffe"))
    parser.add_argument("--only", default="lenet,googlenet")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--iterations", type=int, default=300, help="LeNet SGD iterations")
    parser.add_argument("--googlenet-iterations", type=int, default=4)
    parser.add_argument("--googlenet-images", type=int, default=400,
                        help="MNIST images in the 256x256 dataset (caffe time reads a few batches)")
    parser.add_argument("--work", help="keep the datasets and jobs here (default: a temp folder)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/vs_caffe.json"))
    args = parser.parse_args(argv)
    if not Path(args.caffe).exists():
        print(f"error: no Caffe at {args.caffe}; run sudo bash benchmarks/peers/install_caffe.sh "
              "or pass --caffe", file=sys.stderr)
        return 2
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="vs-caffe-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        if "lenet" in only:
            rows.append(bench_lenet(work, args.caffe, args.iterations, args.repeat, args.threads))
        if "googlenet" in only:
            rows.append(bench_googlenet(work, args.caffe, args.googlenet_iterations, args.repeat,
                                        args.threads, args.googlenet_images))
    flags = " ".join(cpu_flags()) or "no avx2"
    load = os.getloadavg()[0]
    print(f"BVLC Caffe 1.0 ({args.caffe}) and redigits side by side; CPU flags: {flags}; "
          f"{os.cpu_count()} cores, {args.threads} threads each; load average {load:.1f} at the "
          f"end; median of {args.repeat} run(s) each, taken in turns")
    print("| work | Caffe s | redigits s | speed-up | details |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row.work} | {row.caffe_s:.2f} | {row.redigits_s:.2f} | {row.speedup:.2f}x | "
              f"{row.detail} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "cpu_flags": flags, "cores": os.cpu_count(), "threads": args.threads,
        "load_average": load, "caffe": args.caffe, "rows": [asdict(r) for r in rows]},
        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
