"""Worker processes that die with their parent.

A pool's workers block on their task queue; when the process that owns the pool is killed
(SIGKILL from `timeout -s KILL`, the OOM killer, docker, Slurm), nothing tells them and they wait
forever. `die_with_parent()`, called in each worker's initializer, ends the worker when its
parent goes: on Linux the kernel sends it SIGKILL (prctl PR_SET_PDEATHSIG); everywhere, a daemon
thread checks once a second that the parent is still its parent (a reparented process has a new
one), which also covers a parent that died before the first guard was set up.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int | None = None, interval: float = 1.0) -> None:
    """In a worker: exit when the process that started it exits (module docstring).

    `parent`: the pid the worker's parent should have (the pool owner's os.getpid(), passed in
    the initializer's arguments), so that a worker whose owner died while it was still starting
    exits at once; None takes the current parent (a forkserver's workers are its children)."""
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no prctl: the watch thread alone
            pass
    threading.Thread(target=_watch, args=(parent, interval), daemon=True,
                     name="die-with-parent").start()


def _watch(parent: int, interval: float) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(interval)
