"""Dataset build speed: MNIST into DIGITS LMDBs, and side by side with Caffe's convert_imageset.

    python benchmarks/lmdb_build.py [--mnist-dir D] [--limit N] [--workers 1 2] [--sizes 28x28x1 256x256x3]
    python benchmarks/lmdb_build.py --vs-caffe [--repeats 3] [--limit N] [--no-gray] [--png-level L]

Default mode: builds MNIST (train + val) at each size with 1 and N worker processes and prints
images per second (train + val records over the whole build, mean included).

--vs-caffe (issue 12): writes the 10,000 MNIST test PNGs and a list file `<label>/<n>.png label`
once (untimed), then times, as whole processes, wall clock, on the same list in the same run:

- Caffe: `convert_imageset --encoded --encode_type=png --resize_height=256 --resize_width=256
  ROOT/ LIST DB` (one core, as Caffe is; a grey PNG read in colour, as DIGITS stored it);
- redigits: `python -m lmdb_builder list LIST --root ROOT --labels labels.txt --out DIR` (DIGITS'
  way: 256x256x3 png, squash, shuffled, mean.binaryproto + mean.jpg), with its default workers
  (every core) and with `--workers 1`;
- and, unless --no-gray, the 28x28 grey row: `convert_imageset --gray --encoded --encode_type=png`
  (no resize) against `--image-size 28 --channels 1`.

Python modules are compiled to bytecode once, untimed (a warm-up build of 50 images with a
PYTHONPYCACHEPREFIX in the temporary folder), as an installed package would have them; Caffe is
a compiled binary. Runs are interleaved (Caffe, redigits, redigits 1 worker, ...) --repeats times; the ratio is
Caffe's wall time over redigits' in each repeat, and the median is reported, with the load
average before each run: other work on these 2-core machines slows both. Prints markdown tables
and writes benchmarks/results/lmdb_build.json (atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_flags  # noqa: E402
from lmdb_builder.build import BuildOptions, build_dataset  # noqa: E402
from lmdb_builder.encode import default_workers  # noqa: E402
from lmdb_builder.mnist import find_mnist_dir, load_mnist, plan_mnist  # noqa: E402
from lmdb_builder.mnist_images import write_mnist_images  # noqa: E402
from lmdb_builder.plan import DEFAULT_PNG_LEVEL, ImageSettings  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "lmdb_build.json"
CAFFE = "/opt/caffe/bin/convert_imageset"


def _size(text: str) -> tuple[int, int, int]:
    h, w, c = (int(x) for x in text.split("x"))
    return h, w, c


def _cpu() -> float:
    """User + system seconds of this process and its finished children (the worker pools)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# ------------------------------------------------------------------ default mode: MNIST


def mnist_mode(args: argparse.Namespace) -> int:
    plan = plan_mnist(load_mnist(find_mnist_dir(args.mnist_dir, download=False), limit=args.limit))
    count = sum(len(v) for v in plan.splits.values())
    rows = []
    with tempfile.TemporaryDirectory(prefix="lmdb-bench-") as tmp:
        for h, w, c in args.sizes:
            base = None
            for workers in args.workers:
                out = Path(tmp) / f"{h}x{w}x{c}-{workers}"
                start = time.perf_counter()
                cpu0 = _cpu()
                build_dataset(plan, out, ImageSettings(h, w, c, "squash", args.encoding, png_level=args.png_level),
                              BuildOptions(workers=workers, progress=False))
                seconds = time.perf_counter() - start
                cpu = _cpu() - cpu0
                size = sum(f.stat().st_size for f in out.rglob("data.mdb"))
                base = base or seconds
                rows.append((f"{h}x{w}x{c}", workers, count, seconds, count / seconds, base / seconds, cpu, size))
                print(f"  {h}x{w}x{c} workers {workers}: {seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"{'size':<11} {'workers':>7} {'images':>7} {'seconds':>8} {'images/s':>9} {'speed-up':>8} "
          f"{'CPU s':>7} {'LMDB MB':>8}")
    for name, workers, n, seconds, rate, speedup, cpu, size in rows:
        print(f"{name:<11} {workers:>7} {n:>7} {seconds:>8.1f} {rate:>9.0f} {speedup:>7.2f}x {cpu:>7.1f} "
              f"{size / 1e6:>8.0f}")
    print(f"({os.cpu_count()} CPUs {'/'.join(cpu_flags())}, {args.encoding} level {args.png_level}; CPU s = "
          f"this process and its workers; load average {os.getloadavg()[0]:.1f}: other work on the "
          "machine slows the wall time)")
    return 0


