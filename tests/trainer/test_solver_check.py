"""Solver files checked up front, at path:line:column (issue 14 defect 7): Caffe's own checks
(test_iter per test net, test_interval > 0 with test nets, average_loss >= 1, one train net) and
values that would loop, divide or test nothing."""
from __future__ import annotations

import pytest

from trainer.__main__ import main
from trainer.lr_policies import SolverConfigError
from trainer.solver import Options, Solver
from trainer.solver_check import SolverFileError, validate_solver
from prototxt import read_solver

from . import tiny

BASE = 'net: "train_val.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 10\n'


def check(tmp_path, text, overrides=None, **fields):
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    param = read_solver(path)
    for name, value in fields.items():
        getattr(param, name)[:] = value
    return validate_solver(param, path, overrides)


@pytest.mark.parametrize("text,line,column,message", [
    (BASE + "test_iter: 0\ntest_interval: 5\n", 5, 1, "test_iter must be positive"),
    (BASE + "test_interval: 5\ntest_iter: 3\n  test_iter: 4\n", 7, 3, "test_iter is given 2 times"),
    (BASE + "test_iter: 3\n", 5, 1, "test_interval must be positive when test_iter"),
    (BASE + "test_iter: 3\ntest_interval: 0\n", 6, 1, "test_interval must be positive"),
    (BASE + "display: -1\n", 5, 1, "display must not be negative"),
    (BASE + "average_loss: 0\n", 5, 1, "average_loss must be at least 1"),
    (BASE + 'train_net: "a.prototxt"\n', 5, 1, "exactly one of net"),
    ('train_net: "a.prototxt"\ntest_net: "b.prototxt"\ntest_iter: 2 test_iter: 3\n'
     'test_interval: 4 lr_policy: "fixed"\n', 3, 14, "test_iter is given 2 times for 1 test net"),
    ('train_net: "a.prototxt"\ntest_net: "b.prototxt"\ntest_net: "c.prototxt"\ntest_iter: 2\n'
     'test_interval: 4 lr_policy: "fixed"\n', 4, 1, "the solver has 2 test net(s)"),
    (BASE.replace('"fixed"', '"step"') + "# stepsize: 5 in a comment\nstepsize: 0\n", 6, 1,
     "needs stepsize > 0"),
])
def test_bad_solvers_are_refused_at_their_line(tmp_path, text, line, column, message):
    with pytest.raises(SolverFileError) as err:
        check(tmp_path, text)
    assert (err.value.line, err.value.column) == (line, column)
    assert message in err.value.message
    assert f"solver.prototxt:{line}:{column}: " in str(err.value)
    assert isinstance(err.value, SolverConfigError)  # older callers catch that


def test_good_solvers_pass(tmp_path):
    check(tmp_path, BASE + "test_iter: 3\ntest_interval: 5\n")
    # two instances of the net in two states: Caffe's feature, allowed
    check(tmp_path, BASE + "test_iter: 3 test_iter: 7 test_interval: 5\n"
                           'test_state { stage: "a" } test_state { level: 2 }\n')
    check(tmp_path, BASE)  # no tests at all


def test_a_command_line_value_is_named_as_the_option(tmp_path):
    with pytest.raises(SolverFileError) as err:
        check(tmp_path, BASE + "test_iter: 3\ntest_interval: 5\n", {"test_iter": "--test-iter 0"},
              test_iter=[0])
    assert err.value.line is None  # not the file's fault
    assert "--test-iter 0: test_iter must be positive" in str(err.value)


def test_test_iter_zero_stops_before_training(tmp_path, rng):
    # before: KeyError 'accuracy' at the first test, after training had started
    tiny.make_dataset(tmp_path / "data", rng, n_train=8, n_val=5)
    path = tiny.write_job(tmp_path / "job", tmp_path / "data", test_iter=0, max_iter=4,
                          test_interval=2, snapshot=0)
    with pytest.raises(SolverFileError, match=r"solver.prototxt:\d+:1: test_iter must be positive"):
        Solver(path, Options(log_file=None, echo=False, progress=False)).solve()
    with pytest.raises(SolverFileError, match=r"--test-iter 0: test_iter must be positive"):
        Solver(tiny.write_job(tmp_path / "job2", tmp_path / "data", max_iter=4, test_interval=2),
               Options(log_file=None, echo=False, progress=False, test_iter=0))


def test_cli_prints_file_and_line(tmp_path, capsys):
    path = tmp_path / "solver.prototxt"
    path.write_text(BASE + "test_interval: 5\ntest_iter: 3\ntest_iter: 4\n")
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:7:1: test_iter is given 2 times") and "Traceback" not in err
