"""Training on CUDA against training on the CPU, and snapshots that cross devices.

Each check is a plain function of two devices (`compare_training`, `compare_snapshot_resume`)
so that its logic can be exercised anywhere with ("cpu", "cpu"), where every difference is
exactly zero; the `gpu` tests call them with "cuda".

Why tolerances and not equality: the CUDA run is float32 with TF32 off (trainer.device's
default), the same arithmetic as the CPU, but cuDNN's convolution algorithms and CUDA's
reductions (loss mean, bias gradients, the matmuls' K sums) add the same float32 terms in
another order than oneDNN/MKL, so results differ in the last bits (~1e-7 relative per op).
Twenty SGD steps with momentum carry these along and amplify them about tenfold on this small
net (measured on the CPU: a random relative 1e-6 perturbation of the initial weights, ~10 float32
ulps, more than one reordered sum produces, moves the per-iteration losses by up to ~1.2e-5 and the
final weights by ~1.5e-6 relative; a 1e-5 perturbation already fails the 1e-4 bar). So 1e-4
leaves a margin of ~10x over what reordering can do while failing on a real defect (TF32 left
on rounds operands to 10 mantissa bits, ~5e-4 relative, a wrong layer or update far more).
No Dropout in the net: its masks come from torch's per-device generators and would differ by
design (crop and mirror are drawn on the CPU, but are left out too: only the arithmetic varies).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.snapshot import read_snapshot_state
from trainer.solver import Options, Result, Solver

from . import tiny

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]

QUIET = dict(log_file=None, echo=False, progress=False)
ITERS = 20
SNAPSHOT_AT = 13      # not a multiple of test_interval (10) nor of stepsize (8): current_step is 1
LOSS_RTOL = 1e-4      # per iteration, relative (see the module docstring)
LOSS_ATOL = 1e-6      # for the last losses (~4e-3): float32 log-softmax near p = 1 (~6e-8 absolute)
WEIGHT_RTOL = 1e-4    # relative L2 norm of the difference, per blob

# LeNet's shape on the tiny 1 x 6 x 10 images: conv 3x3 -> 5 x 4 x 8, max pool 2/2 -> 5 x 2 x 4,
# ip 12, ReLU, ip 3; Caffe's lr_mult 1/2 for weights/biases. No Dropout (see above).
LENET = '''
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 5 kernel_size: 3 weight_filler { type: "xavier" }
                      bias_filler { type: "constant" value: 0.05 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 12 weight_filler { type: "xavier" }
                        bias_filler { type: "constant" value: 0.05 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 3 weight_filler { type: "xavier" }
                        bias_filler { type: "constant" value: 0.05 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
  include { phase: TEST } }
'''


@pytest.fixture
def dataset(tmp_path, rng) -> Path:
    tiny.make_dataset(tmp_path / "data", rng, n_train=22, n_val=14)
    return tmp_path / "data"


# -- the checks, for any two devices -----------------------------------------------------------

def write_lenet_job(folder: Path, dataset: Path, **solver_fields) -> Path:
    """SGD with momentum, step policy, random_seed 7, tests at 0, 10, 20 (tiny.write_job)."""
    fields = dict(max_iter=ITERS, test_interval=10, test_iter=3, snapshot=0)
    fields.update(solver_fields)
    return tiny.write_job(folder, dataset, body=LENET, **fields)


def run_solver(solver_path: Path, device: str, **options) -> tuple[Solver, Result]:
    solver = Solver(solver_path, Options(device=device, **QUIET, **options))
    assert solver.device.type == torch.device(device).type
    assert solver.precision.dtype is None, solver.precision.describe()   # float32, no autocast
    if solver.device.type == "cuda":
        assert "TF32 off" in solver.precision.describe()
    assert all(t.device.type == solver.device.type for t in solver.train.model.parameters())
    return solver, solver.solve()


def weights(solver: Solver) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float64) for k, v in solver.train.model.state_dict().items()}


def assert_losses_close(got: Result, expected: Result, iterations, what: str) -> None:
    iterations = list(iterations)
    assert sorted(got.train_losses) == iterations, what
    a = np.array([got.train_losses[i] for i in iterations])
    b = np.array([expected.train_losses[i] for i in iterations])
    assert np.isfinite(a).all() and np.isfinite(b).all(), what
    worst = int(np.argmax((np.abs(a - b) - LOSS_ATOL) / np.abs(b)))
    np.testing.assert_allclose(
        a, b, rtol=LOSS_RTOL, atol=LOSS_ATOL,
        err_msg=f"{what}: train losses differ most at iteration {iterations[worst]}")


def assert_tests_close(got: Result, expected: Result, what: str) -> None:
    """Test-net outputs at the same iterations; losses within LOSS_RTOL, accuracy within one
    test image (a near-tie could flip one argmax; none is expected)."""
    assert [i for i, _ in got.tests] == [i for i, _ in expected.tests], what
    for (i, a), (_, b) in zip(got.tests, expected.tests):
        assert a.keys() == b.keys(), what
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=LOSS_RTOL, atol=LOSS_ATOL,
                                   err_msg=f"{what}: test loss at iteration {i}")
        assert abs(a["accuracy"] - b["accuracy"]) <= 1 / 15 + 1e-9, f"{what}: accuracy at {i}"


def assert_weights_close(got: Solver, expected: Solver, what: str) -> None:
    a, b = weights(got), weights(expected)
    assert a.keys() == b.keys() and a, what
    for name in a:
        scale = float(torch.linalg.vector_norm(b[name]))
        assert scale > 0, f"{what}: {name} is all zeros"
        rel = float(torch.linalg.vector_norm(a[name] - b[name])) / scale
        assert rel <= WEIGHT_RTOL, f"{what}: {name} differs by {rel:.3g} (relative L2)"


def compare_training(tmp_path: Path, dataset: Path, device_a: str, device_b: str) -> None:
    """The same seeded solver on two devices: same initial weights (built from the seed on the
    CPU, then moved), same batches, losses and final weights within tolerance."""
    solver_a, a = run_solver(write_lenet_job(tmp_path / "a", dataset), device_a)
    solver_b, b = run_solver(write_lenet_job(tmp_path / "b", dataset), device_b)
    assert a.iteration == b.iteration == ITERS
    assert a.train_losses[ITERS - 1] < 0.8 * a.train_losses[0]   # it learns: a real comparison
    assert_losses_close(a, b, range(ITERS), f"{device_a} vs {device_b}")
    assert_tests_close(a, b, f"{device_a} vs {device_b}")
    assert_weights_close(solver_a, solver_b, f"{device_a} vs {device_b}")


def assert_restored_identically(solver_path: Path, state: Path, devices: tuple[str, str]) -> None:
    """Restoring one .solverstate on either device gives bit-identical weights and history
    (the files hold float32; nothing is recomputed)."""
    restored = []
    for device in devices:
        solver = Solver(solver_path, Options(device=device, **QUIET))
        try:
            solver.restore(state)
            restored.append((solver.iteration, solver.current_step, weights(solver),
                             [[h.detach().cpu() for h in hs] for hs in solver.histories]))
        finally:
            solver.batches.close()
    (it_a, step_a, w_a, h_a), (it_b, step_b, w_b, h_b) = restored
    assert (it_a, step_a) == (it_b, step_b) == (SNAPSHOT_AT, SNAPSHOT_AT // 8)
    assert w_a.keys() == w_b.keys()
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    assert all(torch.equal(x, y) for xs, ys in zip(h_a, h_b) for x, y in zip(xs, ys))
    assert any(bool(x.abs().sum() > 0) for xs in h_a for x in xs)   # momentum was saved
    assert read_snapshot_state(state).iteration == SNAPSHOT_AT


def compare_snapshot_resume(tmp_path: Path, dataset: Path, snap_device: str,
                            resume_device: str) -> None:
    """Train on `snap_device` with a snapshot at SNAPSHOT_AT, resume that .solverstate on
    `resume_device` to ITERS; compare with an uninterrupted run on `resume_device` and with the
    rest of the snapshotting run itself."""
    straight_solver, straight = run_solver(write_lenet_job(tmp_path / "straight", dataset),
                                           resume_device)
    snap_path = write_lenet_job(tmp_path / "snap", dataset, snapshot=SNAPSHOT_AT)
    snap_solver, snap = run_solver(snap_path, snap_device)
    state = tmp_path / "snap" / f"snapshot_iter_{SNAPSHOT_AT}.solverstate"
    assert state.is_file() and state.with_suffix(".caffemodel").is_file()
    assert_restored_identically(snap_path, state, (snap_device, resume_device))

    resumed_solver, resumed = run_solver(snap_path, resume_device, resume=state)
    assert resumed.iteration == ITERS and not resumed.stopped_early
    what = f"snapshot on {snap_device}, resumed on {resume_device}"
    assert_losses_close(resumed, straight, range(SNAPSHOT_AT, ITERS), f"{what} vs straight")
    assert_losses_close(resumed, _after(snap, SNAPSHOT_AT), range(SNAPSHOT_AT, ITERS),
                        f"{what} vs the snapshotting run")
    assert_tests_close(resumed, _after(straight, SNAPSHOT_AT), f"{what} vs straight")
    assert_weights_close(resumed_solver, straight_solver, f"{what} vs straight")
    assert_weights_close(resumed_solver, snap_solver, f"{what} vs the snapshotting run")


def _after(result: Result, start: int) -> Result:
    return dataclasses.replace(
        result, train_losses={i: v for i, v in result.train_losses.items() if i >= start},
        tests=[t for t in result.tests if t[0] >= start])


# -- the gpu tests -----------------------------------------------------------------------------

def test_cuda_training_matches_cpu(tmp_path, dataset):
    compare_training(tmp_path, dataset, "cuda", "cpu")


def test_snapshot_on_cuda_resumes_on_cpu(tmp_path, dataset):
    compare_snapshot_resume(tmp_path, dataset, snap_device="cuda", resume_device="cpu")


def test_snapshot_on_cpu_resumes_on_cuda(tmp_path, dataset):
    compare_snapshot_resume(tmp_path, dataset, snap_device="cpu", resume_device="cuda")


# -- CUDA graphs (trainer/graphs.py) -------------------------------------------------------------

def test_cuda_graphs_train_like_the_eager_step(tmp_path, dataset):
    """Captured forward + backward replayed each iteration: the same losses, tests and weights
    as eager steps on the same GPU (both float32; graphs replay the kernels the capture chose)."""
    eager_solver, eager = run_solver(write_lenet_job(tmp_path / "eager", dataset), "cuda")
    graph_solver, graphed = run_solver(write_lenet_job(tmp_path / "graphs", dataset), "cuda",
                                       cuda_graphs=True)
    assert graph_solver.train_step.captured and graph_solver.train_step.off is None
    assert all(step.captured for step in graph_solver.test_steps)
    assert graph_solver.train_step.calls == ITERS
    assert_losses_close(graphed, eager, range(ITERS), "graphs vs eager")
    assert_tests_close(graphed, eager, "graphs vs eager")
    assert_weights_close(graph_solver, eager_solver, "graphs vs eager")


def test_cuda_graphs_resume_like_an_uninterrupted_run(tmp_path, dataset):
    straight_solver, straight = run_solver(write_lenet_job(tmp_path / "straight", dataset),
                                           "cuda", cuda_graphs=True)
    snap_path = write_lenet_job(tmp_path / "snap", dataset, snapshot=SNAPSHOT_AT)
    run_solver(snap_path, "cuda", cuda_graphs=True)
    state = tmp_path / "snap" / f"snapshot_iter_{SNAPSHOT_AT}.solverstate"
    resumed_solver, resumed = run_solver(snap_path, "cuda", cuda_graphs=True, resume=state)
    assert resumed_solver.train_step.captured
    assert_losses_close(resumed, straight, range(SNAPSHOT_AT, ITERS), "graphs: resumed vs straight")
    assert_weights_close(resumed_solver, straight_solver, "graphs: resumed vs straight")
