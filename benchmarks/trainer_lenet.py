"""LeNet on MNIST, DIGITS' Getting Started settings: wall-clock to 99 % validation accuracy.

    python benchmarks/trainer_lenet.py [--epochs 10] [--workers 0] [--fast] [--keep DIR]

Builds the 28x28 grayscale MNIST dataset with the test images as the separate validation set
(60,000 / 10,000), writes the DIGITS model job (`trainer new --network lenet`, SGD lr 0.01, step
33 %, seed 1), trains it with `trainer run` semantics and reads the times from caffe_output.log
(glog timestamps, as DIGITS did): the time to the first test at >= 99.0 % accuracy, the final
accuracy, and the steady training speed. Writes benchmarks/results/trainer_lenet.json and the
training chart benchmarks/results/trainer_lenet.png.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trainer.device import machine_description  # noqa: E402

GLOG = re.compile(r"^I(\d{4}) (\d\d):(\d\d):(\d\d\.\d{6}) +\d+ \S+\] (.*)$")


def log_events(log: Path) -> list[tuple[float, str]]:
    """(seconds since the first line, message) for every glog line."""
    events = []
    for line in log.read_text().splitlines():
        m = GLOG.match(line)
        if m:
            seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            events.append((seconds, m.group(5)))
    start = events[0][0]
    return [((t - start) % 86400, msg) for t, msg in events]


def tests_from_log(log: Path) -> list[dict]:
    tests, iteration = [], None
    for t, message in log_events(log):
        m = re.match(r"Iteration (\d+), Testing net", message)
        if m:
            iteration = int(m.group(1))
        m = re.match(r"\s*Test net output #\d+: accuracy = ([\d.e+-]+)", message)
        if m:
            tests.append({"iteration": iteration, "seconds": round(t, 2), "accuracy": float(m.group(1))})
    return tests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the dataset and job here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="lenet-bench-"))
    py = sys.executable
    env = dict(os.environ)
    # their own output goes to stderr: stdout carries only this benchmark's table
    run = lambda *cmd: subprocess.run([py, "-m", *cmd], check=True, cwd=REPO, env=env,  # noqa: E731
                                      stdout=sys.stderr)
    t0 = time.monotonic()
    run("lmdb_builder", "mnist", "--out", str(work / "mnist"), "--test-as-val", "--force")
    build_s = time.monotonic() - t0
    run("trainer", "new", "--dataset", str(work / "mnist"), "--network", "lenet", "--out",
        str(work / "lenet"), "--epochs", str(args.epochs), "--seed", "1", "--force")
    t0 = time.monotonic()
    run("trainer", "run", str(work / "lenet" / "solver.prototxt"), "--workers", str(args.workers),
        "--no-progress", *(["--fast"] if args.fast else []))
    train_s = time.monotonic() - t0
    tests = tests_from_log(work / "lenet" / "caffe_output.log")
    first99 = next((t for t in tests if t["accuracy"] >= 0.99), None)
    events = log_events(work / "lenet" / "caffe_output.log")
    iter_per_s = [float(re.match(r"Iteration \d+ \(([\d.]+) iter/s", msg).group(1))
                  for _, msg in events if re.match(r"Iteration \d+ \([\d.]+ iter/s", msg)][1:]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    result = {
        "benchmark": "LeNet MNIST (DIGITS Getting Started, 60,000 / 10,000), time to 99 %",
        "date": datetime.now().isoformat(timespec="seconds"), "commit": commit,
        "machine": machine_description(), "epochs": args.epochs, "workers": args.workers,
        "fast": args.fast, "dataset_build_s": round(build_s, 1), "train_s": round(train_s, 1),
        "seconds_to_99": first99["seconds"] if first99 else None,
        "iteration_to_99": first99["iteration"] if first99 else None,
        "final_accuracy": tests[-1]["accuracy"] if tests else None,
        "best_accuracy": max(t["accuracy"] for t in tests) if tests else None,
        "median_iter_per_s": sorted(iter_per_s)[len(iter_per_s) // 2] if iter_per_s else None,
        "tests": tests,
    }
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "trainer_lenet.json").write_text(json.dumps(result, indent=2) + "\n")
    if (work / "lenet" / "training.png").is_file():
        shutil.copyfile(work / "lenet" / "training.png", out / "trainer_lenet.png")
    print("| epochs | train s | s to 99 % | iteration | final acc | iter/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.epochs} | {train_s:.0f} | {result['seconds_to_99']} | {result['iteration_to_99']} | "
          f"{100 * (result['final_accuracy'] or 0):.2f} % | {result['median_iter_per_s']} |")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
