"""Caffe's lr policies against hand-computed rates (the expected numbers come from the formulas,
written here with plain Python floats)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from prototxt import caffe_pb2, read_solver
from trainer import lr_policies
from trainer.lr_policies import LearningRate, SolverConfigError, learning_rate


def solver(**fields) -> caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter(**fields)


def f32(x: float) -> float:
    return float(np.float32(x))


def rate(s: caffe_pb2.SolverParameter, iteration: int, current_step: int = 0) -> float:
    return learning_rate(s, iteration, current_step).rate


# ---------------------------------------------------------------- registry and errors

def test_registry_has_caffes_seven_policies_and_the_table_documents_each():
    assert set(lr_policies.POLICIES) == {"fixed", "step", "exp", "inv", "multistep", "poly",
                                         "sigmoid"}
    table = lr_policies.__doc__
    for name in lr_policies.POLICIES:
        assert f"\n{name} " in table


def test_unknown_policy_names_it_and_the_supported_ones():
    with pytest.raises(SolverConfigError) as err:
        learning_rate(solver(base_lr=0.01, lr_policy="cosine"), 0)
    msg = str(err.value)
    assert "'cosine'" in msg
    for name in ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid"):
        assert name in msg


def test_policy_names_are_case_sensitive_like_caffe_with_a_hint():
    with pytest.raises(SolverConfigError, match="did you mean 'step'"):
        learning_rate(solver(base_lr=0.01, lr_policy="Step", stepsize=10, gamma=0.1), 0)


def test_unset_policy_is_an_error():
    with pytest.raises(SolverConfigError, match="no lr_policy"):
        learning_rate(solver(base_lr=0.01), 0)


@pytest.mark.parametrize("fields, match", [
    (dict(lr_policy="step", gamma=0.1), "stepsize > 0"),
    (dict(lr_policy="step", gamma=-0.1, stepsize=10), "gamma >= 0"),
    (dict(lr_policy="exp", gamma=-0.5), "gamma >= 0"),
    (dict(lr_policy="poly", power=1.0), "max_iter > 0"),
])
def test_settings_caffe_cannot_run_are_refused(fields, match):
    with pytest.raises(SolverConfigError, match=match):
        learning_rate(solver(base_lr=0.01, **fields), 5)


def test_a_policy_returns_a_named_pair():
    got = learning_rate(solver(base_lr=0.5, lr_policy="fixed"), 3, 2)
    assert got == LearningRate(0.5, 2)
    r, step = got
    assert (r, step) == (0.5, 2)


# ---------------------------------------------------------------- each policy

def test_fixed():
    s = solver(base_lr=0.01, lr_policy="fixed")
    for it in (0, 1, 999, 10**6):
        assert rate(s, it) == f32(0.01)


def test_step_digits_seed_solver():
    # DIGITS' seed job: base_lr 0.01, step, gamma 0.1, stepsize 929 (33 % of 2814).
    s = solver(base_lr=0.01, lr_policy="step", gamma=0.1, stepsize=929, max_iter=2814)
    assert learning_rate(s, 0) == (f32(0.01), 0)
    assert learning_rate(s, 928) == (f32(0.01), 0)
    assert learning_rate(s, 929) == (f32(0.001), 1)     # float32(0.001) exactly, as Caffe logs
    assert learning_rate(s, 1857) == (f32(0.001), 1)
    got = learning_rate(s, 1858)
    assert got.current_step == 2 and got.rate == pytest.approx(0.0001, rel=1e-6)
    assert rate(s, 2813) == pytest.approx(0.00001, rel=1e-6)


def test_step_sets_current_step_whatever_it_was():
    s = solver(base_lr=1.0, lr_policy="step", gamma=0.5, stepsize=10)
    assert learning_rate(s, 25, current_step=7) == (0.25, 2)


def test_step_on_the_real_seed_job_file(seed_job):
    s = read_solver(seed_job / "solver.prototxt")
    assert (s.lr_policy, s.stepsize) == ("step", 929)
    assert rate(s, 928) == f32(0.01)
    assert rate(s, 929) == f32(0.001)


def test_exp():
    s = solver(base_lr=0.01, lr_policy="exp", gamma=0.5)
    assert rate(s, 0) == pytest.approx(0.01, rel=1e-7)
    assert rate(s, 1) == pytest.approx(0.005, rel=1e-7)
    assert rate(s, 3) == pytest.approx(0.00125, rel=1e-7)
    s = solver(base_lr=0.1, lr_policy="exp", gamma=0.99)
    assert rate(s, 100) == pytest.approx(0.1 * 0.99 ** 100, rel=1e-6)


def test_inv():
    s = solver(base_lr=0.01, lr_policy="inv", gamma=0.25, power=2.0)
    assert rate(s, 0) == pytest.approx(0.01, rel=1e-7)
    assert rate(s, 4) == pytest.approx(0.01 / 2 ** 2, rel=1e-7)       # (1 + 0.25·4)^-2
    assert rate(s, 12) == pytest.approx(0.01 / 4 ** 2, rel=1e-7)      # (1 + 0.25·12)^-2
    s = solver(base_lr=0.01, lr_policy="inv", gamma=0.0001, power=0.75)   # Caffe's LeNet
    assert rate(s, 10000) == pytest.approx(0.01 * 2 ** -0.75, rel=1e-6)


def test_multistep_advances_one_step_per_call_even_for_equal_values():
    s = solver(base_lr=1.0, lr_policy="multistep", gamma=0.1, stepvalue=[3, 5, 5])
    current, seen = 0, []
    for it in range(9):
        r, current = learning_rate(s, it, current)
        seen.append((it, current, r))
    expected = [(0, 0, 1.0), (1, 0, 1.0), (2, 0, 1.0),
                (3, 1, 0.1), (4, 1, 0.1),
                (5, 2, 0.01),            # first 5
                (6, 3, 0.001),           # the second 5 takes effect one iteration later
                (7, 3, 0.001), (8, 3, 0.001)]
    for (it, step, r), (eit, estep, er) in zip(seen, expected):
        assert (it, step) == (eit, estep)
        assert r == pytest.approx(er, rel=1e-6)


def test_multistep_uses_the_saved_current_step():
    s = solver(base_lr=1.0, lr_policy="multistep", gamma=0.1, stepvalue=[3, 5, 5])
    # resumed with the current_step from the .solverstate: no catching up
    assert learning_rate(s, 7, current_step=3) == (pytest.approx(0.001, rel=1e-6), 3)
    # a count that starts from 0 late catches up by one per call, as Caffe does
    assert learning_rate(s, 10, current_step=0) == (pytest.approx(0.1, rel=1e-6), 1)


def test_multistep_without_step_values_is_fixed():
    s = solver(base_lr=0.01, lr_policy="multistep", gamma=0.1)
    assert learning_rate(s, 1000) == (f32(0.01), 0)


def test_poly_reaches_zero_at_max_iter():
    s = solver(base_lr=0.01, lr_policy="poly", power=2.0, max_iter=100)
    assert rate(s, 0) == pytest.approx(0.01, rel=1e-7)
    assert rate(s, 50) == pytest.approx(0.0025, rel=1e-6)              # 0.01 · 0.5²
    assert rate(s, 90) == pytest.approx(0.0001, rel=1e-5)              # 0.01 · 0.1²
    assert rate(s, 100) == 0.0
    s = solver(base_lr=0.01, lr_policy="poly", power=1.0, max_iter=100)
    assert rate(s, 25) == pytest.approx(0.0075, rel=1e-6)


def test_sigmoid_is_half_base_at_stepsize():
    s = solver(base_lr=0.01, lr_policy="sigmoid", gamma=-0.1, stepsize=50)
    assert rate(s, 50) == pytest.approx(0.005, rel=1e-7)
    # -gamma·(iter - stepsize) = 0.1·10 = 1 at 60, -1 at 40
    assert rate(s, 60) == pytest.approx(0.01 / (1 + math.e), rel=1e-6)
    assert rate(s, 40) == pytest.approx(0.01 / (1 + 1 / math.e), rel=1e-6)
    # positive gamma: rising
    s = solver(base_lr=0.01, lr_policy="sigmoid", gamma=0.1, stepsize=50)
    assert rate(s, 60) == pytest.approx(0.01 / (1 + 1 / math.e), rel=1e-6)
    assert rate(s, 0) < rate(s, 50) < rate(s, 100)


def test_sigmoid_as_digits_writes_it():
    # DIGITS UI: sigmoid, step 50 %, gamma 0.1, 1000 iterations -> gamma -0.01, stepsize 500
    s = solver(base_lr=0.01, lr_policy="sigmoid", gamma=-0.1 / 10, stepsize=500, max_iter=1000)
    assert rate(s, 0) == pytest.approx(0.01 / (1 + math.exp(-5)), rel=1e-6)
    assert rate(s, 500) == pytest.approx(0.005, rel=1e-7)
    assert rate(s, 999) == pytest.approx(0.01 / (1 + math.exp(4.99)), rel=1e-5)


# ---------------------------------------------------------------- a whole run, and precision

def _reference(s: caffe_pb2.SolverParameter, it: int, step: int) -> tuple[float, int]:
    """The formulas of the module table in float64, written out again."""
    b, g, p = s.base_lr, s.gamma, s.power
    if s.lr_policy == "fixed":
        return b, step
    if s.lr_policy == "step":
        return b * g ** (it // s.stepsize), it // s.stepsize
    if s.lr_policy == "exp":
        return b * g ** it, step
    if s.lr_policy == "inv":
        return b * (1 + g * it) ** -p, step
    if s.lr_policy == "multistep":
        if step < len(s.stepvalue) and it >= s.stepvalue[step]:
            step += 1
        return b * g ** step, step
    if s.lr_policy == "poly":
        return b * (1 - it / s.max_iter) ** p, step
    return b / (1 + math.exp(-g * (it - s.stepsize))), step


# poly: Caffe's float32 `1 - iter/max_iter` loses digits near max_iter (at 97/100 the base is
# 0.029999971, not 0.03), which the cube triples; the reference here is plain float64.
@pytest.mark.parametrize("fields, rel", [
    (dict(lr_policy="fixed"), 2e-6),
    (dict(lr_policy="step", gamma=0.1, stepsize=33), 2e-6),
    (dict(lr_policy="exp", gamma=0.95), 2e-6),
    (dict(lr_policy="inv", gamma=0.1, power=0.5), 2e-6),
    (dict(lr_policy="multistep", gamma=0.5, stepvalue=[50, 85, 85]), 2e-6),
    (dict(lr_policy="poly", power=3.0), 1e-5),
    (dict(lr_policy="sigmoid", gamma=-0.1, stepsize=50), 2e-6),
])
def test_every_iteration_of_a_run_matches_the_formula(fields, rel):
    s = solver(base_lr=0.01, max_iter=100, **fields)
    step = ref_step = 0
    for it in range(s.max_iter):
        got, step = learning_rate(s, it, step)
        want, ref_step = _reference(s, it, ref_step)
        assert step == ref_step
        assert got == pytest.approx(want, rel=rel, abs=1e-30), it
        assert got == f32(got)          # Caffe's rate is a float32 (Dtype)


def test_inv_rounds_one_plus_gamma_iter_to_float32_as_caffe():
    # Caffe computes Dtype(1) + gamma * iter in float: 1 + 5e-8 is 1 in float32, so the rate is
    # base_lr exactly, where float64 arithmetic gives the next float32 below 1.
    s = solver(base_lr=1.0, lr_policy="inv", gamma=5e-8, power=1.0)
    assert f32(1.0 / (1.0 + s.gamma)) < 1.0
    assert rate(s, 1) == 1.0
