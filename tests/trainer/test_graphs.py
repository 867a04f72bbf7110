"""`--cuda-graphs` where graphs cannot be used: the run says why and trains exactly as without.
(Capture and replay themselves are tested on a GPU in test_gpu.py.)"""
from __future__ import annotations

import pytest

from trainer.device import select_precision
from trainer.graphs import StepGraph
from trainer.solver import Options, Solver

from . import tiny


def test_cuda_graphs_on_a_cpu_are_reported_and_change_nothing(tmp_path, rng):
    tiny.make_dataset(tmp_path / "data", rng, n_train=22, n_val=14)
    results, logs = [], []
    for name, graphs in (("plain", False), ("graphs", True)):
        job = tiny.write_job(tmp_path / name, tmp_path / "data", body=tiny.LINEAR, max_iter=6,
                             test_interval=3, test_iter=2, snapshot=0)
        solver = Solver(job, Options(cuda_graphs=graphs, echo=False, progress=False))
        results.append(solver.solve())
        logs.append((tmp_path / name / "caffe_output.log").read_text())
    plain, graphed = results
    assert graphed.train_losses == plain.train_losses and graphed.tests == plain.tests
    assert "CUDA graphs not used: they need a CUDA device" in logs[1]
    assert "CUDA graphs" not in logs[0]


def test_a_step_graph_refuses_a_cpu_device():
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device, not cpu"):
        StepGraph(None, select_precision("cpu"), train=True)
