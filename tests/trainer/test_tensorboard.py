"""TensorBoard event files: the same scalars as metrics.csv, read back with TensorBoard's own
reader; a resumed run purges the old future; without the package training is unchanged."""
from __future__ import annotations

import builtins
import csv
import logging
from collections import defaultdict

import pytest

from trainer import tensorboard as tb
from trainer.solver import Options, Solver

from . import tiny

QUIET = dict(echo=False, progress=False)


@pytest.fixture
def job(tmp_path, rng):
    tiny.make_dataset(tmp_path / "data", rng, n_train=22, n_val=14)
    return tiny.write_job(tmp_path / "job", tmp_path / "data", max_iter=17, display=3,
                          test_interval=7, test_iter=2, snapshot=9)


def _csv_rows(folder) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(iteration, value)]} from metrics.csv, tags as trainer.tensorboard names them."""
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(folder / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            out[tb.tag(row["phase"], row["name"])].append((int(row["iteration"]),
                                                           float(row["value"])))
    return dict(out)


def _events(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(str(folder / "tensorboard"),
                                             size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _same(events, rows) -> None:
    assert sorted(events) == sorted(rows)
    for name, points in rows.items():
        got = events[name]
        assert [s for s, _ in got] == [s for s, _ in points], name
        assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6, abs=1e-9)


def test_event_files_hold_the_metrics_csv_scalars(job):
    pytest.importorskip("tensorboard")
    Solver(job, Options(**QUIET)).solve()
    folder = job.parent
    rows = _csv_rows(folder)
    assert {"train/loss", "val/loss", "val/accuracy", "lr"} <= set(rows)
    assert [s for s, _ in rows["val/accuracy"]] == [0, 7, 14]
    assert [s for s, _ in rows["lr"]] == [0, 3, 6, 9, 12, 15]
    _same(_events(folder), rows)


def test_a_resumed_run_replaces_the_steps_past_its_start(job):
    pytest.importorskip("tensorboard")
    folder = job.parent
    Solver(job, Options(**QUIET)).solve()
    first = _csv_rows(folder)
    # resume from iteration 9 with another learning rate: the points from 9 on change
    text = job.read_text().replace("base_lr: 0.05", "base_lr: 0.02")
    assert text != job.read_text()
    job.write_text(text)
    Solver(job, Options(resume=folder / "snapshot_iter_9.solverstate", **QUIET)).solve()
    rows = _csv_rows(folder)
    assert [s for s, _ in rows["lr"]] == [0, 3, 6, 9, 12, 15]
    assert rows["lr"][:3] == first["lr"][:3] and rows["lr"][3][1] != first["lr"][3][1]
    assert len(list((folder / "tensorboard").iterdir())) == 2
    _same(_events(folder), rows)


def test_without_tensorboard_training_is_unchanged(job, tmp_path, monkeypatch, caplog):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboard" or name.startswith(("tensorboard.", "torch.utils.tensorboard")):
            raise ImportError(f"No module named {name!r} (test)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    monkeypatch.setattr(tb, "_said_missing", False)
    with caplog.at_level(logging.INFO, logger="trainer.tensorboard"):
        result = Solver(job, Options(**QUIET)).solve()
        assert tb.open_scalars(tmp_path) is None          # still missing, still said once
    folder = job.parent
    assert not (folder / "tensorboard").exists()
    assert result.iteration == 17 and len(result.tests) == 3
    assert (folder / "snapshot_iter_17.caffemodel").is_file()
    assert set(_csv_rows(folder)) >= {"train/loss", "val/accuracy", "lr"}
    said = [r for r in caplog.records if r.name == "trainer.tensorboard"]
    assert len(said) == 1 and "not installed" in said[0].getMessage()

    # and the same run with tensorboard gives the same numbers (it only writes files)
    monkeypatch.setattr(builtins, "__import__", real_import)
    pytest.importorskip("tensorboard")
    other = tmp_path / "again"
    tiny.write_job(other, tmp_path / "data", max_iter=17, display=3, test_interval=7,
                   test_iter=2, snapshot=9)
    again = Solver(other / "solver.prototxt", Options(**QUIET)).solve()
    assert (other / "tensorboard").is_dir()
    assert again.tests == result.tests
    assert _csv_rows(other) == _csv_rows(folder)
