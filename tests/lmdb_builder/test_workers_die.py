"""A dataset build killed with SIGKILL leaves no encoder workers and no dataset folder
(issue 14, defect 9)."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.process_tree import alive, descendants, wait_for

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
        assert wait_for(lambda: not any(alive(p) for p in workers), 10), \
            f"orphans left: {[p for p in workers if alive(p)]}"
        assert not out.exists()   # only a temporary folder can be left; never a half dataset
    finally:
        if proc.poll() is None:
            proc.kill()
