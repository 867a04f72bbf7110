"""Caffe's learning-rate policies (`SolverParameter.lr_policy`), one pure function each.

The rate at the 0-based iteration `iter` (Caffe's `iter_`, the number of updates already made),
as `SGDSolver::GetLearningRate` computes it in NVCaffe 0.15 (DIGITS' Caffe) and BVLC Caffe:

==========  ===========================================================  =========================
policy      rate(iter)                                                   fields used
==========  ===========================================================  =========================
fixed       base_lr                                                      base_lr
step        base_lr * gamma ^ floor(iter / stepsize)                     base_lr, gamma, stepsize
exp         base_lr * gamma ^ iter                                       base_lr, gamma
inv         base_lr * (1 + gamma * iter) ^ (-power)                      base_lr, gamma, power
multistep   base_lr * gamma ^ current_step; current_step grows by one    base_lr, gamma, stepvalue
            at most per call, when iter >= stepvalue[current_step]
poly        base_lr * (1 - iter / max_iter) ^ power                      base_lr, max_iter, power
sigmoid     base_lr * 1 / (1 + exp(-gamma * (iter - stepsize)))          base_lr, gamma, stepsize
==========  ===========================================================  =========================

`current_step` is solver state: Caffe saves it in the `.solverstate` (`SolverState.current_step`)
and restores it on resume. `step` overwrites it with floor(iter / stepsize) on every call;
`multistep` advances it by one step at most per call, so several equal step values take effect
on consecutive iterations, and a resumed run relies on the saved value; the other policies leave
it alone.

Precision. The solver fields are float32 (protobuf `float`) and Caffe's rate is a `Dtype`
(float). Where the C++ expression is written in `Dtype` arithmetic -- `1 + gamma * iter` (inv),
`1 - iter / max_iter` (poly), `-gamma * (iter - stepsize)` (sigmoid) -- we round each step to
float32 exactly as Caffe does; `pow` and `exp` are evaluated in float64 on those float32 values
(C++11's `pow(float, int)`, used by step/exp/multistep, returns double); the final rate is
rounded to float32, because Caffe stores it in a `Dtype`. The result is returned as a Python
float holding that float32 value, e.g. base_lr 0.01 gives 0.009999999776482582, and `step` at the
first boundary gives float32(0.001) exactly. A build whose `pow(float, float)` or `exp` resolves
to the float overloads (inv, poly, sigmoid) can differ by one float32 ulp.

PyTorch's schedulers (`StepLR`, `MultiStepLR`, `ExponentialLR`, `PolynomialLR`, ...) differ:
they count epochs or `scheduler.step()` calls rather than Caffe's 0-based iteration, update the
rate multiplicatively (so float error accumulates), and have no `inv` or `sigmoid`. We therefore
compute the rate from the formula at every iteration and set it on the Caffe update rules of
`trainer.updates`, never through a torch scheduler.

Checks follow Caffe where it would crash or compute nonsense: step with stepsize <= 0 divides
by zero, poly with max_iter <= 0 too, and BVLC's CHECK_GE(gamma, 0) holds for step, exp, inv
and multistep. A negative sigmoid gamma is accepted: DIGITS writes gamma = -gamma_ui * 100 /
max_iter for its sigmoid policy, which NVCaffe 0.15 runs (BVLC master's CHECK_GE(gamma, 0) on
sigmoid would refuse DIGITS' own solver files).
"""
from __future__ import annotations

import difflib
from typing import Callable, NamedTuple

import numpy as np

from prototxt import caffe_pb2

__all__ = ["LearningRate", "POLICIES", "PolicyFn", "SolverConfigError", "learning_rate", "policy",
           "supported_policies"]


class SolverConfigError(ValueError):
    """A solver.prototxt asks for something Caffe would refuse (or crash on)."""


class LearningRate(NamedTuple):
    """What a policy returns: the rate (a float32 value) and the solver's new `current_step`."""
    rate: float
    current_step: int


PolicyFn = Callable[[caffe_pb2.SolverParameter, int, int], LearningRate]

POLICIES: dict[str, PolicyFn] = {}
"""Registry: Caffe's `lr_policy` string -> policy function (solver, iteration, current_step)."""


def policy(name: str) -> Callable[[PolicyFn], PolicyFn]:
    """Register a policy under Caffe's `lr_policy` string (case-sensitive, as in Caffe)."""
    def register(fn: PolicyFn) -> PolicyFn:
        if name in POLICIES:
            raise ValueError(f"lr policy {name!r} is registered twice")
        POLICIES[name] = fn
        return fn
    return register


def supported_policies() -> list[str]:
    return sorted(POLICIES)


def learning_rate(solver: caffe_pb2.SolverParameter, iteration: int,
                  current_step: int = 0) -> LearningRate:
    """Caffe's rate at the 0-based `iteration`, and the `current_step` to keep for the next call.

    Raises SolverConfigError naming the policy and the supported ones when `lr_policy` is
    unknown or unset (Caffe: "Unknown learning rate policy").
    """
    name = solver.lr_policy
    fn = POLICIES.get(name)
    if fn is None:
        what = f"unknown lr_policy {name!r}" if name else "the solver sets no lr_policy"
        hint = ""
        close = [p for p in POLICIES if p.lower() == name.lower()] or \
            difflib.get_close_matches(name, POLICIES, n=1)
        if name and close:
            hint = f" (did you mean {close[0]!r}?)"
        raise SolverConfigError(f"{what}{hint}; supported policies: "
                                f"{', '.join(supported_policies())}")
    return fn(solver, iteration, current_step)


