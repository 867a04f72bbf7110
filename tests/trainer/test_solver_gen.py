"""DIGITS' solver generation against the seed job and DIGITS' worked examples."""
from __future__ import annotations

import math

import numpy as np
import pytest

from prototxt import caffe_pb2, read_text
from trainer.solver_gen import ModelForm, make_solver


def test_seed_solver_field_by_field(seed_job):
    # GoogLeNet (batch 32/16 from the network), 45,002 / 14,998 records, 2 epochs, lr 0.01
    ours = make_solver(ModelForm(epochs=2, gpu=True), 45002, 14998, 32, 16)
    theirs = read_text(seed_job / "solver.prototxt", caffe_pb2.SolverParameter())  # not upgraded
    assert ours == theirs


@pytest.mark.parametrize("n_train,n_val,max_iter,interval,test_iter,stepsize", [
    (45002, 14998, 21120, 704, 469, 6970),  # 25 % split of MNIST train
    (60000, 10000, 28140, 938, 313, 9287),  # MNIST test folder as validation
])
def test_lenet_worked_examples(n_train, n_val, max_iter, interval, test_iter, stepsize):
    s = make_solver(ModelForm(), n_train, n_val, 64, 32)
    assert (s.max_iter, s.snapshot, s.test_interval, s.test_iter[0], s.display, s.stepsize) == (
        max_iter, interval, interval, test_iter, 79, stepsize)
    assert np.float32(s.weight_decay) == np.float32(0.0001) and np.float32(s.momentum) == np.float32(0.9)


def test_intervals_and_accumulation():
    # 1000 records, batch 30, iter_size 3 -> 12 iterations per epoch
    s = make_solver(ModelForm(epochs=5, batch_accumulation=3, snapshot_interval=0.05,
                              val_interval=10), 1000, 77, 30, 20)
    assert s.max_iter == 60 and s.iter_size == 3
    assert s.snapshot == 1            # 0 < 0.6 <= 1
    assert s.test_interval == 60      # 120 >= max_iter -> max_iter
    assert s.test_iter[0] == 4        # ceil(77 / 20), iter_size plays no part
    assert s.display == max(1, min(60 // 40, math.ceil(5000 / 90)))


def test_no_val_set_and_snapshot_at_end_only():
    s = make_solver(ModelForm(epochs=1, snapshot_interval=3), 500, 0, 50, None)
    assert len(s.test_iter) == 0 and not s.HasField("test_interval")
    assert s.snapshot == 0


@pytest.mark.parametrize("policy,check", [
    ("fixed", lambda s: not s.HasField("gamma") and not s.HasField("stepsize")),
    ("multistep", lambda s: list(s.stepvalue) == [500, 850] and np.float32(s.gamma) == np.float32(0.5)),
    ("exp", lambda s: np.isclose(s.gamma, 0.95 ** (1 / 10), rtol=1e-6)),
    ("inv", lambda s: np.isclose(s.gamma, 0.01, rtol=1e-6) and np.isclose(s.power, 0.5)),
    ("poly", lambda s: s.power == 3 and not s.HasField("gamma")),
    ("sigmoid", lambda s: np.isclose(s.gamma, -0.01, rtol=1e-6) and s.stepsize == 500),
])
def test_policies_in_percent(policy, check):
    s = make_solver(ModelForm(epochs=10, policy=policy), 1000, 0, 10, None)  # max_iter 1000
    assert s.lr_policy == policy and check(s)


def test_solver_types():
    assert not make_solver(ModelForm(solver_type="adagrad"), 10, 0, 1, None).HasField("momentum")
    rms = make_solver(ModelForm(solver_type="RMSPROP"), 10, 0, 1, None)
    assert not rms.HasField("momentum") and np.float32(rms.rms_decay) == np.float32(0.99)
    adam = make_solver(ModelForm(solver_type="ADAM", random_seed=7), 10, 0, 1, None)
    assert adam.solver_type == caffe_pb2.SolverParameter.ADAM and adam.random_seed == 7
    with pytest.raises(ValueError, match="MOMENTUM"):
        ModelForm(solver_type="MOMENTUM")  # TensorFlow-only in DIGITS
    with pytest.raises(ValueError, match="policy"):
        ModelForm(policy="cosine")
