"""What the live page shows of a model job, read from its files only (never from the trainer's
memory, so a page can follow a run in another process, or one that ended long ago):

| shown | read from |
|---|---|
| loss, accuracy, lr against epoch | `metrics.csv` (trainer/metrics.py: iteration, epoch, phase, name, value) |
| state: running, done, stopped | `caffe_output.log`: the last `Solving` line, then `Optimization Done.` or `Optimization stopped early.` |
| snapshots | `*_iter_N.caffemodel` in the output folder |
| facts: network, dataset, solver | `info.json`, `solver.prototxt` and the train net it names |

`version` is a cheap fingerprint (sizes and modification times) so a poll can be answered with
"unchanged" without reading anything.
"""
from __future__ import annotations

import csv
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prototxt import read_solver

from ..solver_nets import train_net

LOG = "caffe_output.log"
METRICS = "metrics.csv"
SNAPSHOT = re.compile(r"_iter_(\d+)\.caffemodel$")
TAIL_BYTES = 256 * 1024            # the log's end that decides the state
QUIET_S = 120.0                    # no write for this long and no end line: "idle"
# solver fields not worth a row in the facts table (whole nets, or repeated elsewhere)
HIDDEN_SOLVER_FIELDS = {"net_param", "train_net_param", "test_net_param", "train_state",
                        "test_state"}


@dataclass
class Snapshot:
    iteration: int
    epoch: float | None
    file: str
    bytes: int
    onnx: bool           # an export is cached already


@dataclass
class Series:
    phase: str           # train | val | lr
    name: str
    points: list[tuple[float, int, float]] = field(default_factory=list)  # (epoch, iteration, value)


@dataclass
class JobState:
    version: str
    state: str           # not started | running | done | stopped | idle
    iteration: int       # the newest metrics row's or snapshot's (0 before any)
    epoch: float
    max_iter: int | None
    series: list[Series]
    snapshots: list[Snapshot]
    log_tail: list[str]  # the log's last lines, without glog's prefix

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class JobFacts:
    name: str
    folder: str
    network: dict[str, str]
    dataset: dict[str, str]
    solver: dict[str, str]

    def as_dict(self) -> dict:
        return asdict(self)


class LiveJob:
    """A job folder (`folder`: solver.prototxt, nets, info.json) and where its run writes
    (`out`: metrics.csv, caffe_output.log, snapshots; the same folder unless --out)."""

    def __init__(self, folder: str | os.PathLike, out: str | os.PathLike | None = None,
                 solver: str | os.PathLike | None = None, max_iter: int | None = None):
        self.folder = Path(folder).absolute()
        self.out = Path(out).absolute() if out else self.folder
        self.solver_path = Path(solver).absolute() if solver else self.folder / "solver.prototxt"
        self._max_iter = max_iter

    # -- polled ----------------------------------------------------------------------------
    def version(self) -> str:
        parts = []
        for path in (self.out / METRICS, self.out / LOG):
            try:
                st = path.stat()
                parts.append(f"{st.st_mtime_ns:x}.{st.st_size:x}")
            except OSError:
                parts.append("-")
        parts.append(f"{len(self._snapshot_files())}")
        return "-".join(parts)

    def state(self) -> JobState:
        version = self.version()
        series = read_series(self.out / METRICS)
        last = max((p for s in series for p in s.points), key=lambda p: p[1], default=None)
        per_iteration = _epochs_per_iteration(series)
        snapshots = []
        for iteration, path in sorted(self._snapshot_files().items()):
            snapshots.append(Snapshot(
                iteration, None if per_iteration is None else round(iteration * per_iteration, 6),
                path.name, path.stat().st_size if path.exists() else 0,
                onnx_path(path).is_file()))
        state, tail = read_log_state(self.out / LOG)
        # the position: the newest metrics row, or a newer snapshot (the run's last iteration)
        iteration, epoch = (last[1], last[0]) if last else (0, 0.0)
        if snapshots and snapshots[-1].iteration > iteration and per_iteration is not None:
            iteration, epoch = snapshots[-1].iteration, snapshots[-1].epoch
        return JobState(version, state, iteration, epoch, self.max_iter(), series, snapshots,
                        tail)

    def snapshot(self, iteration: int) -> Path | None:
        return self._snapshot_files().get(iteration)

    def _snapshot_files(self) -> dict[int, Path]:
        try:
            return {int(m.group(1)): p for p in self.out.iterdir()
                    if (m := SNAPSHOT.search(p.name)) and p.is_file()}
        except OSError:
            return {}

    def max_iter(self) -> int | None:
        if self._max_iter is None and self.solver_path.is_file():
            try:
                self._max_iter = read_solver(self.solver_path).max_iter
            except Exception:  # shown as unknown; the facts say what is wrong with the file
                return None
        return self._max_iter

    # -- read once -------------------------------------------------------------------------
    def facts(self) -> JobFacts:
        info = _read_json(self.folder / "info.json")
        network: dict[str, str] = {}
        dataset: dict[str, str] = {}
        solver: dict[str, str] = {"file": str(self.solver_path)}
        try:
            param = read_solver(self.solver_path)
        except Exception as exc:
            solver["error"] = str(exc)
            param = None
        if param is not None:
            for fd, value in param.ListFields():
                if fd.name not in HIDDEN_SOLVER_FIELDS:
                    solver[fd.name] = _show(fd, value)
            try:
                net = train_net(param, self.folder)
                _describe_net(net.net, net.source, network, dataset)
            except Exception as exc:
                network["error"] = str(exc)
        for key in ("dataset path", "image dimensions", "image resize mode", "mean subtraction"):
            if key in info:
                dataset[key] = _plain(info[key])
        for key in ("framework", "caffe flavor", "creation time"):
            if key in info:
                network[key] = _plain(info[key])
        return JobFacts(str(info.get("name") or self.folder.name), str(self.folder), network,
                        dataset, solver)


