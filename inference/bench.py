"""Latency and throughput of a model's ONNX Runtime session (preprocessing not included).

Each batch size is warmed up, then run back to back for `seconds`; latency percentiles are over
those runs, throughput is images per second of wall time.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from .classifier import Classifier


@dataclass
class BenchRow:
    batch: int
    runs: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    images_per_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def bench(classifier: Classifier, batches: list[int], seconds: float = 3.0, warmup: int = 3,
          min_runs: int = 5, seed: int = 0, cuda_graph: bool = False) -> list[BenchRow]:
    """One BenchRow per batch size (module docstring). `cuda_graph`: each batch size through
    its own CUDA-graph session (inference.cuda_graph), host to host as the plain runs."""
    rows = []
    rng = np.random.default_rng(seed)
    for batch in batches:
        x = rng.normal(0, 50, (batch, *classifier.info.input_shape)).astype(np.float32)
        run = classifier.probabilities
        if cuda_graph:
            from .cuda_graph import GraphRunner
            run = GraphRunner(classifier.path.read_bytes(), batch, classifier.info.output_name,
                              where=str(classifier.path)).run
        ms, wall = timed_runs(run, x, seconds, warmup, min_runs)
        rows.append(BenchRow(batch, len(ms), float(np.percentile(ms, 50)),
                             float(np.percentile(ms, 99)), float(ms.mean()),
                             batch * len(ms) / wall))
    return rows


def timed_runs(run, x: np.ndarray, seconds: float, warmup: int = 3,
               min_runs: int = 5) -> tuple[np.ndarray, float]:
    """`warmup` calls of run(x), then calls back to back for `seconds` (at least `min_runs`):
    each call's milliseconds and the wall seconds of them all."""
    for _ in range(warmup):
        run(x)
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1000, time.perf_counter() - start


def markdown(rows: list[BenchRow]) -> str:
    lines = ["| batch | runs | p50 ms | p99 ms | images/s |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.batch} | {r.runs} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.images_per_s:.0f} |"
              for r in rows]
    return "\n".join(lines)
