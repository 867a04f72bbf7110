"""The solver loop against an independent float64 NumPy replay of Caffe, exact resume, logs."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from trainer.solver import Options, Solver

from . import tiny

QUIET = dict(echo=False, progress=False)


@pytest.fixture
def dataset(tmp_path, rng):
    arrays = tiny.make_dataset(tmp_path / "data", rng, n_train=22, n_val=14)
    return tmp_path / "data", arrays


# -- float64 replay of Caffe: InnerProduct + SoftmaxWithLoss, the update formulas of sgd_solver.cpp,
# written out here without trainer.updates.

def _replay(kind: str, fields: dict, w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
            batch: int, iter_size: int, iters: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    n = len(x)
    flat = x.reshape(n, -1).astype(np.float64) * 0.01
    params = [w.astype(np.float64), b.astype(np.float64)]
    lr_mult, decay_mult = [1.0, 2.0], [1.0, 0.0]
    hist = [[np.zeros_like(p) for p in params] for _ in range(2)]
    m, wd = fields.get("momentum", 0.0), fields["weight_decay"]
    delta = fields.get("delta", 1e-8)
    losses = []
    k = 0
    for it in range(iters):
        grads = [np.zeros_like(p) for p in params]
        loss = 0.0
        for _ in range(iter_size):
            idx = [(k * batch + j) % n for j in range(batch)]
            k += 1
            xb, yb = flat[idx], y[idx]
            logits = xb @ params[0].T + params[1]
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            loss += -np.log(p[np.arange(batch), yb]).mean()
            d = p.copy()
            d[np.arange(batch), yb] -= 1
            d /= batch
            grads[0] += d.T @ xb
            grads[1] += d.sum(0)
        losses.append(loss / iter_size)
        rate = fields["base_lr"] * fields["gamma"] ** (it // fields["stepsize"])
        for i, (param, grad) in enumerate(zip(params, grads)):
            g = grad / iter_size + wd * decay_mult[i] * param
            lr = rate * lr_mult[i]
            h, h2 = hist[0][i], hist[1][i]
            if kind == "SGD":
                h[...] = m * h + lr * g
                u = h.copy()
            elif kind == "Nesterov":
                old = h.copy()
                h[...] = m * h + lr * g
                u = (1 + m) * h - m * old
            elif kind == "AdaGrad":
                h += g * g
                u = lr * g / (np.sqrt(h) + delta)
            elif kind == "RMSProp":
                rho = fields["rms_decay"]
                h[...] = rho * h + (1 - rho) * g * g
                u = lr * g / (np.sqrt(h) + delta)
            elif kind == "AdaDelta":
                h[...] = m * h + (1 - m) * g * g
                step = g * np.sqrt((h2 + delta) / (h + delta))
                h2[...] = m * h2 + (1 - m) * step * step
                u = lr * step
            elif kind == "Adam":
                b2 = fields["momentum2"]
                t = it + 1
                h[...] = m * h + (1 - m) * g
                h2[...] = b2 * h2 + (1 - b2) * g * g
                u = lr * np.sqrt(1 - b2 ** t) / (1 - m ** t) * h / (np.sqrt(h2) + delta)
            param -= u
    return params[0], params[1], losses


SOLVERS = {
    "SGD": dict(momentum=0.9),
    "Nesterov": dict(momentum=0.9),
    "AdaGrad": dict(momentum=0.0, delta=1e-6),
    "RMSProp": dict(momentum=0.0, rms_decay=0.9, delta=1e-6, base_lr=0.01),
    "AdaDelta": dict(momentum=0.95, delta=1e-6, base_lr=1.0),
    "Adam": dict(momentum=0.9, momentum2=0.999, delta=1e-8, base_lr=0.01),
}


@pytest.mark.parametrize("kind", sorted(SOLVERS))
def test_each_solver_type_follows_a_float64_replay_of_caffe(tmp_path, dataset, kind):
    folder, arrays = dataset
    fields = {**dict(base_lr=0.05, gamma=0.5, stepsize=8, weight_decay=0.01), **SOLVERS[kind]}
    path = tiny.write_job(tmp_path / "job", folder, train_batch=4, iter_size=2, type=kind,
                          test_interval=0, snapshot=0, snapshot_after_train=False, **fields)
    solver = Solver(path, Options(log_file=None, **QUIET))
    ip = solver.train.model.caffe_blobs("ip")
    w0, b0 = (t.detach().numpy().copy() for t in ip)
    result = solver.solve()
    x, y = arrays["train_db"]
    w, b, losses = _replay(kind, fields, w0, b0, x, y, batch=4, iter_size=2, iters=20)
    np.testing.assert_allclose([result.train_losses[i] for i in range(20)], losses, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(ip[0].detach().numpy(), w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ip[1].detach().numpy(), b, rtol=1e-4, atol=1e-6)
    assert result.iteration == 20
    assert solver.current_step == 19 // 8  # Caffe's step policy keeps iter / stepsize


def _run(solver_path, **kw):
    solver = Solver(solver_path, Options(log_file=None, **QUIET, **kw))
    return solver, solver.solve()


def test_resume_gives_the_same_losses_and_weights_as_an_uninterrupted_run(tmp_path, dataset):
    folder, _ = dataset
    # crop and mirror in TRAIN, dropout: every random stream must continue exactly
    common = dict(body=tiny.CONV, transform="scale: 0.01 crop_size: 5 mirror: true",
                  max_iter=24, test_interval=6, test_iter=4, snapshot=0)
    whole, r_whole = _run(tiny.write_job(tmp_path / "whole", folder, **common))
    part_path = tiny.write_job(tmp_path / "part", folder, **common)
    _, r_first = _run(part_path, max_iter=13)       # snapshot_after_train writes iter 13
    state = tmp_path / "part" / "snapshot_iter_13.solverstate"
    assert state.is_file()
    resumed, r_rest = _run(part_path, resume=state)
    for i in range(24):
        expected = r_whole.train_losses[i]
        got = (r_first if i < 13 else r_rest).train_losses[i]
        assert got == expected, f"iteration {i}"
    assert r_rest.tests == [t for t in r_whole.tests if t[0] >= 13]
    for a, b in zip(whole.train.model.parameters(), resumed.train.model.parameters()):
        assert torch.equal(a, b)
    assert min(r_rest.train_losses) == 13


def test_tests_count_for_the_test_cursor(tmp_path, dataset):
    folder, _ = dataset
    solver = Solver(tiny.write_job(tmp_path / "j", folder, test_interval=5), Options(log_file=None, **QUIET))
    assert [solver.tests_before(i) for i in (0, 1, 5, 6, 10, 11)] == [0, 1, 1, 2, 2, 3]
    solver.param.test_initialization = False
    assert [solver.tests_before(i) for i in (0, 1, 5, 6, 10, 11)] == [0, 0, 0, 1, 1, 2]
    solver.batches.close()


def test_test_net_wraps_around_and_carries_on(tmp_path, dataset):
    """14 val records, batch 5, test_iter 4: each test reads 20 records, and the next test
    starts where the last one stopped (Caffe's test net keeps its data cursor)."""
    folder, arrays = dataset
    path = tiny.write_job(tmp_path / "j", folder, val_batch=5, test_iter=4, test_interval=3,
                          max_iter=6, snapshot=0)
    solver = Solver(path, Options(log_file=None, **QUIET))
    seen = []
    solver.tests[0].model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["label"].tolist()), with_kwargs=True)
    solver.solve()
    labels = arrays["val_db"][1]
    assert len(seen) == 12  # tests at 0, 3, 6
    flat = [label for batch in seen for label in batch]
    assert flat == [int(labels[i % 14]) for i in range(60)]


