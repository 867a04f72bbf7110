"""metrics.csv and DIGITS' training chart (loss and accuracy against epoch, lr below).

metrics.csv is long format, one value per row: iteration, epoch, phase (train | val | lr), name
(the net output, e.g. loss or accuracy; "lr" for the learning rate), value. A resumed run
appends, dropping rows past its start iteration so the file never holds two futures.

The same rows also go to TensorBoard event files in JOB_DIR/tensorboard/ when the tensorboard
package is installed (tensorboard.py); close() ends them.
"""
from __future__ import annotations

import csv
import io
import os
import time
from collections import defaultdict
from pathlib import Path

from prototxt import atomic_write

from .tensorboard import open_scalars

HEADER = ["iteration", "epoch", "phase", "name", "value"]
CHART_EVERY_S = 30.0  # redraw the PNG at most this often while training (it costs ~0.5 s)


class Metrics:
    def __init__(self, folder: str | os.PathLike, start_iteration: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.csv_path = Path(folder) / "metrics.csv"
        self.chart_path = Path(folder) / "training.png"
        self.rows: list[list] = []
        self._charted = 0.0
        if enabled and start_iteration > 0 and self.csv_path.is_file():
            with open(self.csv_path, newline="") as f:
                reader = csv.reader(f)
                next(reader, None)
                self.rows = [r for r in reader if len(r) == 5 and int(r[0]) < start_iteration]
        if enabled:
            self._write()
        self.tensorboard = open_scalars(folder, start_iteration) if enabled else None

    def add(self, iteration: int, epoch: float, phase: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.rows.append([iteration, f"{epoch:.6f}", phase, name, f"{value:.9g}"])
        if self.tensorboard is not None:
            self.tensorboard.add(iteration, phase, values)

    def flush(self, chart: bool = False, force: bool = False) -> None:
        """Write metrics.csv; redraw the chart when asked and (unless forced) not drawn lately."""
        if not self.enabled:
            return
        self._write()
        if self.tensorboard is not None:
            self.tensorboard.flush()
        if chart and (force or time.monotonic() - self._charted >= CHART_EVERY_S):
            self.chart()
            self._charted = time.monotonic()

    def close(self) -> None:
        """End the TensorBoard event file (metrics.csv is complete after each flush)."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(self.rows)
        atomic_write(self.csv_path, buf.getvalue().encode())

    def series(self) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
        out: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for _, epoch, phase, name, value in self.rows:
            xs, ys = out[(phase, name)]
            xs.append(float(epoch))
            ys.append(float(value))
        return dict(out)

    def chart(self) -> Path | None:
        """DIGITS' chart: losses (left axis) and accuracies in % (right axis) against epoch, and
        the learning rate below."""
        series = self.series()
        if not series:
            return None
        from matplotlib.figure import Figure  # not pyplot: no GUI backends (a third of the time)

        fig = Figure(figsize=(9, 6.5))
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        right = top.twinx()
        for (phase, name), (xs, ys) in sorted(series.items()):
            if phase == "lr":
                bottom.plot(xs, ys, color="tab:purple", label="learning rate")
            elif "accuracy" in name:
                right.plot(xs, [100 * y for y in ys], marker="o", ms=3, color="tab:orange",
                           label=f"{name} ({phase})")
            else:
                top.plot(xs, ys, marker="o" if phase == "val" else None, ms=3,
                         label=f"{name} ({phase})")
        top.set_ylabel("loss")
        right.set_ylabel("accuracy (%)")
        bottom.set_ylabel("learning rate")
        bottom.set_xlabel("epoch")
        lines = top.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        if lines[0] or more[0]:
            top.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize=8)
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        atomic_write(self.chart_path, buf.getvalue())
        return self.chart_path