# ------------------------------------------------------------------ --vs-caffe


@dataclass
class Run:
    row: str            # 256x256x3 or 28x28x1
    tool: str           # caffe, redigits, redigits-1
    repeat: int
    seconds: float
    cpu_seconds: float
    records: int
    value_bytes: int    # sum of the LMDB values
    mdb_bytes: int      # size of data.mdb
    load_before: float


def _db_stats(db: Path) -> tuple[int, int]:
    import lmdb
    env = lmdb.open(str(db), readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            count = total = 0
            for _, value in txn.cursor():
                count += 1
                total += len(value)
    finally:
        env.close()
    return count, total


def _timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (kids.ru_utime - kids0.ru_utime) + (kids.ru_stime - kids0.ru_stime)
    return seconds, cpu, done


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def vs_caffe_mode(args: argparse.Namespace) -> int:
    caffe = args.caffe
    if not (Path(caffe).is_file() and os.access(caffe, os.X_OK)):
        sys.exit(f"error: Caffe's convert_imageset not found at {caffe}; install it with "
                 "benchmarks/peers/install_caffe.sh or pass --caffe PATH")
    mnist = load_mnist(find_mnist_dir(args.mnist_dir, download=False), limit=args.limit)
    workers = default_workers()
    rows = ["256x256x3"] + ([] if args.no_gray else ["28x28x1"])
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="lmdb-vs-caffe-") as tmp:
        work = Path(tmp)
        print("writing the MNIST test PNGs (untimed) ...", file=sys.stderr, flush=True)
        absolute = write_mnist_images(mnist, work / "images", "test")
        root = absolute.parent
        listing = work / "list.txt"            # '<label>/<n>.png <label>', the same for both tools
        listing.write_text("".join(f"{Path(line.rsplit(' ', 1)[0]).relative_to(root)} {line.rsplit(' ', 1)[1]}\n"
                                   for line in absolute.read_text().splitlines()))
        labels = root / "labels.txt"
        env = dict(os.environ)
        python = [sys.executable, "-m", "lmdb_builder", "list", str(listing), "--root", str(root),
                  "--labels", str(labels), "--png-level", str(args.png_level)]
        redigits_env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
                            PYTHONPYCACHEPREFIX=str(work / "pycache"))
        redigits_env.pop("PYTHONDONTWRITEBYTECODE", None)     # compiled once, as an install would
        warm = work / "warm.txt"
        warm.write_text("".join(listing.read_text().splitlines(keepends=True)[:50]))
        subprocess.run(python[:4] + [str(warm)] + python[5:] + ["--out", str(work / "warm")], env=redigits_env,
                       check=True, stdout=subprocess.DEVNULL)
        for repeat in range(args.repeats):
            for row in rows:
                gray = row == "28x28x1"
                size = ["--image-size", "28", "--channels", "1"] if gray else []
                commands = {
                    "caffe": ([caffe, "--encoded", "--encode_type=png"]
                              + (["--gray"] if gray else ["--resize_height=256", "--resize_width=256"])
                              + [f"{root}/", str(listing)], env),
                    "redigits": (python + size, redigits_env),
                    "redigits-1": (python + size + ["--workers", "1"], redigits_env),
                }
                for tool, (command, tool_env) in commands.items():
                    out = work / f"{row}-{tool}-{repeat}"
                    db = out if tool == "caffe" else out / "train_db"
                    command = command + ([str(out)] if tool == "caffe" else ["--out", str(out)])
                    load = os.getloadavg()[0]
                    seconds, cpu, done = _timed(command, tool_env)
                    if done.returncode != 0:
                        sys.exit(f"error: {tool} failed ({done.returncode}) on {row}: "
                                 f"{' '.join(command)}\n{done.stdout[-3000:]}")
                    records, value_bytes = _db_stats(db)
                    runs.append(Run(row, tool, repeat, round(seconds, 3), round(cpu, 3), records,
                                    value_bytes, (db / "data.mdb").stat().st_size, load))
                    print(f"  {row} {tool:<10} repeat {repeat}: {seconds:6.2f} s (CPU {cpu:.1f} s, load "
                          f"{load:.1f}, {records} records)", file=sys.stderr, flush=True)
                    shutil.rmtree(out)
    return report(args, runs, rows, workers)


