"""A trainer killed with SIGKILL leaves no data workers behind (issue 14, defect 9)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.process_tree import alive, descendants, wait_for

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
        assert wait_for(lambda: not any(alive(p) for p in workers), 10), \
            f"orphans left: {[p for p in workers if alive(p)]}"
    finally:
        if proc.poll() is None:
            proc.kill()
