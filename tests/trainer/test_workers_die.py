"""A trainer killed with SIGKILL leaves no data workers behind (issue 14, defect 9)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.process_tree import assert_gone, descendants, wait_for

from . import tiny

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_sigkill_of_the_trainer_ends_its_workers(tmp_path, rng):
    tiny.make_dataset(tmp_path / "data", rng, n_train=22, n_val=14)
    job = tiny.write_job(tmp_path / "job", tmp_path / "data", max_iter=10**6, test_interval=0,
                         snapshot=0, display=0)
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "run", str(job), "--workers", "2",
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=os.getcwd())
    try:
        # spawn starts a resource tracker too; the workers are the ones that stay
        assert wait_for(lambda: len(descendants(proc.pid)) >= 3, 60), "the workers never started"
        workers = descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert_gone(workers)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_stops_like_ctrl_c_snapshot_and_exit_143(tmp_path, rng):
    """What `timeout`, `docker stop` and Slurm send: finish the iteration, snapshot, exit 143,
    no workers left; `--resume auto` then continues from that snapshot."""
    tiny.make_dataset(tmp_path / "data", rng, n_train=22, n_val=14)
    job = tiny.write_job(tmp_path / "job", tmp_path / "data", max_iter=10**6, test_interval=0,
                         snapshot=0, display=1)
    log = tmp_path / "job" / "caffe_output.log"
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "run", str(job), "--workers", "2",
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: log.is_file() and "Iteration 3," in log.read_text(), 90)
        workers = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143
        assert_gone(workers)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "Terminated (SIGTERM): stopping after this iteration" in text
    snapshots = sorted((tmp_path / "job").glob("snapshot_iter_*.solverstate"))
    assert len(snapshots) == 1
    stopped = int(snapshots[0].stem.rsplit("_", 1)[1])
    resumed = subprocess.run([sys.executable, "-m", "trainer", "run", str(job), "--resume", "auto",
                              "--max-iter", str(stopped + 2), "--no-progress"],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Resuming from {snapshots[0]} at iteration {stopped}" in log.read_text()
