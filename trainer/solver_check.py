"""A solver file checked before anything is built: Caffe's own checks (solver.cpp Init,
InitTrainNet, InitTestNets; sgd_solver.cpp), the values Caffe would loop or divide on, and a
repeated test_iter that would test one net twice, each reported at path:line:column.

    one train net     exactly one of train_net_param, train_net, net_param, net
    test nets         test_net_param + test_net nets, plus, with net / net_param, one instance
                      of that net per remaining test_iter (Caffe: test_iter >= the explicit test
                      nets with a generic net, == without)
    instances         two or more instances of the generic net need a test_state each, or they
                      are the same net tested twice (Caffe runs them; almost always a typo)
    test_state        unspecified or once per test net
    test_iter         each > 0 (0 tested nothing: every test output was missing)
    test_interval     > 0 when there are test nets (Caffe: CHECK_GT), never negative
    max_iter, display, snapshot    never negative
    average_loss      >= 1 (Caffe: CHECK_GE)
    type, momentum, rms_decay, regularization_type, iter_size      trainer.updates.check_solver
    lr_policy and its fields       the policy's own checks (trainer.lr_policies) at iteration 0

A value given on the command line (--test-iter, --max-iter) is named as the option.
"""
from __future__ import annotations

from pathlib import Path

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError
from prototxt.positions import field_positions

from .lr_policies import SolverConfigError, learning_rate
from .updates import UpdateRule, check_solver


_SELECTORS = ("lr_policy", "type", "solver_type")


class SolverFileError(PrototxtError, SolverConfigError):
    """A solver that Caffe would refuse (or that would crash or test nothing), at
    path:line:column when the file says where."""


class _Where:
    def __init__(self, param: caffe_pb2.SolverParameter, path: Path, overrides: dict[str, str]):
        self.param, self.path, self.overrides = param, path, overrides
        try:
            self.text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            self.text = ""

    def error(self, message: str, field: str, index: int = 0) -> SolverFileError:
        """An error at the `index`-th occurrence of `field` (or the first/last one there is)."""
        if field in self.overrides:
            return SolverFileError(f"{self.overrides[field]}: {message}", self.path, field=field)
        places = field_positions(self.text, field) if self.text else []
        if not places:
            return SolverFileError(message, self.path, field=field)
        line, column = places[min(index, len(places) - 1)]
        return SolverFileError(message, self.path, line=line, column=column, field=field)

    def located(self, exc: SolverConfigError) -> SolverFileError:
        """A check's error placed at the first field its message names that the file has."""
        message = str(exc)
        # the value at fault, before the field that chose the rule ("lr_policy 'step' needs
        # stepsize > 0": stepsize)
        names = sorted({f.name for f in caffe_pb2.SolverParameter.DESCRIPTOR.fields
                        if f.name in message},
                       key=lambda name: (name in _SELECTORS, message.index(name)))
        for name in names:
            if name in self.overrides or (self.text and field_positions(self.text, name)):
                return self.error(message, name)
        return SolverFileError(message, self.path)


def validate_solver(param: caffe_pb2.SolverParameter, path: str | Path,
                    overrides: dict[str, str] | None = None) -> UpdateRule:
    """Check `param` (read from `path`; `overrides`: field -> the option that set it); raise
    SolverFileError at the offending line. Returns the update rule (check_solver's result)."""
    at = _Where(param, Path(path), overrides or {})
    s = param

    trains = [f for f in ("train_net_param", "train_net", "net_param", "net") if s.HasField(f)]
    if not trains:
        raise SolverFileError("the solver names no train net: give exactly one of net, "
                              "net_param, train_net, train_net_param", at.path)
    if len(trains) > 1:
        later = max(trains, key=lambda f: (field_positions(at.text, f) or [(0, 0)])[0])
        raise at.error(f"the solver gives {' and '.join(trains)}; exactly one of net, net_param, "
                       "train_net, train_net_param names the train net", later)

    explicit = len(s.test_net_param) + len(s.test_net)
    generic = s.HasField("net") or s.HasField("net_param")
    iters = len(s.test_iter)
    if iters < explicit:
        raise at.error(f"test_iter must be given for each test net: the solver has {explicit} "
                       f"test net(s) (test_net, test_net_param) and {iters} test_iter",
                       "test_iter" if iters else ("test_net" if len(s.test_net) else
                                                  "test_net_param"), iters)
    if iters > explicit and not generic:
        raise at.error(f"test_iter is given {iters} times for {explicit} test net(s): one "
                       "test_iter per test_net / test_net_param (Caffe refuses the extra ones)",
                       "test_iter", explicit)
    instances = iters - explicit if generic else 0
    if instances > 1 and not len(s.test_state):
        raise at.error(f"test_iter is given {iters} times: with `net`, each test_iter beyond the "
                       f"test nets tests the net again, here {instances} times in the same state. "
                       "Give one test_iter, or a test_state per test_iter to test the net in "
                       "different states", "test_iter", explicit + 1)
    if len(s.test_state) not in (0, explicit + instances):
        raise at.error(f"test_state must be unspecified or given once per test net "
                       f"({explicit + instances}); it is given {len(s.test_state)} times",
                       "test_state", explicit + instances)
    for i, n in enumerate(s.test_iter):
        if n <= 0:
            raise at.error(f"test_iter must be positive (batches per test), not {n}; to train "
                           "without testing remove test_iter and test_interval", "test_iter", i)
    if s.test_interval < 0:
        raise at.error(f"test_interval must not be negative, not {s.test_interval}",
                       "test_interval")
    if iters and s.test_interval <= 0:
        field = "test_interval" if s.HasField("test_interval") else "test_iter"
        raise at.error("test_interval must be positive when test_iter gives test nets (Caffe: "
                       "test_interval > 0); set how many iterations between tests, or remove "
                       "test_iter to train without testing", field)
    for field in ("max_iter", "display", "snapshot"):
        value = getattr(s, field)
        if value < 0:
            raise at.error(f"{field} must not be negative, not {value}", field)
    if s.average_loss < 1:
        raise at.error(f"average_loss must be at least 1, not {s.average_loss}", "average_loss")
    try:
        rule = check_solver(s)
        learning_rate(s, 0, 0)
    except SolverFileError:
        raise
    except SolverConfigError as exc:
        raise at.located(exc) from None
    return rule
