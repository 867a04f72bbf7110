"""Child processes of a process, from /proc (Linux), for kill tests."""
from __future__ import annotations

import time
from pathlib import Path


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def assert_gone(pids: set[int], timeout: float = 10) -> None:
    """Every process in `pids` has ended within `timeout` seconds (no orphans left)."""
    assert wait_for(lambda: not any(alive(p) for p in pids), timeout), \
        f"orphans left: {[p for p in pids if alive(p)]}"
