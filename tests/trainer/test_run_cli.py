"""`python -m trainer run` and `new --train` end to end: MNIST LeNet, the seed job with --dataset,
two gloo processes under torchrun, bad input."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converter.caffemodel import blob_array
from prototxt import read_caffemodel, read_net
from trainer.__main__ import main

from . import tiny

REPO = Path(__file__).resolve().parents[2]


def _mnist(tmp_path_factory, mnist_dir, name: str, *args: str) -> Path:
    out = tmp_path_factory.mktemp(name) / "ds"
    env = {**os.environ, "REDIGITS_MNIST_DIR": str(mnist_dir)}
    subprocess.run([sys.executable, "-m", "lmdb_builder", "mnist", "--out", str(out), "--no-download",
                    *args], check=True, env=env, capture_output=True, cwd=REPO)
    return out


def _test_outputs(log: Path) -> list[tuple[int, float]]:
    """(iteration, accuracy) as DIGITS' log parser reads them."""
    found, iteration = [], None
    for line in log.read_text().splitlines():
        message = line.split("] ", 1)[1]
        m = re.match(r"Iteration (\d+), Testing net", message)
        if m:
            iteration = int(m.group(1))
        m = re.match(r"\s*Test net output #\d+: accuracy = ([\d.e+-]+)", message)
        if m:
            found.append((iteration, float(m.group(1))))
    return found


@pytest.mark.slow
def test_lenet_from_trainer_new_learns_mnist(tmp_path_factory, mnist_dir):
    """DIGITS' Getting Started (LeNet, 28x28 gray, SGD lr 0.01 step), shortened: 2 epochs of the
    60,000 training images, validated on the 10,000 test images."""
    dataset = _mnist(tmp_path_factory, mnist_dir, "mnist", "--test-as-val")
    job = tmp_path_factory.mktemp("lenet") / "job"
    assert main(["new", "--dataset", str(dataset), "--network", "lenet", "--out", str(job),
                 "--epochs", "2", "--step-size", "75", "--seed", "1", "--no-progress",
                 "--train"]) == 0
    accuracy = _test_outputs(job / "caffe_output.log")
    assert [it for it, _ in accuracy] == [0, 938, 1876]
    assert accuracy[0][1] < 0.3
    assert accuracy[-1][1] >= 0.985
    assert (job / "snapshot_iter_1876.caffemodel").is_file()
    assert (job / "training.png").is_file()


@pytest.mark.slow
def test_seed_job_trains_on_a_rebuilt_dataset(tmp_path_factory, seed_job, mnist_dir):
    """The seed's GoogLeNet solver + train_val, unchanged, pointed with --dataset at a small
    256x256 colour MNIST (its /opt/DIGITS paths do not exist here); outputs go to --out since
    the job folder is read-only."""
    dataset = _mnist(tmp_path_factory, mnist_dir, "mnist256", "--limit", "48", "--image-size",
                     "256", "--channels", "3")
    out = tmp_path_factory.mktemp("seed")
    assert main(["run", str(seed_job / "solver.prototxt"), "--dataset", str(dataset), "--out",
                 str(out), "--max-iter", "1", "--test-iter", "1", "--no-progress"]) == 0
    log = (out / "caffe_output.log").read_text()
    assert re.search(r"Train net output #1: loss1/loss = [\d.e+-]+ \(\* 0.3 = ", log)  # aux head
    assert re.search(r"Test net output #\d+: \S*accuracy\S* = ", log, re.I)
    weights = read_caffemodel(out / "snapshot_iter_1.caffemodel")
    learned = [l.name for l in weights.layer if len(l.blobs)]
    net = read_net(seed_job / "train_val.prototxt")
    assert learned == [l.name for l in net.layer if l.type in ("Convolution", "InnerProduct")]
    assert not any(p.name.startswith("snapshot") for p in seed_job.iterdir())


def test_missing_lmdb_names_it_and_suggests_dataset(tmp_path, seed_job, capsys):
    shutil.copy(seed_job / "solver.prototxt", tmp_path)
    shutil.copy(seed_job / "train_val.prototxt", tmp_path)
    assert main(["run", str(tmp_path / "solver.prototxt"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "/opt/DIGITS/digits/jobs/20190317-025154-2525/train_db" in err
    assert "--dataset" in err and "train-data" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_two(solver: Path) -> subprocess.CompletedProcess:
    """`trainer run solver` as 2 CPU processes under torchrun (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                           "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
                           str(_free_port()), "-m", "trainer", "run", str(solver), "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_the_global_batch(tmp_path, rng):
    """torchrun, 2 CPU processes with batch 4 each = 1 process with batch 8: the same records
    per iteration and DDP's averaged gradient = the mean loss's gradient."""
    folder = tmp_path / "data"
    tiny.make_dataset(folder, rng, n_train=40, n_val=10)
    common = dict(max_iter=8, test_interval=0, snapshot=0, display=1)
    two = tiny.write_job(tmp_path / "two", folder, train_batch=4, **common)
    one = tiny.write_job(tmp_path / "one", folder, train_batch=8, **common)
    assert main(["run", str(one), "--no-progress"]) == 0
    proc = _torchrun_two(two)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]
    assert "2 processes, global batch 8" in (tmp_path / "two" / "caffe_output.log").read_text()
    a = read_caffemodel(tmp_path / "one" / "snapshot_iter_8.caffemodel")
    b = read_caffemodel(tmp_path / "two" / "snapshot_iter_8.caffemodel")
    for la, lb in zip(a.layer, b.layer):
        for x, y in zip(la.blobs, lb.blobs):
            np.testing.assert_allclose(blob_array(x), blob_array(y), rtol=1e-5, atol=1e-6)
    assert any(len(l.blobs) for l in a.layer)


@pytest.mark.slow
def test_two_gloo_processes_diverge_together_with_one_error_and_no_abort(tmp_path, rng):
    """A NaN loss stops both processes at the same iteration (one all_reduce of the flags): the
    run fails with the hint, not with a hang or a process killed by std::terminate."""
    folder = tmp_path / "data"
    tiny.make_dataset(folder, rng, n_train=40, n_val=10)
    job = tiny.write_job(tmp_path / "j", folder, base_lr=1e30, lr_policy="fixed", max_iter=50,
                         test_interval=0, snapshot=0)
    proc = _torchrun_two(job)
    assert proc.returncode != 0
    assert "training diverged. Try decreasing the learning rate" in proc.stdout
    assert "terminate called" not in proc.stderr and "SIGABRT" not in proc.stderr, proc.stderr


def test_a_truncated_dataset_is_one_error_line_not_a_traceback(tmp_path, rng, capsys):
    from trainer.__main__ import main
    from . import tiny
    tiny.make_dataset(tmp_path / "data", rng, n_train=22, n_val=14)
    job = tiny.write_job(tmp_path / "job", tmp_path / "data", max_iter=2, test_interval=0,
                         snapshot=0)
    mdb = tmp_path / "data" / "train_db" / "data.mdb"
    mdb.write_bytes(mdb.read_bytes()[:9000])
    assert main(["run", str(job), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "data.mdb" in err