def test_caffe_log_lines_and_metrics(tmp_path, dataset):
    folder, _ = dataset
    path = tiny.write_job(tmp_path / "j", folder, max_iter=20, display=5, test_interval=10)
    Solver(path, Options(progress=False, echo=False)).solve()
    log = (tmp_path / "j" / "caffe_output.log").read_text().splitlines()
    glog = re.compile(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] (.*)$")
    messages = [glog.match(line).group(1) for line in log]
    assert messages[0] == "Solving tiny"
    assert "Learning Rate Policy: step" in messages
    assert [m for m in messages if m.startswith("Iteration") and "lr =" in m] == [
        f"Iteration {i}, lr = {0.05 * 0.5 ** (i // 8):g}" for i in (0, 5, 10, 15)]
    display = [m for m in messages if re.match(r"Iteration \d+ \(.* iter/s, .*s/5 iters\), loss = ", m)]
    assert len(display) == 4 + 0  # 0, 5, 10, 15; the final one ("Iteration 20, loss = ") is separate
    assert any(re.fullmatch(r"Iteration 20, loss = [\d.e-]+", m) for m in messages)
    tests = [m for m in messages if "Test net output" in m]
    assert len(tests) == 3 * 2  # iterations 0, 10, 20; accuracy and loss
    assert re.fullmatch(r"    Test net output #1: loss = [\d.e-]+ \(\* 1 = [\d.e-]+ loss\)", tests[1])
    assert "Snapshotting to binary proto file " + str(tmp_path / "j" / "snapshot_iter_10.caffemodel") in messages
    assert messages[-1] == "Optimization Done."
    waits = [m for m in messages if m.startswith("Waited per training iteration: ")]
    assert len(waits) == 1 and re.fullmatch(r"Waited per training iteration: [\d.e-]+ ms for "
                                            r"batches, [\d.e-]+ ms for the device \(loss "
                                            r"read-back\), over 20 iterations", waits[0])
    csv = (tmp_path / "j" / "metrics.csv").read_text().splitlines()
    assert csv[0] == "iteration,epoch,phase,name,value"
    rows = [r.split(",") for r in csv[1:]]
    assert {(r[2], r[3]) for r in rows} == {("train", "loss"), ("lr", "lr"), ("val", "accuracy"),
                                            ("val", "loss")}
    # epoch = iteration * batch / records (4 per batch, 22 records)
    assert all(abs(float(r[1]) - int(r[0]) * 4 / 22) < 1e-6 for r in rows)
    assert (tmp_path / "j" / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for n in (10, 20):
        assert (tmp_path / "j" / f"snapshot_iter_{n}.caffemodel").is_file()
        assert (tmp_path / "j" / f"snapshot_iter_{n}.solverstate").is_file()


def test_solverstate_is_caffes_message(tmp_path, dataset):
    from prototxt import read_solverstate
    folder, _ = dataset
    path = tiny.write_job(tmp_path / "j", folder, type="Adam", momentum=0.9, momentum2=0.999,
                          lr_policy="multistep", stepvalue=[3, 6], max_iter=10, test_interval=0,
                          snapshot=0, base_lr=0.01)
    solver, _ = _run(path)
    state = read_solverstate(tmp_path / "j" / "snapshot_iter_10.solverstate")
    assert state.iter == 10 and state.current_step == 2
    assert state.learned_net == "snapshot_iter_10.caffemodel"
    assert len(state.history) == 4  # Adam: two sets for weight and bias
    assert list(state.history[0].shape.dim) == [3, 60]
    np.testing.assert_array_equal(np.asarray(state.history[2].data, np.float32).reshape(3, 60),
                                  solver.histories[0][1].numpy())


def test_weights_start_from_a_caffemodel(tmp_path, dataset):
    folder, _ = dataset
    first, _ = _run(tiny.write_job(tmp_path / "a", folder, max_iter=5, test_interval=0, snapshot=0))
    second = Solver(tiny.write_job(tmp_path / "b", folder, max_iter=5, random_seed=99),
                    Options(log_file=None, weights=[str(tmp_path / "a" / "snapshot_iter_5.caffemodel")],
                            **QUIET))
    for a, b in zip(first.train.model.caffe_blobs("ip"), second.train.model.caffe_blobs("ip")):
        assert torch.equal(a, b)
    second.batches.close()


def test_lr_mult_zero_is_frozen_but_keeps_caffes_history(tmp_path, dataset):
    folder, _ = dataset
    body = tiny.LINEAR.replace("param { lr_mult: 2 decay_mult: 0 }", "param { lr_mult: 0 decay_mult: 1 }")
    path = tiny.write_job(tmp_path / "j", folder, body=body, max_iter=6, test_interval=0, snapshot=0)
    solver = Solver(path, Options(log_file=None, **QUIET))
    bias = solver.train.model.caffe_blobs("ip")[1].detach().clone()
    solver.solve()
    assert torch.equal(solver.train.model.caffe_blobs("ip")[1], bias)
    assert len(solver.histories) == 2


def test_nan_loss_stops_with_the_hint_and_keeps_the_last_snapshot(tmp_path, dataset):
    from trainer.solver import TrainingDiverged
    folder, _ = dataset
    path = tiny.write_job(tmp_path / "j", folder, base_lr=1e30, max_iter=50, snapshot=1,
                          test_interval=0, lr_policy="fixed")
    with pytest.raises(TrainingDiverged, match="decreasing"):
        Solver(path, Options(**QUIET)).solve()
    snaps = sorted((tmp_path / "j").glob("*.caffemodel"))
    assert snaps, "the snapshots made before the loss went NaN are kept"
    log = (tmp_path / "j" / "caffe_output.log").read_text()
    assert "learning rate" in log


def test_ctrl_c_snapshots_and_resumes(tmp_path, dataset):
    import signal
    folder, _ = dataset
    common = dict(max_iter=12, test_interval=0, snapshot=0)
    whole, r_whole = _run(tiny.write_job(tmp_path / "whole", folder, **common))
    path = tiny.write_job(tmp_path / "j", folder, **common)
    solver = Solver(path, Options(log_file=None, **QUIET))
    calls = []

    def interrupt(module, args):
        calls.append(1)
        if len(calls) == 5:  # during iteration 4
            signal.raise_signal(signal.SIGINT)
    solver.train.model.register_forward_pre_hook(interrupt)
    result = solver.solve()
    assert result.stopped_early and result.iteration == 5
    state = tmp_path / "j" / "snapshot_iter_5.solverstate"
    assert state.is_file()
    _, rest = _run(path, resume=state)
    assert [rest.train_losses[i] for i in range(5, 12)] == [r_whole.train_losses[i] for i in range(5, 12)]


def test_fast_mode_trains_and_says_what_it_does(tmp_path, dataset):
    folder, _ = dataset
    # no dropout: channels_last draws its mask in another memory order
    body = "\n".join(l for l in tiny.CONV.splitlines() if '"Dropout"' not in l)
    path = tiny.write_job(tmp_path / "j", folder, body=body, max_iter=6, test_interval=3)
    exact, r_exact = _run(path)
    fast = Solver(path, Options(fast=True, **QUIET))
    r_fast = fast.solve()
    log = (tmp_path / "j" / "caffe_output.log").read_text()
    assert "fast mode:" in log and "channels_last" in log
    assert fast.precision.channels_last
    # bf16 (where the CPU has it) changes the numbers a little, not the learning
    for i in range(6):
        assert abs(r_fast.train_losses[i] - r_exact.train_losses[i]) < 0.05 * max(1, r_exact.train_losses[i])


POLICIES = {
    "fixed": (dict(), lambda it: 0.05),
    "step": (dict(gamma=0.5, stepsize=4), lambda it: 0.05 * 0.5 ** (it // 4)),
    "exp": (dict(gamma=0.9), lambda it: 0.05 * 0.9 ** it),
    "inv": (dict(gamma=0.1, power=0.75), lambda it: 0.05 * (1 + 0.1 * it) ** -0.75),
    "multistep": (dict(gamma=0.5, stepvalue=[3, 7, 8]),
                  lambda it: 0.05 * 0.5 ** sum(it >= v for v in (3, 7, 8))),
    "poly": (dict(power=2.0), lambda it: 0.05 * (1 - it / 12) ** 2),
    "sigmoid": (dict(gamma=-0.5, stepsize=6), lambda it: 0.05 / (1 + np.exp(0.5 * (it - 6)))),
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_each_lr_policy_is_caffes_formula_at_every_iteration_of_a_run(tmp_path, dataset, policy):
    folder, _ = dataset
    fields, formula = POLICIES[policy]
    path = tiny.write_job(tmp_path / "j", folder, lr_policy=policy, base_lr=0.05, max_iter=12,
                          display=1, test_interval=0, snapshot=0, snapshot_after_train=False,
                          **{"gamma": 1.0, "stepsize": 1, **fields})
    Solver(path, Options(progress=False, echo=False)).solve()
    logged = {}
    for line in (tmp_path / "j" / "caffe_output.log").read_text().splitlines():
        m = re.search(r"\] Iteration (\d+), lr = (\S+)$", line)
        if m:
            logged[int(m.group(1))] = float(m.group(2))
    assert sorted(logged) == list(range(12))
    for it, rate in logged.items():
        assert rate == pytest.approx(formula(it), rel=1e-5), f"iteration {it}"


def _cut_layers(path, keep):
    """Rewrite a caffemodel with only the layers named in `keep` (a cut at a layer boundary)."""
    from prototxt import caffe_pb2, read_caffemodel, write_binary
    net = read_caffemodel(path)
    kept = [layer for layer in net.layer if layer.name in keep or not len(layer.blobs)]
    del net.layer[:]
    net.layer.extend(kept)
    write_binary(net, path)


def test_resume_refuses_weights_missing_a_learnable_layer(tmp_path, dataset):
    # issue 14 defect 3: a caffemodel cut at a layer boundary resumed with fresh fillers for
    # the missing layers (one INFO line); a resume is strict, --weights stays lenient
    from prototxt.errors import PrototxtError
    folder, _ = dataset
    path = tiny.write_job(tmp_path / "j", folder, body=tiny.CONV, max_iter=3, test_interval=0,
                          snapshot=0)
    _run(path)
    model = tmp_path / "j" / "snapshot_iter_3.caffemodel"
    _cut_layers(model, keep={"conv"})
    solver = Solver(path, Options(log_file=None, **QUIET, max_iter=5,
                                  resume=tmp_path / "j" / "snapshot_iter_3.solverstate"))
    with pytest.raises(PrototxtError, match=r"snapshot_iter_3.caffemodel: cannot resume: the "
                                            r"snapshot's weights lack 1 learnable layer\(s\) of "
                                            r"the train net: ip \("):
        solver.solve()
    lenient = Solver(path, Options(log_file=None, **QUIET, weights=[str(model)]))  # fine-tuning
    lenient.batches.close()


def test_resume_refuses_a_negative_iteration(tmp_path, dataset):
    from prototxt import read_solverstate, write_binary
    from prototxt.errors import PrototxtError
    folder, _ = dataset
    path = tiny.write_job(tmp_path / "j", folder, max_iter=2, test_interval=0, snapshot=0)
    _run(path)
    state_path = tmp_path / "j" / "snapshot_iter_2.solverstate"
    state = read_solverstate(state_path)
    state.iter = -5
    write_binary(state, state_path)
    solver = Solver(path, Options(log_file=None, **QUIET, resume=state_path))
    with pytest.raises(PrototxtError) as err:
        solver.solve()
    assert str(err.value).startswith(f"{state_path}: the solver state's iter is -5")


def test_test_outputs_are_float64_means_of_each_batch_in_caffes_order(tmp_path, dataset):
    """The test pass sums each output over its batches on the device; the means must be the
    bits the host's float64 sums (first batch, then += each batch) give."""
    folder, _ = dataset
    path = tiny.write_job(tmp_path / "j", folder, body=tiny.CONV, val_batch=3, test_iter=5,
                          test_interval=4, max_iter=8, snapshot=0)
    solver = Solver(path, Options(log_file=None, **QUIET))
    seen: list[dict[str, np.ndarray]] = []
    solver.tests[0].model.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(
            {name: out.blobs[name].detach().double().reshape(-1).numpy().copy()
             for name in module.outputs}), with_kwargs=True)
    result = solver.solve()
    assert [i for i, _ in result.tests] == [0, 4, 8] and len(seen) == 15
    for t, (_, values) in enumerate(result.tests):
        batches = seen[5 * t:5 * t + 5]
        for name in batches[0]:
            total = batches[0][name]
            for batch in batches[1:]:
                total = total + batch[name]
            assert values[name] == (total / 5).tolist()[0], (t, name)


def test_losses_read_late_are_the_losses_read_at_once(tmp_path, dataset):
    """Alone, the solver reads iteration i - 1's loss after queuing iteration i; display
    iterations read at once. Every loss, the smoothed display and the weights must not care."""
    folder, _ = dataset
    common = dict(body=tiny.CONV, transform="scale: 0.01 crop_size: 5 mirror: true", max_iter=17,
                  test_interval=6, test_iter=2, snapshot=0, average_loss=3)
    runs = {}
    for display in (0, 1, 4):
        solver = Solver(tiny.write_job(tmp_path / f"d{display}", folder, display=display,
                                       **common), Options(**QUIET))
        result = solver.solve()
        runs[display] = (result, [t.detach().clone() for t in solver.train.model.parameters()])
    for display in (1, 4):
        result, weights = runs[display]
        assert result.train_losses == runs[0][0].train_losses and len(result.train_losses) == 17
        assert result.tests == runs[0][0].tests
        assert all(torch.equal(a, b) for a, b in zip(weights, runs[0][1]))
    log = (tmp_path / "d4" / "caffe_output.log").read_text()
    losses = runs[4][0].train_losses
    smoothed = (losses[6] + losses[7] + losses[8]) / 3  # Caffe's ring of the last 3, at 8
    assert re.search(rf"Iteration 8 \(.*\), loss = {smoothed:.6g}\n", log)


def test_a_nan_loss_read_late_names_its_iteration_and_never_reaches_a_snapshot(tmp_path, dataset):
    """A NaN loss is read one iteration late, after its update: the snapshot due right after
    that update must not be written (Caffe's order: the check, then the update)."""
    from trainer.solver import TrainingDiverged
    folder, _ = dataset
    common = dict(base_lr=1e6, max_iter=60, display=0, test_interval=0, lr_policy="fixed")
    seen = []
    solver = Solver(tiny.write_job(tmp_path / "probe", folder, snapshot=0, **common),
                    Options(**QUIET))
    solver.train.model.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(float(out.loss.detach())), with_kwargs=True)
    with pytest.raises(TrainingDiverged):
        solver.solve()
    first = next(i for i, loss in enumerate(seen) if not np.isfinite(loss))
    assert first >= 2
    path = tiny.write_job(tmp_path / "j", folder, snapshot=first + 1, **common)
    with pytest.raises(TrainingDiverged, match=f"at iteration {first}:"):
        Solver(path, Options(**QUIET)).solve()
    assert not list((tmp_path / "j").glob("snapshot_iter_*"))
