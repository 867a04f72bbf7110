"""TensorBoard event files beside metrics.csv, when the `tensorboard` package is installed.

The same scalars as metrics.csv, one event per row, at step = Caffe's iteration:

| metrics.csv (phase, name) | TensorBoard tag |
|---|---|
| train, loss (each train net output, e.g. `loss`) | `train/loss` |
| val, accuracy (each test net output) | `val/accuracy` |
| lr, lr | `lr` |

Written to JOB_DIR/tensorboard/ (`tensorboard --logdir JOB_DIR/tensorboard`) by the process
that writes metrics.csv (rank 0 under torchrun). A resumed run writes a new event file that
starts with a purge at its start iteration, so TensorBoard drops the old run's points past it,
as metrics.csv drops its rows (one future per step).

Without the package (`pip install redigits[tensorboard]` adds it) training is unchanged; the
only trace is one log record (logger `trainer.tensorboard`, level INFO, once per process).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
FOLDER = "tensorboard"
_said_missing = False


def tag(phase: str, name: str) -> str:
    """The TensorBoard tag of a metrics.csv row (module docstring)."""
    return "lr" if phase == "lr" else f"{phase}/{name}"


class Scalars:
    """A SummaryWriter that takes metrics rows: add(iteration, phase, {name: value})."""

    def __init__(self, writer) -> None:
        self.writer = writer

    def add(self, iteration: int, phase: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(tag(phase, name), float(value), iteration)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_scalars(job_dir: str | os.PathLike, start_iteration: int = 0) -> Scalars | None:
    """Scalars writing to job_dir/tensorboard/, or None when tensorboard is not importable."""
    global _said_missing
    try:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
    except ImportError as exc:
        if not _said_missing:
            log.info("tensorboard is not installed (%s): no event files; "
                     "pip install 'redigits[tensorboard]' to have them", exc)
            _said_missing = True
        return None
    folder = Path(job_dir) / FOLDER
    writer = SummaryWriter(log_dir=str(folder), purge_step=start_iteration or None,
                           flush_secs=30)
    return Scalars(writer)
