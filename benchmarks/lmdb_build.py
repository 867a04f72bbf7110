"""Dataset build speed: MNIST at 28x28x1 and 256x256x3 png, with 1 and 2 worker processes.

    python benchmarks/lmdb_build.py [--mnist-dir D] [--limit N] [--workers 1 2] [--sizes 28x28x1 256x256x3]

Prints images per second (train + val records over the whole build, mean included) as a table.
The issue's goals: 28x28 in under 15 s; 256x256 at least twice as fast as a single process
(which needs at least 3 cores: the main process writes the LMDB while workers encode).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lmdb_builder.build import BuildOptions, build_dataset  # noqa: E402
from lmdb_builder.mnist import find_mnist_dir, load_mnist, plan_mnist  # noqa: E402
from lmdb_builder.plan import ImageSettings  # noqa: E402


def _size(text: str) -> tuple[int, int, int]:
    h, w, c = (int(x) for x in text.split("x"))
    return h, w, c


def _cpu() -> float:
    """User + system seconds of this process and its finished children (the worker pools)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", default=os.environ.get("REDIGITS_MNIST_DIR"))
    parser.add_argument("--limit", type=int, help="first N images of each idx file (default all 60,000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=_size, nargs="+", default=[(28, 28, 1), (256, 256, 3)])
    parser.add_argument("--encoding", default="png", choices=("png", "jpg", "none"))
    args = parser.parse_args()

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
                build_dataset(plan, out, ImageSettings(h, w, c, "squash", args.encoding),
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
    print(f"({os.cpu_count()} CPUs, {args.encoding}; CPU s = this process and its workers; load "
          f"average {os.getloadavg()[0]:.1f}: other work on the machine slows the wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
