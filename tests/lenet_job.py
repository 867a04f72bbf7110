"""The trained LeNet the inference and deployment tests share (the `lenet` fixture in
tests/conftest.py trains it once per test session).

`make_trained_lenet` is the one place that produces it, through the whole pipeline as a user
runs it: a small DIGITS-style MNIST dataset (lmdb_builder, black digits on white as DIGITS
stored them), `python -m trainer new --network lenet --epochs 4`, `python -m trainer run
solver.prototxt`, and the export `python -m converter onnx --job` runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from converter.onnx_export import export_job, find_job
from lmdb_builder import BuildOptions, ImageSettings, build_dataset, load_mnist, plan_mnist

REPO = Path(__file__).resolve().parents[1]
MNIST_LIMIT = 8000      # first N images of each idx file: 7,200 train / 800 val
EPOCHS = 4


@dataclass(frozen=True)
class LenetJob:
    dataset: Path        # dataset folder (train_db, val_db, mean.binaryproto, labels.txt)
    job: Path            # model job folder (deploy.prototxt, snapshot_iter_N.caffemodel, ...)
    snapshot: Path
    onnx: Path


def make_trained_lenet(workdir: Path, mnist_dir: Path, seed: int = 0) -> LenetJob:
    """Dataset -> model job -> trained snapshot -> model.onnx in `workdir` (~12 s on one core).

    DIGITS' LeNet defaults (SGD, lr 0.01 step, mean image) for EPOCHS epochs reach ~97 % on
    MNIST's test digits (the tests ask for 95 %). The training runs in its own process with one
    OpenMP thread: on a shared 2-core machine spinning OpenMP threads run many times slower,
    and no training thread is left behind in the test process (lmdb_builder's tests fork).
    """
    from trainer.__main__ import main as trainer_main

    dataset, job = workdir / "mnist", workdir / "lenet"
    plan = plan_mnist(load_mnist(mnist_dir, limit=MNIST_LIMIT), pct_val=10, seed=seed)
    build_dataset(plan, dataset, ImageSettings(28, 28, 1),
                  BuildOptions(seed=seed, workers=1, progress=False))
    if trainer_main(["-q", "new", "--dataset", str(dataset), "--network", "lenet", "--out", str(job),
                     "--epochs", str(EPOCHS), "--seed", str(seed)]) != 0:
        raise RuntimeError("python -m trainer new failed")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "trainer", "run", str(job / "solver.prototxt"),
                          "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"python -m trainer run failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    snapshot = find_job(job).weights
    export_job(job / "model.onnx", job=job)
    return LenetJob(dataset, job, snapshot, job / "model.onnx")
