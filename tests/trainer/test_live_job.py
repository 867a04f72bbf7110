"""What the live page reads from a job's files: metrics.csv as series, the run's state from
caffe_output.log, snapshots with their epochs, the facts, and the poll fingerprint."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from trainer.live.job import LiveJob, read_log_state, read_series
from trainer.metrics import Metrics
from trainer.solver import Options, Solver

from . import tiny

QUIET = dict(echo=False, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (read only: a test that changes files copies it first)."""
    folder = tmp_path_factory.mktemp("live-job")
    tiny.make_dataset(folder / "data", np.random.default_rng(5), n_train=22, n_val=14)
    solver = tiny.write_job(folder / "job", folder / "data", max_iter=13, display=4,
                            test_interval=6, test_iter=2, snapshot=6)
    Solver(solver, Options(**QUIET)).solve()
    return solver.parent


def test_series_are_metrics_csv_by_phase_and_name(tmp_path):
    metrics = Metrics(tmp_path)
    metrics.add(0, 0.0, "train", {"loss": 2.5, "prob[1]": 0.25})
    metrics.add(0, 0.0, "lr", {"lr": 0.01})
    metrics.add(7, 0.35, "train", {"loss": 1.75, "prob[1]": 0.5})
    metrics.add(7, 0.35, "val", {"accuracy": 0.625})
    metrics.flush()
    metrics.close()
    series = {(s.phase, s.name): s.points for s in read_series(tmp_path / "metrics.csv")}
    assert series == {("train", "loss"): [(0.0, 0, 2.5), (0.35, 7, 1.75)],
                      ("train", "prob[1]"): [(0.0, 0, 0.25), (0.35, 7, 0.5)],
                      ("lr", "lr"): [(0.0, 0, 0.01)],
                      ("val", "accuracy"): [(0.35, 7, 0.625)]}
    assert read_series(tmp_path / "absent.csv") == []


@pytest.mark.parametrize("lines, state", [
    (["Solving tiny", "Iteration 0, loss = 1"], "running"),
    (["Solving tiny", "Optimization Done."], "done"),
    (["Solving tiny", "Optimization stopped early."], "stopped"),
    # a resumed run appends to the log: its own Solving line decides
    (["Solving tiny", "Optimization stopped early.", "Solving tiny", "Iteration 4, loss = 1"],
     "running"),
])
def test_state_from_the_log(tmp_path, lines, state):
    log = tmp_path / "caffe_output.log"
    log.write_text("".join(f"I0102 03:04:05.000006 4242 solver.cpp:290] {m}\n" for m in lines))
    found, tail = read_log_state(log)
    assert found == state
    assert tail == lines


def test_a_log_without_news_is_idle_and_no_log_is_not_started(tmp_path):
    log = tmp_path / "caffe_output.log"
    log.write_text("I0102 03:04:05.000006 4242 solver.cpp:290] Solving tiny\n")
    old = time.time() - 3600
    os.utime(log, (old, old))
    assert read_log_state(log)[0] == "idle"
    assert read_log_state(tmp_path / "none.log") == ("not started", [])


def test_state_of_a_finished_run(trained):
    state = LiveJob(trained).state()
    assert state.state == "done" and state.iteration == 13 and state.max_iter == 13
    assert [s.iteration for s in state.snapshots] == [6, 12, 13]
    # tiny: batch 4, 22 training records -> 4/22 epoch per iteration
    assert [s.epoch for s in state.snapshots] == pytest.approx([6 * 4 / 22, 12 * 4 / 22, 13 * 4 / 22])
    assert not any(s.onnx for s in state.snapshots)
    names = {(s.phase, s.name) for s in state.series}
    assert {("train", "loss"), ("val", "accuracy"), ("val", "loss"), ("lr", "lr")} <= names
    val = next(s for s in state.series if (s.phase, s.name) == ("val", "accuracy"))
    assert [p[1] for p in val.points] == [0, 6, 12]
    assert state.log_tail[-1] == "Optimization Done."
    assert state.epoch == pytest.approx(13 * 4 / 22, abs=1e-6)  # the last snapshot's


def test_version_changes_with_the_files_only(trained, tmp_path):
    trained = Path(shutil.copytree(trained, tmp_path / "copy"))
    job = LiveJob(trained)
    first = job.version()
    assert job.version() == first
    (trained / "snapshot_iter_99.caffemodel").write_bytes(b"")
    second = job.version()
    assert second != first
    with open(trained / "metrics.csv", "a") as f:
        f.write("14,2.545455,lr,lr,0.0125\n")
    assert job.version() != second
    assert job.snapshot(99) == trained / "snapshot_iter_99.caffemodel"
    assert job.snapshot(98) is None


def test_facts_name_network_dataset_and_solver(trained):
    facts = LiveJob(trained).facts()
    assert facts.name == "job" and facts.folder == str(trained)
    assert facts.network["name"] == "tiny"
    # the TRAIN-phase net: Accuracy is a TEST layer
    assert facts.network["layers"] == "3 (1 Data, 1 InnerProduct, 1 SoftmaxWithLoss)"
    assert facts.dataset["train source"] == str(trained.parent / "data" / "train_db")
    assert facts.dataset["batch size"] == "4"
    assert facts.solver["base_lr"] == "0.05" and facts.solver["lr_policy"] == "step"
    assert facts.solver["max_iter"] == "13" and facts.solver["test_iter"] == "2"


def test_facts_of_a_broken_solver_say_why(tmp_path):
    (tmp_path / "solver.prototxt").write_text('net: "train_val.prototxt"\nbase_lr: oops\n')
    facts = LiveJob(tmp_path).facts()
    assert "solver.prototxt:2" in facts.solver["error"]
    assert facts.network == {} and LiveJob(tmp_path).max_iter() is None