def report(args: argparse.Namespace, runs: list[Run], rows: list[str], workers: int) -> int:
    flags = cpu_flags()
    summary = {}
    print(f"\nCaffe convert_imageset vs redigits (lmdb_builder list), 10,000 MNIST test PNGs, "
          f"{os.cpu_count()} CPUs ({cpu_model()}; {' '.join(flags) or 'no AVX2'}), png level "
          f"{args.png_level}, median of {args.repeats} interleaved runs\n")
    print("| row | tool | wall s (median) | records/s | CPU s | KB/record | data.mdb MB | Caffe / this |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        caffe_times = {r.repeat: r.seconds for r in runs if r.row == row and r.tool == "caffe"}
        summary[row] = {}
        for tool in ("caffe", "redigits", "redigits-1"):
            mine = [r for r in runs if r.row == row and r.tool == tool]
            wall = _median([r.seconds for r in mine])
            ratio = _median([caffe_times[r.repeat] / r.seconds for r in mine])
            records = mine[0].records
            per_record = _median([r.value_bytes / r.records for r in mine])
            entry = {"seconds_median": wall, "records_per_s": records / wall,
                     "cpu_seconds_median": _median([r.cpu_seconds for r in mine]),
                     "bytes_per_record": per_record, "data_mdb_bytes": mine[0].mdb_bytes,
                     "caffe_over_this_median": ratio, "seconds_all": [r.seconds for r in mine],
                     "workers": 1 if tool != "redigits" else workers}
            summary[row][tool] = entry
            label = {"caffe": "Caffe convert_imageset (1 core)", "redigits": f"redigits, {workers} workers",
                     "redigits-1": "redigits, 1 worker"}[tool]
            print(f"| {row} | {label} | {wall:.2f} | {records / wall:,.0f} | {entry['cpu_seconds_median']:.1f} | "
                  f"{per_record / 1e3:.1f} | {mine[0].mdb_bytes / 1e6:.0f} | "
                  f"{'' if tool == 'caffe' else f'{ratio:.2f}x'} |")
    loads = [r.load_before for r in runs]
    print(f"\nload average (1 min) before the runs: {min(loads):.1f} - {max(loads):.1f} (median "
          f"{_median(loads):.1f}); the goal is Caffe / redigits >= 2x on the 256x256x3 row")
    result = {
        "benchmark": "lmdb_build --vs-caffe",
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "model": cpu_model(), "flags": flags},
        "png_level": args.png_level, "repeats": args.repeats, "images": runs[0].records if runs else 0,
        "caffe": args.caffe,
        "load_average_before": {"min": min(loads), "median": _median(loads), "max": max(loads)},
        "rows": summary, "runs": [asdict(r) for r in runs],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_name(f".{RESULTS.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(f"written {RESULTS.relative_to(REPO)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", default=os.environ.get("REDIGITS_MNIST_DIR"))
    parser.add_argument("--limit", type=int, help="first N images of each idx file (default all)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=_size, nargs="+", default=[(28, 28, 1), (256, 256, 3)])
    parser.add_argument("--encoding", default="png", choices=("png", "jpg", "none"))
    parser.add_argument("--png-level", type=int, choices=range(10), default=DEFAULT_PNG_LEVEL)
    parser.add_argument("--vs-caffe", action="store_true",
                        help="time Caffe's convert_imageset and redigits on the same list (issue 12)")
    parser.add_argument("--caffe", default=CAFFE, help=f"convert_imageset to run (default {CAFFE})")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats with --vs-caffe (default 3)")
    parser.add_argument("--no-gray", action="store_true", help="--vs-caffe: skip the 28x28 grey row")
    args = parser.parse_args()
    return vs_caffe_mode(args) if args.vs_caffe else mnist_mode(args)


if __name__ == "__main__":
    sys.exit(main())
