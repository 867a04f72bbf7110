"""A dataset build killed with SIGKILL leaves no encoder workers and no dataset folder
(issue 14, defect 9)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.process_tree import assert_gone, descendants, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_sigkill_of_a_build_ends_its_workers(tmp_path, mnist_dir):
    out = tmp_path / "mnist256"
    proc = subprocess.Popen([sys.executable, "-m", "lmdb_builder", "mnist", "--out", str(out),
                             "--mnist-dir", str(mnist_dir), "--image-size", "256", "--channels",
                             "3", "--limit", "20000", "--workers", "2", "--no-download"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(descendants(proc.pid)) >= 2, 60), "the workers never started"
        workers = descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert_gone(workers)
        assert not out.exists()   # only a temporary folder can be left; never a half dataset
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_of_a_build_cleans_up_and_exits_143(tmp_path, mnist_dir):
    out = tmp_path / "mnist256"
    proc = subprocess.Popen([sys.executable, "-m", "lmdb_builder", "mnist", "--out", str(out),
                             "--mnist-dir", str(mnist_dir), "--image-size", "256", "--channels",
                             "3", "--limit", "20000", "--workers", "2", "--no-download"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(descendants(proc.pid)) >= 2, 60), "the workers never started"
        assert wait_for(lambda: any(tmp_path.glob(".mnist256.tmp-*")), 30)
        workers = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143
        assert "terminated (SIGTERM)" in proc.stderr.read()
        assert_gone(workers)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and not list(tmp_path.glob(".mnist256.*"))


def test_the_next_build_removes_what_a_killed_one_left(tmp_path, mnist_dir):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()   # a pid that has exited
    stale = tmp_path / f".mnist28.tmp-{dead}-abc123"
    (stale / "train_db").mkdir(parents=True)
    live = tmp_path / f".mnist28.tmp-{os.getpid()}-def456"   # a build running right now
    live.mkdir()
    subprocess.run([sys.executable, "-m", "lmdb_builder", "mnist", "--out", str(tmp_path / "mnist28"),
                    "--mnist-dir", str(mnist_dir), "--limit", "200", "--no-download"],
                   check=True, capture_output=True)
    assert not stale.exists() and live.exists() and (tmp_path / "mnist28" / "train_db").is_dir()