# ---------------------------------------------------------------- helpers

def _f32(x: float) -> float:
    """x rounded to float32, as a Python float (Caffe stores it in a Dtype)."""
    return float(np.float32(x))


def _pow(base: float, exponent: float) -> float:
    """C's pow in double: NaN (not an exception or a complex) for a negative base and a
    non-integer exponent, inf for 0 to a negative power."""
    with np.errstate(all="ignore"):
        return float(np.power(np.float64(base), np.float64(exponent)))


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SolverConfigError(message)


def _check_gamma(solver: caffe_pb2.SolverParameter) -> None:
    _require(solver.gamma >= 0, f"lr_policy {solver.lr_policy!r} needs gamma >= 0, "
                                f"the solver has gamma {solver.gamma:g}")


def _check_stepsize(solver: caffe_pb2.SolverParameter) -> None:
    _require(solver.stepsize > 0, f"lr_policy {solver.lr_policy!r} needs stepsize > 0, "
                                  f"the solver has stepsize {solver.stepsize}")


# ---------------------------------------------------------------- the policies

@policy("fixed")
def fixed(solver: caffe_pb2.SolverParameter, iteration: int, current_step: int) -> LearningRate:
    """rate = base_lr."""
    return LearningRate(_f32(solver.base_lr), current_step)


@policy("step")
def step(solver: caffe_pb2.SolverParameter, iteration: int, current_step: int) -> LearningRate:
    """rate = base_lr * gamma ^ floor(iter / stepsize); sets current_step = floor(iter / stepsize).

    PyTorch's StepLR multiplies the previous rate by gamma at each boundary; this evaluates the
    power afresh, as Caffe does.
    """
    _check_stepsize(solver)
    _check_gamma(solver)
    current_step = iteration // solver.stepsize
    return LearningRate(_f32(solver.base_lr * _pow(solver.gamma, current_step)), current_step)


@policy("exp")
def exp(solver: caffe_pb2.SolverParameter, iteration: int, current_step: int) -> LearningRate:
    """rate = base_lr * gamma ^ iter."""
    _check_gamma(solver)
    return LearningRate(_f32(solver.base_lr * _pow(solver.gamma, iteration)), current_step)


@policy("inv")
def inv(solver: caffe_pb2.SolverParameter, iteration: int, current_step: int) -> LearningRate:
    """rate = base_lr * (1 + gamma * iter) ^ (-power); `1 + gamma * iter` in float32 as Caffe."""
    _check_gamma(solver)
    one = np.float32(1)
    base = one + np.float32(solver.gamma) * np.float32(iteration)
    return LearningRate(_f32(solver.base_lr * _pow(float(base), -solver.power)), current_step)


@policy("multistep")
def multistep(solver: caffe_pb2.SolverParameter, iteration: int,
              current_step: int) -> LearningRate:
    """rate = base_lr * gamma ^ current_step.

    current_step advances by one (at most) when iter >= stepvalue[current_step]. So step values
    (5, 5) lower the rate at iterations 5 and 6, not twice at 5; and a step value already passed
    when the count starts (a fresh count on a resumed run) is caught up one per iteration. Keep
    the returned current_step and save it in the .solverstate, as Caffe does.
    """
    if current_step < len(solver.stepvalue) and iteration >= solver.stepvalue[current_step]:
        current_step += 1
    _check_gamma(solver)
    return LearningRate(_f32(solver.base_lr * _pow(solver.gamma, current_step)), current_step)


@policy("poly")
def poly(solver: caffe_pb2.SolverParameter, iteration: int, current_step: int) -> LearningRate:
    """rate = base_lr * (1 - iter / max_iter) ^ power; 0 at iter = max_iter for power > 0.

    `1 - iter / max_iter` in float32 as Caffe. Caffe never asks past max_iter; there (a negative
    base) a non-integer power gives NaN, like C's pow. PyTorch's PolynomialLR reaches the same
    curve only by chained multiplication per step.
    """
    _require(solver.max_iter > 0, f"lr_policy 'poly' needs max_iter > 0, the solver has "
                                  f"max_iter {solver.max_iter}")
    frac = np.float32(iteration) / np.float32(solver.max_iter)
    base = np.float32(1) - frac
    return LearningRate(_f32(solver.base_lr * _pow(float(base), solver.power)), current_step)


@policy("sigmoid")
def sigmoid(solver: caffe_pb2.SolverParameter, iteration: int,
            current_step: int) -> LearningRate:
    """rate = base_lr / (1 + exp(-gamma * (iter - stepsize))); base_lr / 2 at iter = stepsize.

    gamma < 0 (what DIGITS writes) makes the rate fall from base_lr towards 0 around stepsize;
    gamma > 0 makes it rise towards base_lr. The exponent is computed in float32 as Caffe does.
    stepsize 0 is allowed (NVCaffe 0.15 does; BVLC master refuses it): the midpoint is iter 0.
    """
    shift = np.float32(iteration) - np.float32(solver.stepsize)
    arg = -np.float32(solver.gamma) * shift
    with np.errstate(over="ignore"):
        e = float(np.exp(np.float64(arg)))
    return LearningRate(_f32(solver.base_lr * (1.0 / (1.0 + e))), current_step)

