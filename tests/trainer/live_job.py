"""A small real model job for the live page's tests: an MNIST dataset (lmdb_builder), then
`trainer new --network lenet` as a user runs it, so the job has deploy.prototxt, labels.txt,
mean.binaryproto and info.json for the ONNX export."""
from __future__ import annotations

from pathlib import Path

from lmdb_builder import BuildOptions, ImageSettings, build_dataset, load_mnist, plan_mnist
from trainer.__main__ import main as trainer_main


def make_lenet_job(workdir: Path, mnist_dir: Path, images: int = 600, epochs: int = 2,
                   seed: int = 3, *new_args: str) -> Path:
    """The model job folder (not trained). `images` of each MNIST idx file, 10 % for val."""
    dataset, job = workdir / "mnist", workdir / "lenet"
    plan = plan_mnist(load_mnist(mnist_dir, limit=images), pct_val=10, seed=seed)
    build_dataset(plan, dataset, ImageSettings(28, 28, 1),
                  BuildOptions(seed=seed, workers=1, progress=False))
    if trainer_main(["-q", "new", "--dataset", str(dataset), "--network", "lenet", "--out",
                     str(job), "--epochs", str(epochs), "--seed", str(seed), *new_args]) != 0:
        raise RuntimeError("python -m trainer new failed")
    return job
