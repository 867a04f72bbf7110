"""caffe_output.log in Caffe's glog format, so existing parsers (DIGITS' caffe_train.py,
Caffe's tools/extra/parse_log.py) read our runs:

    I1121 14:03:27.123456 48213 solver.cpp:218] Iteration 100 (5.2 iter/s, 19.2s/100 iters), loss = 0.31

The source tag after the thread id names Caffe's file and line that printed the same message.
Numbers print as C++ streams print floats (6 significant digits).
"""
from __future__ import annotations

import math
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Callable

# Caffe 1.0's source locations of the messages we write.
WHERE = {
    "solve": "solver.cpp:290", "policy": "solver.cpp:291", "iteration": "solver.cpp:218",
    "train_output": "solver.cpp:237", "lr": "sgd_solver.cpp:105", "testing": "solver.cpp:347",
    "test_loss": "solver.cpp:411", "test_output": "solver.cpp:414", "snapshot": "solver.cpp:464",
    "snapshot_state": "sgd_solver.cpp:273", "restore": "sgd_solver.cpp:300",
    "done": "solver.cpp:327", "stopped": "solver.cpp:305", "final_loss": "solver.cpp:322",
    "info": "caffe.cpp:251",
}


def g(value: float) -> str:
    """A float as `std::ostream << float` prints it (default precision 6)."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


class CaffeLog:
    """Writes glog lines to a file (appending, as a resumed Caffe run did) and optionally to a
    stream. Only the first process of a distributed run should write."""

    def __init__(self, path: str | os.PathLike | None,
                 echo: Callable[[str], None] | None = print, enabled: bool = True):
        self.enabled = enabled
        self.echo = echo
        self.file = None
        if enabled and path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8", buffering=1)

    def __call__(self, kind: str, message: str, level: str = "I") -> None:
        if not self.enabled:
            return
        now = datetime.now()
        prefix = (f"{level}{now:%m%d %H:%M:%S}.{now.microsecond:06d} "
                  f"{threading.get_native_id():5d} {WHERE.get(kind, WHERE['info'])}] ")
        for line in message.splitlines() or [""]:
            if self.file is not None:
                self.file.write(prefix + line + "\n")
            if self.echo is not None:
                self.echo(line)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