def onnx_path(caffemodel: Path) -> Path:
    """Where the page's export of a snapshot is cached: beside it, snapshot_iter_N.onnx."""
    return caffemodel.with_suffix(".onnx")


def read_series(path: Path) -> list[Series]:
    """metrics.csv as one Series per (phase, name), in the file's order. The trainer replaces
    the file whole (atomic rename), so a read never sees half a row."""
    found: dict[tuple[str, str], Series] = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    point = (float(row["epoch"]), int(row["iteration"]), float(row["value"]))
                except (TypeError, ValueError, KeyError):
                    continue
                key = (row["phase"], row["name"])
                found.setdefault(key, Series(*key)).points.append(point)
    except OSError:
        return []
    return list(found.values())


def read_log_state(path: Path, lines: int = 12) -> tuple[str, list[str]]:
    """(state, last lines) from caffe_output.log's end (module docstring)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
        quiet = time.time() - path.stat().st_mtime
    except OSError:
        return "not started", []
    messages = [line.split("] ", 1)[-1] for line in text.splitlines() if line.strip()]
    state = "running" if quiet < QUIET_S else "idle"
    for message in reversed(messages):
        if message.startswith("Optimization Done."):
            state = "done"
            break
        if message.startswith("Optimization stopped early."):
            state = "stopped"
            break
        if message.startswith("Solving "):
            break
    return state, messages[-lines:]


def _epochs_per_iteration(series: list[Series]) -> float | None:
    """epoch / iteration (constant through a run), from any point past iteration 0."""
    for s in series:
        for epoch, iteration, _ in s.points:
            if iteration > 0:
                return epoch / iteration
    return None


def _describe_net(net, source: str, network: dict[str, str], dataset: dict[str, str]) -> None:
    network["name"] = net.name or "unnamed"
    network["file"] = source
    counts: dict[str, int] = {}
    for layer in net.layer:
        counts[layer.type] = counts.get(layer.type, 0) + 1
    network["layers"] = f"{len(net.layer)} (" + ", ".join(f"{n} {t}" for t, n in counts.items()) + ")"
    for layer in net.layer:
        if layer.type == "Data":
            dataset["train source"] = layer.data_param.source
            dataset["batch size"] = str(layer.data_param.batch_size)
            transform = layer.transform_param
            if transform.mean_file:
                dataset["mean file"] = transform.mean_file
            if transform.crop_size:
                dataset["crop"] = str(transform.crop_size)
            break


def _show(fd, value) -> str:
    if not isinstance(value, (str, bytes, int, float)):  # a repeated field
        return ", ".join(_scalar(fd, v) for v in value)
    return _scalar(fd, value)


def _scalar(fd, value) -> str:
    if fd.enum_type is not None:
        return fd.enum_type.values_by_number[value].name
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _plain(value) -> str:
    return " x ".join(map(str, value)) if isinstance(value, list) else str(value)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
