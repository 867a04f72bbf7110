"""docs/coming-from-digits.md cannot rot: every ```sh block runs, in order, in one folder.

The page's variables are fixtures: MNIST is a small MNIST (the first images of the real idx
files, rewritten with their counts), JOBS a DIGITS server's jobs folder made from the real seed
job (its model job gets a freshly initialised GoogLeNet snapshot, since the trained one was
never published, and a status.pickle that would leave a marker file if anything unpickled it),
DOWNLOAD a "Download Model" archive of the same files, PORT a free port."""
from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from converter import build_model, save_caffemodel
from redigits import cli

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "coming-from-digits.md"
MODEL_ID, DATASET_ID = "20190317-030015-54e2", "20190317-025154-2525"
SEED_FILES = ("original.prototxt", "train_val.prototxt", "deploy.prototxt", "solver.prototxt")
pytestmark = pytest.mark.slow


def shell_blocks(text: str) -> list[str]:
    """The ```sh blocks of a markdown page, in order."""
    return [m.group(1) for m in re.finditer(r"^```sh\n(.*?)^```$", text, re.S | re.M)]


def commands(block: str) -> list[list[str]]:
    """The words of each command line of a block (backslash continuations joined)."""
    lines = block.replace("\\\n", " ").splitlines()
    return [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _small_mnist(source: Path, dest: Path, count: int) -> None:
    """The first `count` images and labels of each idx file, with the counts rewritten."""
    dest.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        data = gzip.decompress((source / f"{name}.gz").read_bytes())
        ndim = data[3]
        dims = list(struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim]))
        item = int(np.prod(dims[1:], dtype=np.int64))
        body = data[4 + 4 * ndim:4 + 4 * ndim + count * item]
        dims[0] = count
        (dest / f"{name}.gz").write_bytes(gzip.compress(data[:4] + struct.pack(f">{ndim}I", *dims)
                                                        + body))


class _Trap:
    """Unpickling this touches `marker`: proof that status.pickle was opened."""
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _jobs_and_download(seed_job: Path, root: Path, marker: Path) -> tuple[Path, Path]:
    jobs = root / "jobs"
    model, dataset = jobs / MODEL_ID, jobs / DATASET_ID
    model.mkdir(parents=True)
    dataset.mkdir()
    for name in SEED_FILES:
        shutil.copy2(seed_job / name, model / name)
    weights = model / "snapshot_iter_2814.caffemodel"
    save_caffemodel(build_model(seed_job / "deploy.prototxt", "TEST", seed=5), weights)
    for folder in (model, dataset):
        (folder / "status.pickle").write_bytes(pickle.dumps(_Trap(marker)))
    for name in ("labels.txt", "mean.binaryproto"):
        shutil.copy2(seed_job / name, dataset / name)
    download = root / f"{MODEL_ID}_epoch_2.tar.gz"
    with tarfile.open(download, "w:gz") as tar:   # flat, as DIGITS' download_files wrote it
        for path in (*(model / n for n in SEED_FILES), weights, seed_job / "info.json",
                     seed_job / "labels.txt", seed_job / "mean.binaryproto"):
            tar.add(path, arcname=path.name)
    return jobs, download


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_page_is_linked_and_names_only_redigits_commands():
    assert "docs/coming-from-digits.md" in (REPO / "README.md").read_text(encoding="utf-8")
    blocks = shell_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 10
    used = set()
    for block in blocks:
        for words in commands(block):
            if words[0] == "redigits":
                module, prefix = cli.resolve(words[1])      # an unknown name raises
                used.add((module, *prefix, *words[2:3]))
    for package in cli.PACKAGES:
        assert any(u[0] == package.module for u in used), f"the page never uses {package.module}"


def test_every_command_of_the_page_runs(tmp_path, mnist_dir, seed_job):
    script = Path(sys.executable).parent / "redigits"
    assert script.is_file(), f"{script} missing: pip install -e . installs the console script"
    marker = tmp_path / "UNPICKLED"
    _small_mnist(mnist_dir, tmp_path / "mnist", 80)
    jobs, download = _jobs_and_download(seed_job, tmp_path, marker)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(MNIST=str(tmp_path / "mnist"), JOBS=str(jobs), DOWNLOAD=str(download),
               PORT=str(_free_port()), LIVE_PORT=str(_free_port()), PATH=f"{script.parent}{os.pathsep}{env.get('PATH', '')}",
               REDIGITS_MNIST_DIR=str(tmp_path / "no-such-folder"))   # only what the page says
    outputs = []
    for i, block in enumerate(shell_blocks(DOC.read_text(encoding="utf-8"))):
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                              capture_output=True, text=True, timeout=400)
        assert proc.returncode == 0, (f"block {i + 1} exited {proc.returncode}:\n{block}\n"
                                      f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n"
                                      f"{proc.stderr[-3000:]}")
        outputs.append(proc.stdout)
    everything = "\n".join(outputs)

    assert not marker.exists(), "a status.pickle was unpickled"
    for model in ("lenet", "lenet-finetuned"):
        assert (work / "models" / model / "training.png").is_file(), model
        assert sorted((work / "models" / model).glob("snapshot_iter_*.caffemodel")), model
    for model in ("alexnet", "googlenet"):    # DIGITS' form -> job files
        assert (work / "models" / model / "solver.prototxt").is_file(), model
    assert sorted((work / "reruns/seed").glob("snapshot_iter_1.caffemodel"))
    for onnx in ("lenet.onnx", "downloaded.onnx", "seed.onnx"):
        assert (work / onnx).stat().st_size > 10_000, onnx
    state = json.loads((work / "lenet-state.json").read_text())   # the live page's data
    assert isinstance(state, dict) and state, state
    assert sorted(work.glob("mnist-samples*.png"))      # one grid per database
    assert "mnist-files/test/7/00000.png" in everything and "top-1 accuracy" in everything
    answer = json.loads(next(line for line in everything.splitlines()
                             if line.startswith('{"predictions"')))
    labels = [p["label"] for p in answer["predictions"]]
    assert len(labels) == 5 and set(labels) <= set("0123456789")
